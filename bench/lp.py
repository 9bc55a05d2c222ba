"""LP engines head to head: build and solve seconds, sizes, objectives. Prints one JSON object.

    .venv/bin/python bench/lp.py [--no-glpk] [--seed 1] [--tie-break expiring-first]

Cases (prices uniform: sells 100000, buys 200000; every feeder c_ext = 20000 Wh and
c_int = 25000 Wh per interval, as in the released TRANSAX code):
- transax_with_battery_all_at_once: the public withBattery traces ($TRANSAX_DATA or
  ../shared/datasets/transax-phase2), all 96 intervals and every offer visible at once.
- synthetic_x10_solver_step: the seeded synthetic microgrid at 10x the paper (1,020
  prosumers, 110 feeders) with batteries; the extended problem one solver faces at clock
  interval 60 with L = 2 (offers with start <= 61 visible, free interval 61, no fixed
  trades): every one of the 500 battery offers competes for every buyer. The GLPK model of
  a whole 10x day (2.8M to 23M triples) does not fit this machine, so this is the 10x case
  both engines can run.
- synthetic_x10_with_battery_all_at_once, synthetic_x10_no_battery_all_at_once: the whole
  10x day, every offer visible at once; HiGHS only.
- transax_with_battery_replay_L5: the solver's real workload, `market.replay` of the
  public withBattery day with L = 5 (96 solves), HiGHS; `solve_seconds_total` sums the
  solves' build and solver seconds.
Every solve uses the tie-break policy `--tie-break` (market.tiebreak; default: the
market's default). "none" is the single-stage solve; a policy adds a second stage (the
total fixed, the secondary cost minimised, warm-started from the first stage's basis).
Per engine: `build_s` (validate + lay out + build the model), `solve_s` (solver call;
for glpk including Pyomo's LP file and glpsol), `total_s` (the whole `market.solve`:
also rounding, splitting and verification), `variables`/`constraints` of the model handed
to the solver (HiGHS solves the exact cell reformulation of market.lp_cells, GLPK the
paper's LP), `triples` (matchable (s, b, t): the paper's LP variables),
`lp_objective_wh`, `objective_wh` (integer, verified).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import highspy
import numpy as np

from market.lp import Prepared, cells_of, prepare
from market.replay import replay
from market.solve import solve
from market.tiebreak import DEFAULT_TIE_BREAK, TIE_BREAKS
from market.types import Feeder, Problem
from orchestrator.datasets import load_transax, synthesize, to_market_offers

SELL_PRICE, BUY_PRICE = 100_000, 200_000
C_EXT_WH, C_INT_WH = 20_000, 25_000
REPO = Path(__file__).resolve().parent.parent
TRANSAX = Path(os.environ.get("TRANSAX_DATA", REPO.parent / "shared/datasets/transax-phase2"))
X10_CLOCK, X10_WINDOW = 60, 2


def _problem(dataset: Any, first: int = 1, last: int = 96) -> Problem:
    offers = to_market_offers(dataset, SELL_PRICE, BUY_PRICE, first, last)
    feeders = tuple(Feeder(f, C_EXT_WH, C_INT_WH) for f in dataset.feeders)
    return Problem(feeders, tuple(offers))


def _step(problem: Problem, clock: int, window: int) -> Problem:
    """The extended problem at `clock`: offers visible L - 1 intervals ahead."""
    visible = tuple(
        o for o in problem.offers if o.start <= clock + window - 1 and o.end >= clock + 1
    )
    return Problem(problem.feeders, visible, (), clock + 1)


def _run(
    problem: Problem, engine: str, tie_break: str, last_interval: int | None
) -> dict[str, Any]:
    start = time.perf_counter()
    result = solve(problem, engine, last_interval=last_interval, tie_break=tie_break)
    total = time.perf_counter() - start
    return {
        "build_s": round(result.build_seconds, 4),
        "solve_s": round(result.solve_seconds, 4),
        "build_plus_solve_s": round(result.build_seconds + result.solve_seconds, 4),
        "total_s": round(total, 4),
        "variables": result.variables,
        "constraints": result.constraints,
        "lp_objective_wh": round(result.lp_objective, 3),
        "objective_wh": result.solution.objective,
        "trades": len(result.solution.trades),
    }


def _case(
    problem: Problem, engines: list[str], tie_break: str, last_interval: int | None = None
) -> dict[str, Any]:
    triples = _count_triples(prepare(problem, last_interval, aggregate=False))
    out: dict[str, Any] = {"offers": len(problem.offers), "triples": triples}
    for engine in engines:
        out[engine] = _run(problem, engine, tie_break, last_interval)
        print(f"# {engine}: {out[engine]}", file=sys.stderr, flush=True)
    if "highs" in out and "glpk" in out:
        out["glpk_over_highs_total"] = round(out["glpk"]["total_s"] / out["highs"]["total_s"], 1)
        out["same_lp_optimum"] = bool(
            abs(out["glpk"]["lp_objective_wh"] - out["highs"]["lp_objective_wh"])
            <= 1e-6 * max(1.0, abs(out["glpk"]["lp_objective_wh"]))
        )
    return out


def _replay(problem: Problem, tie_break: str, window: int = 5) -> dict[str, Any]:
    start = time.perf_counter()
    result = replay(
        problem.feeders,
        problem.offers,
        first_interval=1,
        last_interval=96,
        prediction_window=window,
        tie_break=tie_break,
    )
    return {
        "solves": result.solves,
        "solve_seconds_total": round(result.solve_seconds_total, 3),
        "wall_s": round(time.perf_counter() - start, 3),
        "total_wh": result.total_wh,
    }


def _count_triples(prep: Prepared) -> int:
    """Matchable (s, b, t) without listing them: per seller cell, the buyer cells of
    the same interval with a price at least the seller's."""
    s_cls, s_t = cells_of(prep.sells)
    b_cls, b_t = cells_of(prep.buys)
    s_price, b_price = prep.sells.price[s_cls], prep.buys.price[b_cls]
    order = np.lexsort((b_price, b_t))
    b_t, b_price = b_t[order], b_price[order]
    total = 0
    for t in np.unique(s_t).tolist():
        lo, hi = np.searchsorted(b_t, t, side="left"), np.searchsorted(b_t, t, side="right")
        here = s_t == t
        cheaper = np.searchsorted(b_price[lo:hi], s_price[here], side="left")
        total += int(((hi - lo) - cheaper).sum())
    return total


def _glpsol_version() -> str:
    try:
        run = subprocess.run(["glpsol", "--version"], capture_output=True, text=True, check=False)
    except OSError:
        return "missing"
    return run.stdout.splitlines()[0] if run.stdout else "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-glpk", action="store_true", help="HiGHS only")
    parser.add_argument("--seed", type=int, default=1, help="synthetic microgrid seed")
    parser.add_argument("--tie-break", choices=TIE_BREAKS, default=DEFAULT_TIE_BREAK)
    args = parser.parse_args(argv)
    tie = args.tie_break
    engines = ["highs"] if args.no_glpk else ["highs", "glpk"]
    report: dict[str, Any] = {
        "tie_break": tie,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "highspy": highspy.Highs().version(),
            "glpsol": _glpsol_version(),
        },
        "limits_wh_per_interval": {"c_ext": C_EXT_WH, "c_int": C_INT_WH},
    }
    with_battery = TRANSAX / "withBattery"
    if with_battery.is_dir():
        paper = _problem(load_transax(with_battery))
        report["transax_with_battery_all_at_once"] = _case(paper, engines, tie)
        report["transax_with_battery_replay_L5"] = _replay(paper, tie)
    else:
        report["transax_with_battery_all_at_once"] = {"skipped": f"no traces at {with_battery}"}

    x10 = _problem(synthesize(seed=args.seed, battery=True, scale=10))
    step = _step(x10, X10_CLOCK, X10_WINDOW)
    report["synthetic_x10_solver_step"] = {
        "seed": args.seed,
        "clock": X10_CLOCK,
        "prediction_window": X10_WINDOW,
        **_case(step, engines, tie),
    }
    report["synthetic_x10_with_battery_all_at_once"] = _case(x10, ["highs"], tie)
    plain = _problem(synthesize(seed=args.seed, battery=False, scale=10))
    report["synthetic_x10_no_battery_all_at_once"] = _case(plain, ["highs"], tie)

    paper_case = report["transax_with_battery_all_at_once"]
    report["goals"] = {
        "highs_paper_build_plus_solve_s": paper_case.get("highs", {}).get("build_plus_solve_s"),
        "highs_paper_under_0_5_s": paper_case.get("highs", {}).get("build_plus_solve_s", 1e9) < 0.5,
        "x10_glpk_over_highs_total": report["synthetic_x10_solver_step"].get(
            "glpk_over_highs_total"
        ),
    }
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
