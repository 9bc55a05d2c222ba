"""Shared test helpers.

`require_tool` skips a test when an external tool is missing, except under
CI=true, where a missing tool is a failure: CI must exercise the real thing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.chain.node import Anvil
from tests import suitetime

REPO = Path(__file__).resolve().parent.parent


def _find_transax() -> Path:
    """The public traces: $TRANSAX_DATA, else the project's shared/ folder beside the
    checkout (or beside the main working copy, for clones made elsewhere, as CI does)."""
    if os.environ.get("TRANSAX_DATA"):
        return Path(os.environ["TRANSAX_DATA"])
    candidates = [REPO.parent / "shared/datasets/transax-phase2"]
    candidates += [Path("/work/shared/datasets/transax-phase2")]
    found = next((c for c in candidates if c.is_dir()), candidates[0])
    # the CLI subprocesses and topologies/transax-*.yaml read it from the environment
    os.environ["TRANSAX_DATA"] = str(found)
    return found


TRANSAX_DIR = _find_transax()
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, what: str) -> None:
    """Skip (locally) or fail (under CI=true) when `condition` is false."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required for this test but missing under CI: {what}")
    pytest.skip(f"missing: {what}")


def require_tool(name: str) -> str:
    """Path of executable `name` (PATH, node_modules/.bin), or skip/fail."""
    local = REPO / "node_modules" / ".bin" / name
    path = str(local) if local.exists() else shutil.which(name)
    require(path is not None, f"executable {name!r}")
    assert path is not None
    return path


def pytest_addoption(parser: pytest.Parser) -> None:
    suitetime.pytest_addoption(parser)


def pytest_configure(config: pytest.Config) -> None:
    suitetime.register(config)  # wall and CPU seconds per test: .pytest_cache/suitetime.json


# `make test` runs the suite on two pytest-xdist workers with `--dist loadgroup`.
# Tests that share a session lab must run on one worker (each worker is its own
# session: a second lab would double the work): every test that touches the swarm
# lab is in group "swarm", every test of the ssh lab in group "ssh".
LAB_GROUPS = (("swarm", "swarm_lab"), ("ssh", "ssh_lab"))


def lab_group(nodeid: str, fixtures: list[str]) -> str | None:
    """The xdist group of a test by the lab it uses (by fixture or by its id:
    the conformance targets reach their lab through the backend parameter)."""
    name = nodeid.rsplit("/", 1)[-1].lower()
    for group, fixture in LAB_GROUPS:
        if fixture in fixtures or group in name:
            return group
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = lab_group(item.nodeid, list(getattr(item, "fixturenames", ())))
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    """A fresh automining anvil for one test (modules needing other options define their own)."""
    require_tool("anvil")
    node = Anvil().start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def transax_dir() -> Path:
    require(TRANSAX_DIR.is_dir(), f"TRANSAX traces at {TRANSAX_DIR}")
    return TRANSAX_DIR


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh TESTBED_STATE_DIR (pidfiles, run records) for one test."""
    state = tmp_path / "state"
    monkeypatch.setenv("TESTBED_STATE_DIR", str(state))
    return state


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_cli(*args: str, env: dict[str, str], **popen: Any) -> subprocess.Popen[str]:
    """`testbed ARGS...` as a child process (this interpreter, the repository as
    cwd), stdout and stderr piped as text unless `popen` says otherwise: for tests
    that signal or time it. The child gets SIGINT's default action back: a shell
    running pytest in the background without job control ignores SIGINT, children
    inherit that, and Python then never raises KeyboardInterrupt."""
    options: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", *args],
        text=True,
        env=env,
        cwd=REPO,
        preexec_fn=_default_sigint,
        **(options | popen),
    )


# The swarm lab is a session fixture used by several folders (conformance,
# integration): defined once here, so a session makes one lab, not one per module
# that imports it (at the end: tests/swarm_support.py imports from this module).
from tests.swarm_support import swarm_images, swarm_lab  # noqa: E402

__all__ = ["swarm_images", "swarm_lab"]
