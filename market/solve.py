"""Solve the (extended) energy trading problem, paper sections 4.3 and 5.1.

`solve(problem, engine)` maximises the energy traded (16) over the free intervals
(intervals >= `problem.free_from`, or all of them; and <= `last_interval` if given),
with the fixed trades using up offer energy and feeder limits. Engines: "highs"
(vectorised arrays, `market.lp_highs`) and "glpk" (Pyomo + glpsol, `market.lp_glpk`);
they reach the same LP optimum.

HiGHS solves the exact cell reformulation of `market.lp_cells` (one variable per
offer class and interval instead of per matchable triple); GLPK the paper's LP as
written. `variables`/`constraints` describe the model the engine solved.

The returned solution holds only free trades, with integer Wh (`market.rounding`) and
prices from `price_rule` (default `midpoint_price`), is verified feasible, and is a
deterministic function of the problem's content: the same problem, with its offers
in any order, gives the same trades byte for byte (for a given engine).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from market import lp_cells, lp_highs
from market.errors import MarketError
from market.lp import IntArray, Prepared, Variables, prepare, split
from market.rounding import round_solution
from market.types import Problem, Solution, Trade
from market.verify import verify

ENGINES = ("highs", "glpk")

PriceRule = Callable[[int, int], int]
"""Unit price of a trade from (seller reservation, buyer reservation)."""


def midpoint_price(seller_price: int, buyer_price: int) -> int:
    """π = (R_s + R_b) // 2: within [R_s, R_b] whenever R_s <= R_b, so (9) holds."""
    return (seller_price + buyer_price) // 2


class SolveStatus(StrEnum):
    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    ERROR = "error"


@dataclass(frozen=True)
class SolveResult:
    """`lp_objective` is the LP optimum in Wh (free part only); `solution.objective` the
    integer one, at most `lp_objective`. Seconds: model build (including preparing the
    problem), and the solver call (for glpk including Pyomo's file round trip)."""

    solution: Solution
    lp_objective: float
    build_seconds: float
    solve_seconds: float
    variables: int
    constraints: int
    engine: str
    status: SolveStatus = SolveStatus.OPTIMAL


def solve(
    problem: Problem,
    engine: str = "highs",
    *,
    price_rule: PriceRule = midpoint_price,
    last_interval: int | None = None,
) -> SolveResult:
    """Optimal integer solution of `problem` (see the module docstring).

    Raises MarketError for an unknown engine, a malformed problem, fixed trades that
    are infeasible on their own, or a solver that does not report an optimum.
    """
    if engine not in ENGINES:
        raise MarketError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    start = time.perf_counter()
    prep = prepare(problem, last_interval, aggregate=engine == "highs")
    if engine == "highs":
        cell_lp = lp_cells.build(prep)
        columns, rows = cell_lp.columns, cell_lp.rows
        built = time.perf_counter()
        status_text, lp_obj, values = "optimal", 0.0, np.zeros(0)
        if columns:
            outcome = lp_highs.run(
                cell_lp.cost,
                cell_lp.col_upper,
                cell_lp.row_lower,
                cell_lp.row_upper,
                cell_lp.matrix,
            )
            status_text, lp_obj, values = outcome.status, outcome.objective, outcome.x
        solved = time.perf_counter()
        if _status(status_text) == SolveStatus.OPTIMAL:
            var, x = lp_cells.pair(prep, cell_lp, values)
    else:
        from market import lp_glpk  # Pyomo takes ~2 s to import: only when asked for

        var = lp_glpk.enumerate_matchable(prep)
        model = lp_glpk.build(prep, var)
        columns, rows = len(var), lp_glpk.count_constraints(model)
        built = time.perf_counter()
        status_text, lp_obj, x = "optimal", 0.0, np.zeros(0)
        if columns:
            glpk = lp_glpk.run(model, len(var))
            status_text, lp_obj, x = glpk.status, glpk.objective, glpk.x
        solved = time.perf_counter()
    status = _status(status_text)
    if status != SolveStatus.OPTIMAL:
        raise MarketError(f"engine {engine}: solver reports {status_text!r}, not an optimum")
    solution = _to_solution(prep, var, round_solution(prep, var, x), price_rule)
    violations = verify(problem, solution)
    if violations:  # a bug, never an input problem: rounding keeps every row
        raise MarketError(f"engine {engine}: rounded solution infeasible: {violations[0].message}")
    return SolveResult(
        solution=solution,
        lp_objective=lp_obj,
        build_seconds=built - start,
        solve_seconds=solved - built,
        variables=columns,
        constraints=rows,
        engine=engine,
        status=status,
    )


def _status(text: str) -> SolveStatus:
    low = text.lower()
    if low == "optimal":
        return SolveStatus.OPTIMAL
    if "unbounded" in low and "infeasible" not in low:
        return SolveStatus.UNBOUNDED
    if "infeasible" in low:
        return SolveStatus.INFEASIBLE
    return SolveStatus.ERROR


def _to_solution(
    prep: Prepared, var: Variables, energy: IntArray, price_rule: PriceRule
) -> Solution:
    trades = [
        Trade(p.seller, p.buyer, p.interval, p.energy, price_rule(p.seller_price, p.buyer_price))
        for p in split(prep, var, energy)
    ]
    return Solution(sorted_trades(trades))


def sorted_trades(trades: Iterable[Trade]) -> tuple[Trade, ...]:
    """`trades` in Trade's own order (seller, buyer, interval, energy, price), sorted by a
    tuple key: much faster than the dataclass comparisons at 10^4-10^5 trades."""
    return tuple(sorted(trades, key=lambda t: (t.seller, t.buyer, t.interval, t.energy, t.price)))


__all__ = [
    "ENGINES",
    "PriceRule",
    "SolveResult",
    "SolveStatus",
    "midpoint_price",
    "solve",
    "sorted_trades",
]
