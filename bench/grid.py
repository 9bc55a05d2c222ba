"""A day of AC power flows (orchestrator/grid/): seconds per interval. Prints one JSON object.

    .venv/bin/python bench/grid.py [--numba] [--seed 1]

Cases, both on topologies/paper-c.yaml (battery, L = 5, intervals 1..96):
- paper: the paper microgrid (11 feeders, 102 prosumers); the market case is the
  schedule `testbed replay` finalizes (replay time not counted).
- x10: `microgrid.dataset.scale=10` (110 feeders, 1,020 prosumers); the market case
  without trades (a 10x replay is an LP benchmark of its own, bench/lp.py; the power
  flow costs the same whatever the schedule).
Per case: `build_s` (network description + pandapower net), `injections_s`,
`flows_s` (96 intervals x 2 cases: market and no market; an interval whose two cases
inject the same is one power flow, `power_flows` counts them), `seconds_per_interval`
(build + injections + flows, per interval: both cases of an interval and its share of
the build), `first_interval_s`, `median_interval_s` (both cases), and the grid block's
numbers.
Goal (issue 15): <= 0.2 s per interval at paper scale. `--numba` runs pandapower with
numba (when installed) to weigh its JIT cost against the flows it speeds up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.grid.flow import GridResult, solve_interval
from orchestrator.grid.model import describe_network
from orchestrator.grid.network import PowerFlowNetwork
from orchestrator.grid.schedule import injections
from orchestrator.replay import replay_scenario
from orchestrator.scenario import Scenario, build_scenario
from orchestrator.spec import load_spec

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "topologies" / "paper-c.yaml"
GOAL_SECONDS_PER_INTERVAL = 0.2
DAY = ["market.first_interval=1", "market.last_interval=96"]


def scenario_of(overrides: list[str], seed: int) -> Scenario:
    spec = load_spec(SPEC, [*DAY, f"microgrid.dataset.seed={seed}", *overrides], env={})
    return build_scenario(spec)


def replayed_trades(scenario: Scenario) -> tuple[Any, float]:
    start = time.perf_counter()
    result = replay_scenario(scenario)
    return result.trades, time.perf_counter() - start


def bench_case(scenario: Scenario, trades: Any, use_numba: bool) -> dict[str, Any]:
    spec = scenario.spec
    t0 = time.perf_counter()
    description = describe_network(spec.microgrid.grid, scenario.dataset)
    network = PowerFlowNetwork(description, numba=use_numba)
    t1 = time.perf_counter()
    injected = injections(scenario, trades, description.prosumers)
    t2 = time.perf_counter()
    minutes = spec.market.interval_minutes
    times: list[float] = []
    flows = []
    for i, t in enumerate(injected.intervals):
        start = time.perf_counter()
        flows.append(solve_interval(network, t, injected.market[i], injected.no_market[i], minutes))
        times.append(time.perf_counter() - start)
    t3 = time.perf_counter()
    n = len(injected.intervals)
    block = GridResult(description, tuple(flows), spec.market.interval_minutes, t3 - t0).block()
    return {
        "feeders": len(description.feeders),
        "prosumers": len(description.prosumers),
        "buses": description.buses,
        "intervals": n,
        "power_flows": sum(1 + (f.market is not f.no_market) for f in flows),
        "build_s": round(t1 - t0, 4),
        "injections_s": round(t2 - t1, 4),
        "flows_s": round(t3 - t2, 4),
        "first_interval_s": round(times[0], 4),
        "median_interval_s": round(statistics.median(times), 5),
        "seconds_per_interval": round((t3 - t0) / n, 5),
        "not_converged": sum(len(block[c]["not_converged"]) for c in ("market", "no_market")),
        "market": {k: v for k, v in block["market"].items() if k != "not_converged"},
        "no_market": {k: v for k, v in block["no_market"].items() if k != "not_converged"},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numba", action="store_true", help="pandapower with numba")
    parser.add_argument("--seed", type=int, default=1, help="synthetic microgrid seed")
    args = parser.parse_args(argv)
    import pandapower

    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pandapower": pandapower.__version__,
            "numpy": np.__version__,
            "numba": args.numba,
        },
        "spec": str(SPEC.relative_to(REPO)),
    }
    paper = scenario_of([], args.seed)
    trades, replay_s = replayed_trades(paper)
    report["paper"] = {"replay_s": round(replay_s, 3), **bench_case(paper, trades, args.numba)}
    x10 = scenario_of(["microgrid.dataset.scale=10"], args.seed)
    report["x10"] = bench_case(x10, (), args.numba)
    per_interval = report["paper"]["seconds_per_interval"]
    report["goals"] = {
        "paper_seconds_per_interval": per_interval,
        "paper_under_0_2_s": per_interval <= GOAL_SECONDS_PER_INTERVAL,
    }
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
