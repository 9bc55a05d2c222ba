"""`orchestrator.run` on the local backend with real agents, anvil and solver:
a lockstep run over a window of the public traces finalizes exactly what
`market.replay` finalizes (by offer content, to the Wh), and a readiness
timeout stops everything with exit code 4, leaving no process and a bundle
that keeps what was recorded. The scenarios every backend shares (smoke equals
replay, agent crash, Ctrl-C, clean, kill/restart) are in tests/conformance/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psutil
import pytest

from orchestrator import lifecycle
from orchestrator import run as run_module
from orchestrator.run import RunOptions, RunResult, run
from tests.conformance.oracle import finalized_by_content, replayed
from tests.conftest import REPO, require_tool

SMOKE = REPO / "topologies" / "smoke.yaml"
TRANSAX = REPO / "topologies" / "transax-battery.yaml"


@pytest.fixture(autouse=True)
def _anvil(state_dir: Path) -> None:
    require_tool("anvil")


def recorded_pids(state: Path) -> dict[str, int]:
    out = {}
    for pidfile in state.glob("runs/*/pids/*.json"):
        rec = json.loads(pidfile.read_text())
        out[rec["name"]] = int(rec["pid"])
    return out


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_torn_down(result: RunResult, pids: dict[str, int], state: Path) -> None:
    assert pids, "the run recorded no processes"
    assert not [name for name, pid in pids.items() if alive(pid)]
    assert not list(state.glob("runs/*")), "run state left behind"
    bundle = result.bundle
    for name in ("spec.yaml", "manifest.json", "summary.json", "logs/orchestrator.log"):
        assert (bundle / name).is_file(), name
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["outcome"]["exit_code"] == result.exit_code
    summary = json.loads((bundle / "summary.json").read_text())
    assert summary["status"] == result.outcome.status


@pytest.mark.parametrize("tie_break", ["expiring-first", "storage-last", "none"])
def test_lockstep_window_of_public_traces_equals_replay(
    tmp_path: Path, transax_dir: Path, state_dir: Path, tie_break: str
) -> None:
    overrides = [
        f"microgrid.dataset.path={transax_dir / 'withBattery'}",
        "market.first_interval=50",
        "market.last_interval=57",
        "market.prediction_window=4",
        f"market.tie_break={tie_break}",
    ]
    result = run(RunOptions(spec=TRANSAX, overrides=overrides, out=tmp_path / "results"))
    assert result.outcome.status == "ok", result.outcome.message
    assert result.exit_code == 0
    # the oracle: what `testbed replay` finalizes, to the Wh, interval by interval
    per_interval, _ = replayed(TRANSAX, overrides, clip=False)
    assert sum(per_interval.values()) > 0
    assert result.summary["total_energy_traded_wh"] == sum(per_interval.values())
    assert result.summary["per_interval_kwh"] == {
        str(t): wh / 1000 for t, wh in sorted(per_interval.items())
    }
    # and trade for trade, by offer content
    _, expected = replayed(TRANSAX, overrides, clip=True)
    assert finalized_by_content(result.bundle / "events", 57) == expected
    # every agent got a log, ended by itself with 0, and the bundle has the run's facts
    summary = result.summary
    assert {p["exit_code"] for p in summary["processes"].values()} == {0}
    assert summary["processes"]["prosumers-01"]["prosumers"] > 1
    posts = ("postOffer", "postSignedOffer")  # the latter with the DSO's signed grant
    assert sum(summary["gas"].get(f, {}).get("count", 0) for f in posts) == summary["offers"]
    assert summary["gas"]["finalize"]["count"] == 8
    for agent in summary["processes"]:
        assert (result.bundle / "logs" / f"{agent}.log").stat().st_size > 0
    # each agent's last metrics, written on exit (the last scrape may come too late)
    final = (result.bundle / "agents" / "clock" / "metrics.prom").read_text()
    assert 'testbed_transactions_total{function="finalize"} 8.0' in final
    posted = sum(
        float(line.split()[-1])
        for path in (result.bundle / "agents").glob("prosumers-*/metrics.prom")
        for line in path.read_text().splitlines()
        if line.startswith("testbed_offers_posted_total ")
    )
    assert posted == summary["offers"]
    assert not list(state_dir.glob("runs/*"))


def test_readiness_timeout_stops_everything_with_exit_4(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # agents answer on /metrics, but as if never connected (testbed_agent_ready 0)
    real_scrape = lifecycle.scrape

    def scrape(url: str) -> dict[str, float] | None:
        metrics = real_scrape(url)
        if metrics is not None:
            metrics["testbed_agent_ready"] = 0.0
        return metrics

    monkeypatch.setattr(lifecycle, "scrape", scrape)
    seen: dict[str, int] = {}
    real_teardown = run_module.Run.teardown

    def teardown(self: run_module.Run, outcome: Any) -> dict[str, Any]:
        seen.update(recorded_pids(state_dir))
        return real_teardown(self, outcome)

    monkeypatch.setattr(run_module.Run, "teardown", teardown)
    result = run(RunOptions(spec=SMOKE, out=tmp_path / "results", ready_timeout=3.0))
    assert result.exit_code == run_module.EXIT_NOT_READY
    assert result.outcome.status == "not_ready"
    message = result.outcome.message
    assert message.startswith("agents not ready after 3 s:\n  recorder: testbed_agent_ready is 0")
    # the next tiers were never started (other units, e.g. Prometheus, may be)
    assert {"chain", "recorder"} <= set(seen)
    assert not {"dso", "clock", "solver-1", "prosumers-01"} & set(seen)
    assert_torn_down(result, seen, state_dir)
