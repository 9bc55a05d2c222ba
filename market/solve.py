"""Solve the (extended) energy trading problem, paper sections 4.3 and 5.1.

`solve(problem, engine)` maximises the energy traded (16) over the free intervals
(intervals >= `problem.free_from`, or all of them; and <= `last_interval` if given),
with the fixed trades using up offer energy and feeder limits. Engines: "highs"
(vectorised arrays, `market.lp_highs`) and "glpk" (Pyomo + glpsol, `market.lp_glpk`);
they reach the same LP optimum.

HiGHS solves the exact cell reformulation of `market.lp_cells` (one variable per
offer class and interval instead of per matchable triple); GLPK the paper's LP as
written. `variables`/`constraints` describe the model the engine solved.

`tie_break` (`market.tiebreak`) chooses among the optima: the total energy is
maximised first, exactly as without a policy, then a secondary cost is minimised with
the total fixed; both engines minimise the same secondary cost.

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

from market import lp_cells, lp_highs, tiebreak
from market.errors import MarketError
from market.lp import FloatArray, IntArray, Prepared, Variables, prepare, split
from market.rounding import round_solution
from market.types import Problem, Solution, Trade
from market.verify import verify

ENGINES = ("highs", "glpk")
TIE_BREAKS = tiebreak.TIE_BREAKS

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
    problem), and the solver call (for glpk including Pyomo's file round trip; with a
    tie-break, both stages). `tie_break_cost`: the secondary cost of the LP solution
    (0.0 for "none"), the same for both engines."""

    solution: Solution
    lp_objective: float
    build_seconds: float
    solve_seconds: float
    variables: int
    constraints: int
    engine: str
    status: SolveStatus = SolveStatus.OPTIMAL
    tie_break: str = "none"
    tie_break_cost: float = 0.0


def solve(
    problem: Problem,
    engine: str = "highs",
    *,
    price_rule: PriceRule = midpoint_price,
    last_interval: int | None = None,
    tie_break: str = tiebreak.DEFAULT_TIE_BREAK,
) -> SolveResult:
    """Optimal integer solution of `problem` (see the module docstring).

    Raises MarketError for an unknown engine or tie-break policy, a malformed problem,
    fixed trades that are infeasible on their own, or a solver that does not report an
    optimum.
    """
    if engine not in ENGINES:
        raise MarketError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    tiebreak.check(tie_break)
    start = time.perf_counter()
    prep = prepare(problem, last_interval, aggregate=engine == "highs")
    tie_cost = 0.0
    if engine == "highs":
        cell_lp = lp_cells.build(prep)
        columns, rows = cell_lp.columns, cell_lp.rows
        secondary = _cell_weights(tie_break, prep, cell_lp)
        built = time.perf_counter()
        status_text, lp_obj, values = "optimal", 0.0, np.zeros(0)
        if columns:
            outcome = lp_highs.run(
                cell_lp.cost,
                cell_lp.col_upper,
                cell_lp.row_lower,
                cell_lp.row_upper,
                cell_lp.matrix,
                secondary,
            )
            status_text, lp_obj, values = outcome.status, outcome.objective, outcome.x
            tie_cost = outcome.secondary
        solved = time.perf_counter()
        if _status(status_text) == SolveStatus.OPTIMAL:
            var, x = lp_cells.pair(prep, cell_lp, values)
    else:
        from market import lp_glpk  # Pyomo takes ~2 s to import: only when asked for

        var = lp_glpk.enumerate_matchable(prep)
        model = lp_glpk.build(prep, var)
        columns, rows = len(var), lp_glpk.count_constraints(model)
        secondary = _triple_weights(tie_break, prep, var)
        built = time.perf_counter()
        status_text, lp_obj, x = "optimal", 0.0, np.zeros(0)
        if columns:
            glpk = lp_glpk.run(model, len(var), secondary)
            status_text, lp_obj, x, tie_cost = glpk.status, glpk.objective, glpk.x, glpk.secondary
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
        tie_break=tie_break,
        tie_break_cost=tie_cost,
    )


def _cell_weights(policy: str, prep: Prepared, lp: lp_cells.CellLp) -> FloatArray | None:
    """The tie-break cost of the cell LP's columns (x cells, y cells, chain variables)."""
    if policy == "none":
        return None
    w = tiebreak.weights
    x = w(policy, prep.sells.hi[lp.xs], lp.xt, prep.t0, prep.width)
    y = w(policy, prep.buys.hi[lp.yb], lp.yt, prep.t0, prep.width)
    return np.concatenate([x, y, np.zeros(lp.columns - len(x) - len(y))])


def _triple_weights(policy: str, prep: Prepared, var: Variables) -> FloatArray | None:
    """The same cost on the paper's LP: p[s, b, t] carries both of its cells' weights."""
    if policy == "none":
        return None
    w = tiebreak.weights
    return w(policy, prep.sells.hi[var.s], var.t, prep.t0, prep.width) + w(
        policy, prep.buys.hi[var.b], var.t, prep.t0, prep.width
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
    "TIE_BREAKS",
    "PriceRule",
    "SolveResult",
    "SolveStatus",
    "midpoint_price",
    "solve",
    "sorted_trades",
]
