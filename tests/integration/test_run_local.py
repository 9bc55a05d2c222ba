"""`orchestrator.run` on the local backend with real agents, anvil and solver:
a lockstep run finalizes exactly what `market.replay` finalizes (by offer content,
to the Wh), an agent crash stops everything with exit code 3, and a readiness
timeout stops everything with exit code 4. Every test checks that no process of
the run is left and that the bundle keeps what was recorded."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest

from market.replay import replay
from orchestrator import lifecycle
from orchestrator import run as run_module
from orchestrator.run import RunOptions, RunResult, run
from orchestrator.scenario import build_scenario
from orchestrator.spec import load_spec
from tests.conftest import REPO, require_tool

SMOKE = REPO / "topologies" / "smoke.yaml"
TRANSAX = REPO / "topologies" / "transax-battery.yaml"

OfferKey = tuple[int, str, int, int, int, int]


@pytest.fixture(autouse=True)
def _anvil(state_dir: Path) -> None:
    require_tool("anvil")


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def finalized_by_content(events: Path, last: int) -> Counter[tuple[Any, ...]]:
    """Finalized trades keyed by the content of their offers (ids differ; an
    offer reaching past the last traded interval is posted with end = last)."""
    offers: dict[str, OfferKey] = {
        r["offer_id"]: (
            int(r["feeder"]),
            r["kind"],
            int(r["energy_wh"]),
            int(r["start"]),
            min(int(r["end"]), last),
            int(r["price"]),
        )
        for r in rows(events / "offers.csv")
    }
    return Counter(
        (offers[r["seller"]], offers[r["buyer"]], int(r["interval"]), int(r["energy_wh"]))
        for r in rows(events / "trades.csv")
    )


def replayed(
    spec_path: Path, overrides: list[str], clip: bool
) -> tuple[dict[int, int], Counter[Any]]:
    """market.replay of the spec: Wh per interval and trades by offer content.
    `clip`: offers cut to the traded window first, as the prosumers post them
    (the contract takes no interval outside it); the LP has the same free cells
    either way, so totals agree, but where the optimum is degenerate the
    clipped problem is the one whose trades the run reproduces exactly."""
    spec = load_spec(spec_path, overrides, env=os.environ)
    scenario = build_scenario(spec)
    m = spec.market
    offers = list(scenario.offers)
    if clip:
        offers = [
            dataclasses.replace(
                o, start=max(o.start, m.first_interval), end=min(o.end, m.last_interval)
            )
            for o in offers
        ]
    result = replay(
        scenario.feeders,
        offers,
        first_interval=m.first_interval,
        last_interval=m.last_interval,
        prediction_window=m.prediction_window,
        t_clear=m.t_clear,
        engine=spec.solvers[0].engine,
        tie_break=m.tie_break,
    )
    by_id = {
        o.id: (o.feeder, o.kind.name.lower(), o.energy, o.start, o.end, o.price) for o in offers
    }
    content = Counter(
        (by_id[t.seller], by_id[t.buyer], t.interval, t.energy) for t in result.trades
    )
    return result.per_interval_wh, content


def assert_smoke_equals_local_and_replay(result: RunResult, tmp_path: Path) -> None:
    """`result` (a smoke.yaml run on another backend) finalized exactly what the
    local backend and `market.replay` finalize: trade for trade, interval by interval."""
    assert result.outcome.status == "ok", result.outcome.message
    local = run(RunOptions(spec=SMOKE, backend="local", out=tmp_path / "local"))
    assert local.outcome.status == "ok", local.outcome.message
    per_interval, expected = replayed(SMOKE, [], clip=True)
    trades = finalized_by_content(result.bundle / "events", 56)
    assert sum(trades.values()) > 0
    assert trades == expected
    assert trades == finalized_by_content(local.bundle / "events", 56)
    assert result.summary["total_energy_traded_wh"] == sum(per_interval.values())
    assert result.summary["total_energy_traded_wh"] == local.summary["total_energy_traded_wh"]
    assert result.summary["per_interval_kwh"] == local.summary["per_interval_kwh"]


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
    assert summary["gas"]["postOffer"]["count"] == summary["offers"]
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


def run_in_thread(options: RunOptions) -> tuple[threading.Thread, dict[str, RunResult]]:
    box: dict[str, RunResult] = {}
    thread = threading.Thread(target=lambda: box.update(result=run(options)), daemon=True)
    thread.start()
    return thread, box


def wait_for(what: str, pred: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def finalized_rows(out: Path) -> int:
    files = list(out.glob("*/*/events/finalizations.csv"))
    return max((len(rows(f)) for f in files), default=0)


def test_agent_crash_stops_everything_with_exit_3(tmp_path: Path, state_dir: Path) -> None:
    out = tmp_path / "results"
    # a longer window than smoke's, so the run is surely still going when the agent dies
    options = RunOptions(
        spec=SMOKE, overrides=["market.first_interval=40", "market.last_interval=90"], out=out
    )
    thread, box = run_in_thread(options)
    wait_for("the first finalized interval", lambda: finalized_rows(out) >= 1)
    pids = recorded_pids(state_dir)
    os.kill(pids["prosumers-01"], signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive()
    result = box["result"]
    assert result.exit_code == run_module.EXIT_AGENT_FAILED
    assert result.outcome.status == "agent_failed"
    assert result.outcome.message.startswith("prosumers-01: killed by signal 9")
    assert_torn_down(result, pids, state_dir)
    # what was recorded before the crash is kept
    assert result.summary["offers"] > 0
    assert rows(result.bundle / "events" / "finalizations.csv")
    assert result.summary["processes"]["recorder"]["exit_code"] == 0  # stopped cleanly


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
