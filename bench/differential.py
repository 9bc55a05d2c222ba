"""The differential test's long run: the contract's verdict against market.verify's on
many generated cases (tests/integration/differential_cases.py, the generator the CI test
runs 520 cases of), on real anvils. Prints one JSON object: cases and comparisons per
second, the agreement (comparisons where the contract and market.verify agree on
feasibility, objective, violation kind, revert arguments and replacement), how often
each rule rejected something, and the first disagreements.

A case posts offers, submits and finalizes a first solution (the expensive part: real
transactions), then compares several solutions on that state (eth_call). Workers run
their own anvil each, with their own seed. Issue 14: a 100,000-case offline run:

    .venv/bin/python bench/differential.py --cases 100000 --workers 2
    .venv/bin/python bench/differential.py --cases 200            # a quick look
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # `tests.integration.differential_cases` from a plain run

MAX_DISAGREEMENTS = 20  # kept in the output (all are counted)


def run_worker(cases: int, seed: int) -> dict[str, Any]:
    """`cases` generated cases on an anvil of its own; counters and disagreements."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    from agents.chain.node import Anvil
    from tests.integration.differential_cases import Case, check_case
    from tests.integration.differential_cases import cases as generated
    from tests.integration.differential_env import deploy_env

    stats: Counter[str] = Counter()
    disagreements: list[dict[str, Any]] = []
    with Anvil() as anvil:
        env = deploy_env(anvil.url)

        @hypothesis_seed(seed)
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
            if checked.disagreements and len(disagreements) < MAX_DISAGREEMENTS:
                disagreements.append({"what": checked.disagreements, "case": repr(case)})

        check()
    return {"stats": dict(stats), "disagreements": disagreements}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="generated cases (all workers)")
    parser.add_argument("--workers", type=int, default=1, help="anvils in parallel")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    shares = [
        args.cases // args.workers + (i < args.cases % args.workers) for i in range(args.workers)
    ]
    began = time.monotonic()
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run_worker, shares, [args.seed + i for i in range(args.workers)]))
    seconds = time.monotonic() - began
    stats: Counter[str] = Counter()
    for r in results:
        stats.update(r["stats"])
    checks = stats["checked"]
    print(json.dumps(report(args, stats, checks, seconds, results), indent=2))


def report(
    args: argparse.Namespace, stats: Counter[str], checks: int, seconds: float, results: list[Any]
) -> dict[str, Any]:
    from market.rules import ONCHAIN

    cases = stats["cases"]
    disagreeing = stats["checks disagreeing"]
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
