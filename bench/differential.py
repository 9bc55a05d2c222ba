"""The differential test's long run: the contract's verdict against market.verify's on
many generated cases (tests/integration/differential_cases.py, the generator the CI test
runs 520 cases of), on real anvils. Prints one JSON object: cases and comparisons per
second, the CPU seconds of the Python workers and of their anvils (from /proc), the
agreement (comparisons where the contract and market.verify agree on feasibility,
objective, violation kind, revert arguments and replacement), how often each rule
rejected something, and the first disagreements (with the case, to reproduce it).

A case posts offers, submits and finalizes a first solution (real transactions, a block
per step), then compares several solutions on that state (eth_call, one batch). Workers
run their own anvil each. A worker runs its cases in chunks of CHUNK, each a hypothesis
run of its own seed (seed, worker, chunk): hypothesis keeps every example it generated
in memory for the length of a run. After each chunk a worker prints its totals so far
as one JSON line on stderr (a run stopped early still says what it checked).

Hypothesis also draws values from the constants of every local module imported (not
tests/), so a seed gives the same cases only for the same code and imports.

    nice -n 10 .venv/bin/python bench/differential.py --cases 100000 --workers 2   # issue 14
    .venv/bin/python bench/differential.py --cases 200                             # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # `tests.integration.differential_cases` from a plain run

MAX_DISAGREEMENTS = 20  # kept in the output (all are counted)
CHUNK = 2_000  # cases per hypothesis run


def run_worker(cases: int, seed: int, worker: int = 0) -> dict[str, Any]:
    """`cases` generated cases on an anvil of its own; counters, disagreements, CPU."""
    from agents.chain.node import Anvil
    from tests.integration.differential_env import deploy_env

    stats: Counter[str] = Counter()
    disagreements: list[dict[str, Any]] = []
    began = time.monotonic()
    with Anvil() as anvil:
        env = deploy_env(anvil.url)
        for chunk, first in enumerate(range(0, cases, CHUNK)):
            _run_chunk(env, min(CHUNK, cases - first), (seed, worker, chunk), stats, disagreements)
            progress = {"worker": worker, "seconds": round(time.monotonic() - began, 1)}
            print(json.dumps({**progress, **stats}), file=sys.stderr, flush=True)
        anvil_cpu = _cpu_seconds(psutil.Process(anvil.pid))
        env.close()
    return {
        "stats": dict(stats),
        "disagreements": disagreements,
        "cpu": {"python": _cpu_seconds(psutil.Process()), "anvil": anvil_cpu},
    }


def _run_chunk(
    env: Any, cases: int, seed: tuple[int, ...], stats: Counter[str], out: list[dict[str, Any]]
) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    from tests.integration.differential_cases import Case, check_case
    from tests.integration.differential_cases import cases as generated

    @hypothesis_seed(hash(seed))  # ints' hash: the same in every process
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        phases=[Phase.generate],  # no shrinking: a disagreement is recorded, not raised
        suppress_health_check=list(HealthCheck),
    )
    @given(case=generated())
    def check(case: Case) -> None:
        checked = check_case(env, case)
        stats.update(checked.labels)
        stats["cases"] += 1
        stats["checks disagreeing"] += bool(checked.disagreements)
        if checked.disagreements and len(out) < MAX_DISAGREEMENTS:
            out.append({"what": checked.disagreements, "seed": list(seed), "case": repr(case)})

    check()


def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return round(times.user + times.system, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="generated cases (all workers)")
    parser.add_argument("--workers", type=int, default=1, help="anvils in parallel")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    shares = [
        args.cases // args.workers + (i < args.cases % args.workers) for i in range(args.workers)
    ]
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    with ProcessPoolExecutor(args.workers) as pool:
        seeds = [args.seed] * args.workers
        results = list(pool.map(run_worker, shares, seeds, range(args.workers)))
    seconds = time.monotonic() - began
    stats: Counter[str] = Counter()
    for r in results:
        stats.update(r["stats"])
    out = report(args, stats, seconds, results)
    out["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(out, indent=2))


def report(
    args: argparse.Namespace, stats: Counter[str], seconds: float, results: list[Any]
) -> dict[str, Any]:
    from market.rules import ONCHAIN

    cases, checks = stats["cases"], stats["checked"]
    disagreeing = stats["checks disagreeing"]
    cpu = {k: round(sum(r["cpu"][k] for r in results), 1) for k in ("python", "anvil")}
    return {
        "bench": "differential",
        "cases": cases,
        "comparisons": checks,
        "workers": args.workers,
        "seed": args.seed,
        "cpus": os.cpu_count(),
        "seconds": round(seconds, 1),
        "cases_per_s": round(cases / seconds, 2),
        "comparisons_per_s": round(checks / seconds, 2),
        "cpu_seconds": cpu,
        "cpu_ms_per_case": round(1000 * (cpu["python"] + cpu["anvil"]) / cases, 2)
        if cases
        else None,
        "cases_disagreeing": disagreeing,
        "agreement": round(1 - disagreeing / cases, 6) if cases else None,
        "feasible": stats["feasible"],
        "infeasible": stats["infeasible"],
        "replaces": stats["replaces"],
        "not_better": stats["not better"],
        "with_fixed_trades": stats["with fixed trades"],
        "rejections_by_rule": {str(k): stats[str(k)] for k in ONCHAIN},
        "disagreements": [d for r in results for d in r["disagreements"]][:MAX_DISAGREEMENTS],
    }


if __name__ == "__main__":
    main()
