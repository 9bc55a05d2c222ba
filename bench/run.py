"""Benchmark of whole testbed runs on the local backend; prints one JSON object.

Full day (intervals 1..96), the paper microgrid (102 synthetic prosumers, battery),
L = 13 (topologies/paper-d.yaml), in two modes:
- lockstep: as fast as the agents go; checked against `market.replay` (same total Wh);
- wallclock at Δ̂ = 5 s (solver period 1 s): latencies as on hardware.
For each: wall seconds, offer-to-trade p50/p99 (s), peak RSS of every prosumer host
process (and per prosumer), energy traded, exit status and the bundle's path.

Goals (issue 4): lockstep day under 5 minutes; wallclock p99 offer-to-trade under
one Δ̂; under 60 MB RSS per prosumer.

Offer-to-trade has two parts, reported apart: the intervals an offer waits because
the market's optimum leaves it out until later offers change it (the same count
with no testbed at all comes from `market.replay`: `replay_offer_wait_intervals`),
and the testbed's own latency, seen on the offers the market matched without
waiting (`offer_to_trade_no_wait_*`).

    .venv/bin/python bench/run.py                   # both modes (~20 minutes)
    .venv/bin/python bench/run.py --mode lockstep --set deployment.prosumers_per_host=26
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from market.replay import ReplayResult, wait_summary
from orchestrator.replay import replay_scenario
from orchestrator.run import RunOptions, run
from orchestrator.scenario import build_scenario
from orchestrator.spec import load_spec

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "topologies" / "paper-d.yaml"
MODES: dict[str, list[str]] = {
    "lockstep": ["market.clock=lockstep", "chain.block_time_seconds=0"],
    "wallclock": [
        "market.clock=wallclock",
        "market.simulated_interval_seconds=5",
        "market.solver_period_seconds=1",
        "chain.block_time_seconds=0",
    ],
}
COMMON = ["market.first_interval=1", "market.last_interval=96"]


def replay_of(spec: Path, overrides: list[str]) -> ReplayResult:
    s = load_spec(spec, overrides, env=os.environ)
    return replay_scenario(build_scenario(s))


def bench_mode(spec: Path, mode: str, extra: list[str], out: Path) -> dict[str, Any]:
    overrides = [*COMMON, *MODES[mode], *extra]
    started = time.monotonic()
    result = run(RunOptions(spec=spec, overrides=overrides, out=out, progress=sys.stderr))
    wall = time.monotonic() - started
    s = result.summary
    hosts = {
        name: p for name, p in (s.get("processes") or {}).items() if p.get("role") == "prosumer"
    }
    latency = s.get("offer_to_trade_seconds") or {}
    waited = s.get("offer_to_trade_intervals") or {}
    own = s.get("offer_to_trade_seconds_no_wait") or {}
    market = replay_of(spec, overrides)
    market_wait = wait_summary(market.offer_wait.values())
    report: dict[str, Any] = {
        "status": result.outcome.status,
        "exit_code": result.exit_code,
        "wall_seconds": round(wall, 1),
        "total_energy_traded_kwh": s.get("total_energy_traded_kwh"),
        "offers": s.get("offers"),
        "offer_to_trade_p50_seconds": latency.get("p50"),
        "offer_to_trade_p99_seconds": latency.get("p99"),
        "offer_wait_intervals_p50": waited.get("p50"),
        "offer_wait_intervals_p99": waited.get("p99"),
        "replay_offer_wait_intervals_p99": market_wait["p99"],
        "offer_to_trade_no_wait_p50_seconds": own.get("p50"),
        "offer_to_trade_no_wait_p99_seconds": own.get("p99"),
        "prosumer_hosts": len(hosts),
        "peak_rss_mb_per_host": {n: p.get("peak_rss_mb") for n, p in hosts.items()},
        "max_peak_rss_mb_host": max(
            (p.get("peak_rss_mb") or 0 for p in hosts.values()), default=None
        ),
        "max_peak_rss_mb_per_prosumer": max(
            (p.get("peak_rss_mb_per_prosumer") or 0 for p in hosts.values()), default=None
        ),
        "overrides": overrides,
        "bundle": str(result.bundle),
    }
    if mode == "lockstep":
        expected = market.total_wh
        report["replay_total_wh"] = expected
        report["equals_replay"] = s.get("total_energy_traded_wh") == expected
    else:
        interval = 5.0
        p99, own_p99 = latency.get("p99"), own.get("p99")
        report["p99_under_one_interval"] = p99 is not None and p99 < interval
        report["no_wait_p99_under_one_interval"] = own_p99 is not None and own_p99 < interval
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("lockstep", "wallclock", "both"), default="both")
    parser.add_argument("--spec", type=Path, default=SPEC)
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--out", type=Path, default=REPO / "results" / "bench", help="results directory"
    )
    args = parser.parse_args(argv)
    modes = ["lockstep", "wallclock"] if args.mode == "both" else [args.mode]
    report: dict[str, Any] = {"spec": str(args.spec), "cpus": os.cpu_count()}
    for mode in modes:
        report[mode] = bench_mode(args.spec, mode, args.extra, args.out)
    print(json.dumps(report, indent=2))
    return 0 if all(report[m]["exit_code"] == 0 for m in modes) else 1


if __name__ == "__main__":
    sys.exit(main())
