"""Scrape targets and prometheus.yml rendered from a plan (pure), the scrape
interval rule, and the orchestrator's dataset exporter served over HTTP."""

from __future__ import annotations

from pathlib import Path

import yaml

from agents.common.market import MarketConfig
from orchestrator.datasets import ProsumerTrace, TraceOffer
from orchestrator.observability.exporter import DatasetExporter, dataset_energy
from orchestrator.plan import Plan, build_plan
from orchestrator.progress import scrape
from orchestrator.scrapetargets import (
    agent_targets,
    duration,
    orchestrator_target,
    render_config,
    run_scrape_interval,
    scrape_interval,
)
from orchestrator.spec import SolverConfig, load_spec
from tests.conftest import REPO
from tests.scenario_support import memory_scenario


def small_plan() -> Plan:
    market = MarketConfig(
        first_interval=49,
        last_interval=52,
        prediction_window=3,
        clock="wallclock",
        simulated_interval_seconds=8.0,
        solver_period_seconds=2.0,
    )
    prosumers = (
        ProsumerTrace(101, 1, (TraceOffer(49, 49, 700), TraceOffer(50, 52, 300))),
        ProsumerTrace(102, 1, (TraceOffer(49, 49, -400), TraceOffer(51, 51, -250))),
    )
    solvers = (SolverConfig("s1"), SolverConfig("s2"))
    scenario = memory_scenario(prosumers, market, solvers, per_host=1, seed=1)
    return build_plan(scenario, "local", "RUN1")


def test_every_agent_is_a_target_with_bounded_labels() -> None:
    plan = small_plan()
    ports = {a.name: 9000 + i for i, a in enumerate(plan.agents)}
    targets = agent_targets(plan, lambda name: f"10.0.0.1:{ports[name]}")
    targets.append(orchestrator_target(plan, "127.0.0.1:8999"))
    config = yaml.safe_load(render_config(targets, interval_seconds=0.5, run_id="RUN1"))
    assert config["global"]["scrape_interval"] == "500ms"
    assert config["global"]["scrape_timeout"] == "500ms"
    static = config["scrape_configs"][0]["static_configs"]
    assert [c["targets"] for c in static] == [
        [f"10.0.0.1:{ports[a.name]}"] for a in plan.agents
    ] + [["127.0.0.1:8999"]]
    assert {c["labels"]["role"] for c in static} == {
        "recorder", "dso", "clock", "solver", "prosumer", "orchestrator",
    }  # fmt: skip
    assert all(set(c["labels"]) == {"run_id", "spec", "agent", "role"} for c in static)


def test_scrape_interval_resolves_every_wallclock_interval() -> None:
    assert scrape_interval(5, "wallclock", 120) == 5
    assert scrape_interval(5, "wallclock", 8) == 2  # 4 scrapes per interval
    assert scrape_interval(5, "lockstep", 8) == 5  # lockstep intervals take no fixed time
    assert scrape_interval(0.01, "lockstep", 8) == 0.25  # floor
    assert [duration(s) for s in (5, 0.25, 1.5, 60)] == ["5s", "250ms", "1500ms", "60s"]


def test_scrape_interval_follows_the_runs_length() -> None:
    # a 9-interval lockstep run (solver period 1 s) with the default 5 s: 20 scrapes in ~9 s
    assert scrape_interval(5, "lockstep", 8, intervals=9, solver_period_seconds=1) == 0.45
    # a wallclock day of 96 x 120 s intervals: the spec's 5 s stands
    assert scrape_interval(5, "wallclock", 120, intervals=96, solver_period_seconds=5) == 5
    # 2 wallclock intervals of 10 s: 20 s run, one scrape a second (not Δ̂/4 = 2.5 s)
    assert scrape_interval(5, "wallclock", 10, intervals=2, solver_period_seconds=2) == 1
    assert scrape_interval(5, "lockstep", 8, intervals=1, solver_period_seconds=0.5) == 0.25
    # never more than MAX_SCRAPES_PER_SECOND scrapes a second over all targets
    short_run = {"intervals": 1, "solver_period_seconds": 0.5}
    assert scrape_interval(5, "lockstep", 8, **short_run, targets=12) == 0.25
    assert scrape_interval(5, "lockstep", 8, **short_run, targets=37) == 0.74  # paper, 31 hosts
    assert scrape_interval(5, "lockstep", 8, **short_run, targets=315) == 6.3  # 10x, 310 hosts
    assert scrape_interval(2, "lockstep", 8, targets=315) == 6.3  # also above the spec's own
    smoke = load_spec(REPO / "topologies" / "smoke.yaml", env={})
    assert run_scrape_interval(1, smoke.market) == 0.8  # 8 intervals x 2 s / 20


def test_dataset_exporter_counts_finalized_intervals(tmp_path: Path) -> None:
    plan = small_plan()
    production, consumption = dataset_energy(plan)
    assert production == {49: 700, 50: 300} and consumption == {49: 400, 51: 250}
    events = tmp_path / "events"
    events.mkdir()
    finals = events / "finalizations.csv"
    finals.write_text("interval,candidate_id,trades,energy_wh\n49,1,1,400\n")
    exporter = DatasetExporter(events, production, consumption, 49, {"spec": "t"})
    address = exporter.start()
    try:
        exporter.poll()
        first = scrape(f"http://{address}/metrics")
        with finals.open("a") as fh:
            fh.write("51,2,1,250\n")  # interval 50 finalized nothing: still counted
        exporter.poll()
        second = scrape(f"http://{address}/metrics")
    finally:
        exporter.stop()
    assert first is not None and second is not None
    assert first["testbed_dataset_production_wh_total"] == 700
    assert first["testbed_dataset_consumption_wh_total"] == 400
    assert first["testbed_finalized_interval"] == 49
    assert second["testbed_dataset_production_wh_total"] == 1000
    assert second["testbed_dataset_consumption_wh_total"] == 650
    assert second["testbed_finalized_interval"] == 51
    assert scrape(f"http://{address}/metrics", timeout=0.5) is None  # stopped
