"""Benchmark of 10x the paper on one machine (issue 13, "Today at 10x"); prints JSON.

The paper-c microgrid scaled by 10 (1,020 prosumers on 110 feeders) in lockstep,
local backend, automining anvil, by default for intervals 44..52 (the issue's
window). Reports: wall seconds, seconds per interval (finalization to
finalization), transactions per second to the node (every transaction of the
run over the run's wall time), peak RSS per prosumer, whether the run equals
`market.replay` to the Wh, and where each tick's time went (the slowest host's
withdraw and post, from the agents' logs). CPU seconds per component (chain, DSO,
solver, recorder, clock, prosumer hosts, orchestrator; `bench.cpu`) for the whole
run and per interval, which do not depend on how loaded the shared machine is.

    .venv/bin/python bench/scale.py
    .venv/bin/python bench/scale.py --set deployment.prosumers_per_host=34
    .venv/bin/python bench/scale.py --set market.first_interval=1 --set market.last_interval=96
    .venv/bin/python bench/scale.py --states-kept 8   # anvil's --prune-history (memory)
    .venv/bin/python bench/scale.py --mining automine # as before agents/miner.py
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from agents import miner
from agents.chain import node
from bench.cpu import CpuSampler
from bench.run import replay_of
from orchestrator.run import RunOptions, run

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "topologies" / "paper-c.yaml"
DEFAULTS = [
    "market.clock=lockstep",
    "chain.block_time_seconds=0",
    "microgrid.dataset.scale=10",
    "market.first_interval=44",
    "market.last_interval=52",
    "deployment.prosumers_per_host=128",
]
TICK = re.compile(r"tick (\d+): (\d+) offers .*withdraw ([\d.]+) s, post ([\d.]+) s")


def tick_split(logs: Path) -> dict[str, dict[str, float]]:
    """Per clock tick: the slowest host's withdraw (DSO issuing assets) and post
    (postOffer transactions) seconds, and the offers posted by all hosts."""
    out: dict[str, dict[str, float]] = {}
    for log in sorted(logs.glob("prosumers-*.log")):
        for m in TICK.finditer(log.read_text(errors="replace")):
            row = out.setdefault(m[1], {"offers": 0, "withdraw_s_max": 0.0, "post_s_max": 0.0})
            row["offers"] += int(m[2])
            row["withdraw_s_max"] = max(row["withdraw_s_max"], float(m[3]))
            row["post_s_max"] = max(row["post_s_max"], float(m[4]))
    return out


def blocks_per_interval(events: Path) -> dict[str, int]:
    """Blocks mined between consecutive finalizations (the first from the one before)."""
    with (events / "finalizations.csv").open(newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: int(r["interval"]))
    return {b["interval"]: int(b["block"]) - int(a["block"]) for a, b in itertools.pairwise(rows)}


def finalized_at(events: Path) -> list[tuple[str, float]]:
    """(interval, wall Unix time the recorder saw its finalization), in order."""
    with (events / "finalizations.csv").open(newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: int(r["interval"]))
    return [(r["interval"], float(r["time"])) for r in rows]


def interval_seconds(events: Path) -> dict[str, float]:
    """Seconds between consecutive finalizations (the first from the one before)."""
    return {b[0]: round(b[1] - a[1], 2) for a, b in itertools.pairwise(finalized_at(events))}


def cpu_split(sampler: CpuSampler, events: Path) -> dict[str, Any]:
    """CPU seconds per component: the whole run, each interval (finalization to
    finalization) and the mean per interval."""
    per_interval = {
        b[0]: sampler.between(a[1], b[1]) for a, b in itertools.pairwise(finalized_at(events))
    }
    components = sorted({c for row in per_interval.values() for c in row})
    n = len(per_interval) or 1
    return {
        **sampler.report(),
        "cpu_seconds_per_interval_mean": {
            c: round(sum(row.get(c, 0.0) for row in per_interval.values()) / n, 2)
            for c in components
        },
        "cpu_seconds_per_interval": per_interval,
    }


def finalized_vs_replay(events: Path, summary: dict[str, Any], market: Any) -> dict[str, Any]:
    """The intervals the run finalized, each against replay (also for a run stopped
    part way: lockstep finalizes interval t from the offers up to t + L only)."""
    done = [int(t) for t, _ in finalized_at(events)]
    ran = summary.get("per_interval_kwh") or {}
    wrong = [t for t in done if ran.get(str(t), 0.0) != market.per_interval_wh.get(t, 0) / 1000]
    return {"intervals": len(done), "last": max(done, default=None), "differ": wrong}


def bench(spec: Path, overrides: list[str], out: Path) -> dict[str, Any]:
    started = time.monotonic()
    with CpuSampler() as sampler:
        result = run(RunOptions(spec=spec, overrides=overrides, out=out, progress=sys.stderr))
    wall = time.monotonic() - started
    s = result.summary
    hosts = [p for p in (s.get("processes") or {}).values() if p.get("role") == "prosumer"]
    txs = sum(g.get("count", 0) for g in (s.get("gas") or {}).values())
    market = replay_of(spec, overrides)
    per_interval = interval_seconds(result.bundle / "events")
    blocks = blocks_per_interval(result.bundle / "events")
    return {
        "status": result.outcome.status,
        "exit_code": result.exit_code,
        "wall_seconds": round(wall, 1),
        "seconds_per_interval": per_interval,
        "seconds_per_interval_mean_after_first": (
            round(sum(per_interval.values()) / len(per_interval), 2) if per_interval else None
        ),
        "blocks_per_interval": blocks,
        "blocks_per_interval_mean": round(sum(blocks.values()) / len(blocks), 1)
        if blocks
        else None,
        "transactions": txs,
        "tx_per_second_to_node": round(txs / wall, 1),
        "offers": s.get("offers"),
        "prosumer_hosts": len(hosts),
        "max_peak_rss_mb_host": max((p.get("peak_rss_mb") or 0 for p in hosts), default=None),
        "max_peak_rss_mb_per_prosumer": max(
            (p.get("peak_rss_mb_per_prosumer") or 0 for p in hosts), default=None
        ),
        "peak_rss_mb": {
            n: p.get("peak_rss_mb")
            for n, p in (s.get("processes") or {}).items()
            if p.get("role") != "prosumer"
        },
        "total_energy_traded_wh": s.get("total_energy_traded_wh"),
        "replay_total_wh": market.total_wh,
        "equals_replay": s.get("total_energy_traded_wh") == market.total_wh
        and s.get("per_interval_kwh")
        == {str(t): wh / 1000 for t, wh in sorted(market.per_interval_wh.items())},
        "finalized_vs_replay": finalized_vs_replay(result.bundle / "events", s, market),
        "tick_split": tick_split(result.bundle / "logs"),
        "cpu": cpu_split(sampler, result.bundle / "events"),
        "overrides": overrides,
        "anvil_states_kept": node.STATES_KEPT,
        "lockstep_mining": os.environ.get(miner.MODE_ENV, "on-demand"),
        "bundle": str(result.bundle),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=SPEC)
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--out", type=Path, default=REPO / "results" / "bench", help="results directory"
    )
    parser.add_argument(
        "--states-kept",
        type=int,
        default=node.STATES_KEPT,
        help="states anvil keeps in memory (each is a copy of the whole state: at 10x "
        "the default took anvil past 8 GB by interval 30)",
    )
    parser.add_argument(
        "--mining",
        choices=("on-demand", "automine"),
        default="on-demand",
        help="lockstep: the clock mines a block when transactions wait (agents/miner.py), "
        "or the node automines (a block per transaction, plus the senders' kicks)",
    )
    args = parser.parse_args(argv)
    os.environ[miner.MODE_ENV] = args.mining  # inherited by the clock process
    node.STATES_KEPT = args.states_kept  # read when the run builds anvil's command line
    report = bench(args.spec, [*DEFAULTS, *args.extra], args.out)
    print(json.dumps(report, indent=2))
    return 0 if report["exit_code"] == 0 and report["equals_replay"] else 1


if __name__ == "__main__":
    sys.exit(main())
