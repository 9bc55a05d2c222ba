"""Fixtures of the CLI tests: one `testbed run` of smoke.yaml for the session,
shared by the tests that only read what it left behind."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.e2e.test_cli_run import SMOKE, cli


@dataclass(frozen=True)
class CliRun:
    done: subprocess.CompletedProcess[str]  # `testbed run ... --json`
    out: Path  # its --out
    env: dict[str, str]  # its environment (its own TESTBED_STATE_DIR)


@pytest.fixture(scope="session")
def smoke_cli_run(tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    """`testbed run topologies/smoke.yaml --json`, once per session. A test that
    changes the bundle works on a copy of it."""
    require_tool("anvil")
    root = tmp_path_factory.mktemp("smoke-cli")
    env = {**os.environ, "TESTBED_STATE_DIR": str(root / "state")}
    out = root / "results"
    return CliRun(cli("run", str(SMOKE), "--json", "--out", str(out), env=env), out, env)
