"""`testbed run` and `testbed results` as a user runs them.

The correctness oracle: a lockstep run of topologies/smoke.yaml finalizes
exactly what `testbed replay` finalizes, to the Wh, interval by interval.
Ctrl-C and `testbed clean` after a killed run, on every backend:
tests/conformance/.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, require_tool

SMOKE = REPO / "topologies" / "smoke.yaml"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    require_tool("anvil")
    return {**os.environ, "TESTBED_STATE_DIR": str(tmp_path / "state")}


def cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def only_bundle(out: Path) -> Path:
    bundles = [p for p in out.glob("*/*") if p.is_dir()]
    assert len(bundles) == 1, bundles
    return bundles[0]


def test_smoke_run_finalizes_exactly_what_replay_finalizes(smoke_cli_run: Any) -> None:
    # the session's `testbed run smoke.yaml --json` (tests/e2e/conftest.py)
    done, out, env = smoke_cli_run.done, smoke_cli_run.out, smoke_cli_run.env
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    replayed = cli("replay", str(SMOKE), "--json", env=env)
    assert replayed.returncode == 0, replayed.stderr
    expected = json.loads(replayed.stdout)

    assert expected["total_energy_traded_kwh"] > 0
    assert summary["total_energy_traded_wh"] == round(expected["total_energy_traded_kwh"] * 1000)
    assert summary["per_interval_kwh"] == expected["per_interval_kwh"]
    assert summary["status"] == "ok" and summary["exit_code"] == 0
    assert summary["spec"] == "smoke" and summary["run_id"]  # run --json names its run
    saved = json.loads((Path(summary["bundle"]) / "summary.json").read_text())
    assert (saved["run_id"], saved["spec"]) == (summary["run_id"], "smoke")
    assert summary["solutions"]["accepted"] >= 1 and summary["solutions"]["rejected"] == 0
    assert summary["offers"] == expected["dataset"]["offers"]
    for key in ("p50", "p95", "p99", "max"):
        assert summary["offer_to_trade_seconds"][key] is not None
    assert {"postSignedOffer", "submitSolution", "finalize"} <= set(summary["gas"])

    bundle = Path(summary["bundle"])
    assert bundle == only_bundle(out) and bundle.parent.name == "smoke"
    trades = rows(bundle / "events" / "trades.csv")
    assert sum(int(t["energy_wh"]) for t in trades) == summary["total_energy_traded_wh"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["seed"] == 7 and manifest["run_id"] == bundle.name
    assert manifest["tools"]["anvil"].startswith("1.5.1")
    assert manifest["git"]["commit"]
    assert manifest["outcome"]["status"] == "ok"
    agents = set(summary["processes"])
    assert {"recorder", "dso", "clock", "solver-1"} <= agents
    for name in agents | {"chain", "orchestrator"}:
        assert (bundle / "logs" / f"{name}.log").stat().st_size > 0, name
    # the resolved spec in the bundle is a valid spec that replays the same
    again = cli("replay", str(bundle / "spec.yaml"), "--json", env=env)
    assert (
        json.loads(again.stdout)["total_energy_traded_kwh"] == expected["total_energy_traded_kwh"]
    )

    listed = cli("results", str(out), "--json", env=env)
    assert listed.returncode == 0
    [entry] = json.loads(listed.stdout)
    assert entry["run_id"] == bundle.name and entry["status"] == "ok"
    assert entry["total_energy_traded_kwh"] == summary["total_energy_traded_kwh"]
    assert not list(Path(env["TESTBED_STATE_DIR"]).glob("runs/*"))


def test_invalid_spec_starts_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / "results"
    done = cli("run", str(SMOKE), "--set", "market.clock=lockstpe", "--out", str(out), env=env)
    assert done.returncode == 2
    assert "market.clock" in done.stderr and "did you mean 'lockstep'" in done.stderr
    assert not out.exists()
    assert not Path(env["TESTBED_STATE_DIR"]).exists()
