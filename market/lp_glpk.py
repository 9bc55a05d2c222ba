"""Engine "glpk": the reference. A Pyomo ConcreteModel written row by row, the way the
paper states the LP, and solved by GLPK's `glpsol`.

It shares only `prepare` (validation, canonical offer order, fixed trades) with the
HiGHS engine; matchable triples are enumerated here with plain loops, so the tests can
hold the vectorised builder against it.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyomo.environ as pyo
from pyomo.opt import SolverStatus, TerminationCondition

from market.errors import MarketError
from market.lp import FloatArray, Prepared, Variables


def enumerate_matchable(prep: Prepared) -> Variables:
    """Matchable triples (section 4.2), in the canonical order (interval, seller, buyer)."""
    sells, buys = prep.sells, prep.buys
    by_interval: dict[int, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for i in range(len(sells)):
        for t in range(int(sells.lo[i]), int(sells.hi[i]) + 1):
            by_interval[t][0].append(i)
    for j in range(len(buys)):
        for t in range(int(buys.lo[j]), int(buys.hi[j]) + 1):
            by_interval[t][1].append(j)
    triples = [
        (i, j, t)
        for t in sorted(by_interval)
        for i in by_interval[t][0]
        for j in by_interval[t][1]
        if sells.price[i] <= buys.price[j]
    ]
    arr = np.array(triples, dtype=np.int64).reshape(len(triples), 3)
    return Variables(arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy())


def build(prep: Prepared, var: Variables) -> pyo.ConcreteModel:
    n = len(var)
    s_list, b_list, t_list = var.s.tolist(), var.b.tolist(), var.t.tolist()
    fs = [int(prep.sells.fpos[i]) for i in s_list]
    fb = [int(prep.buys.fpos[j]) for j in b_list]
    by_seller: dict[int, list[int]] = defaultdict(list)
    by_buyer: dict[int, list[int]] = defaultdict(list)
    sold: dict[tuple[int, int], list[int]] = defaultdict(list)
    bought: dict[tuple[int, int], list[int]] = defaultdict(list)
    for k in range(n):
        by_seller[s_list[k]].append(k)
        by_buyer[b_list[k]].append(k)
        sold[fs[k], t_list[k]].append(k)
        bought[fb[k], t_list[k]].append(k)

    def base(table: np.ndarray, f: int, t: int) -> int:
        return int(table[f, t - prep.t0])

    m = pyo.ConcreteModel()
    m.V = pyo.RangeSet(0, n - 1)
    m.p = pyo.Var(m.V, domain=pyo.NonNegativeReals)
    m.total = pyo.Objective(expr=pyo.quicksum(m.p[k] for k in m.V), sense=pyo.maximize)
    m.sell_energy = pyo.Constraint(  # (3)
        sorted(by_seller),
        rule=lambda m, i: pyo.quicksum(m.p[k] for k in by_seller[i]) <= int(prep.sells.rem[i]),
    )
    m.buy_energy = pyo.Constraint(  # (4)
        sorted(by_buyer),
        rule=lambda m, j: pyo.quicksum(m.p[k] for k in by_buyer[j]) <= int(prep.buys.rem[j]),
    )

    def net_rule(m: pyo.ConcreteModel, f: int, t: int) -> object:  # (5), (6)
        out = [k for k in sold.get((f, t), []) if fb[k] != f]
        into = [k for k in bought.get((f, t), []) if fs[k] != f]
        if not out and not into:
            return pyo.Constraint.Skip
        net = base(prep.base_sold, f, t) - base(prep.base_bought, f, t)
        limit = int(prep.c_ext[f])
        flow = pyo.quicksum(m.p[k] for k in out) - pyo.quicksum(m.p[k] for k in into)
        return (-limit - net, flow, limit - net)

    keys = sorted(set(sold) | set(bought))
    m.feeder_net = pyo.Constraint(keys, rule=net_rule)
    m.consumption = pyo.Constraint(  # (7)
        sorted(bought),
        rule=lambda m, f, t: pyo.quicksum(m.p[k] for k in bought[f, t])
        <= int(prep.c_int[f]) - base(prep.base_bought, f, t),
    )
    m.production = pyo.Constraint(  # (8)
        sorted(sold),
        rule=lambda m, f, t: pyo.quicksum(m.p[k] for k in sold[f, t])
        <= int(prep.c_int[f]) - base(prep.base_sold, f, t),
    )
    return m


def count_constraints(m: pyo.ConcreteModel) -> int:
    return sum(1 for _ in m.component_data_objects(pyo.Constraint, active=True))


@dataclass(frozen=True)
class GlpkOutcome:
    """`objective`: total energy of `x`; `secondary`: the tie-break cost of `x` (0.0
    without a second stage)."""

    status: str
    objective: float
    x: FloatArray
    secondary: float = 0.0


def run(m: pyo.ConcreteModel, n: int, secondary: FloatArray | None = None) -> GlpkOutcome:
    """Solve with glpsol (simplex; deterministic for a given model file). With a
    `secondary` cost per variable, a second glpsol run minimises it with the total fixed
    at the first run's optimum (the lexicographic tie-break); the objective reported is
    the first run's, and if the second run does not end optimal, so is the solution."""
    if shutil.which("glpsol") is None:
        raise MarketError("engine 'glpk' needs the glpsol executable (Debian glpk-utils)")
    solver = pyo.SolverFactory("glpk")
    failed = _solve(solver, m)
    if failed is not None:
        return GlpkOutcome(failed, float("nan"), np.zeros(n))
    primary = float(pyo.value(m.total))
    x = _values(m, n)
    if secondary is not None and secondary.any():
        weights = secondary.tolist()
        m.total.deactivate()
        total = pyo.quicksum(m.p[k] for k in m.V)
        m.keep_total = pyo.Constraint(expr=total >= primary)
        m.tie_break = pyo.Objective(
            expr=pyo.quicksum(weights[k] * m.p[k] for k in m.V if weights[k]), sense=pyo.minimize
        )
        if _solve(solver, m) is None:
            x = _values(m, n)
    tie = float(secondary @ x) if secondary is not None else 0.0
    return GlpkOutcome("optimal", primary, x, tie)


def _values(m: pyo.ConcreteModel, n: int) -> FloatArray:
    return np.array([pyo.value(m.p[k]) or 0.0 for k in range(n)], dtype=np.float64)


def _solve(solver: object, m: pyo.ConcreteModel) -> str | None:
    """Solve and load; None if optimal, else the termination condition."""
    results = solver.solve(m, load_solutions=False, tee=False)  # type: ignore[attr-defined]
    cond = results.solver.termination_condition
    if results.solver.status != SolverStatus.ok or cond != TerminationCondition.optimal:
        return str(cond)
    m.solutions.load_from(results)
    return None
