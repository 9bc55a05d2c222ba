"""HiGHS in one call: an LP given as arrays (CSR matrix) is handed over by `passModel`.

The model itself is built, vectorised, by `market.lp_cells`. With a secondary cost (a
tie-break policy, `market.tiebreak`) the same HiGHS instance solves a second stage:
one row fixes the primary objective at its optimum, the costs are replaced by the
secondary ones and the sense turned to minimise; the simplex restarts from the first
stage's optimal basis, which stays feasible. The reported primary objective is the
first stage's: the second stage keeps it up to HiGHS' feasibility tolerance (1e-7 Wh),
which rounding's FLOOR_EPS absorbs. Should the second stage not end optimal (it starts
from a feasible basis, so only numerical trouble could do that), the first stage's
solution is returned: a total-energy optimum is never lost to the tie-break.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

from market.lp import FloatArray

HIGHS_OPTIONS: dict[str, object] = {
    "output_flag": False,
    "threads": 1,  # determinism
    "random_seed": 0,
    # Measured on the cell LPs of TRANSAX withBattery and the 10x synthetic day:
    # presolve only adds time (little to remove), so the dual simplex starts directly.
    "presolve": "off",
}
_ROWWISE = 2  # highspy.MatrixFormat.kRowwise
_MAXIMIZE = -1  # highspy.ObjSense.kMaximize


@dataclass(frozen=True)
class HighsOutcome:
    """`objective`: the primary optimum; `secondary`: the secondary cost of `x` (0.0
    without a second stage)."""

    status: str
    objective: float
    x: FloatArray
    secondary: float = 0.0


def run(
    cost: FloatArray,
    col_upper: FloatArray,
    row_lower: FloatArray,
    row_upper: FloatArray,
    a: sp.csr_matrix,
    secondary: FloatArray | None = None,
) -> HighsOutcome:
    """max cost·x  s.t.  row_lower <= A x <= row_upper,  0 <= x <= col_upper; then, if
    `secondary` is given, min secondary·x over those optima. HiGHS (`HIGHS_OPTIONS`:
    silent, one thread, dual simplex)."""
    n = len(col_upper)
    h = highspy.Highs()
    for name, value in HIGHS_OPTIONS.items():
        h.setOptionValue(name, value)
    passed = h.passModel(
        n,
        len(row_lower),
        int(a.nnz),
        _ROWWISE,
        _MAXIMIZE,
        0.0,
        cost,
        np.zeros(n),
        col_upper,
        row_lower,
        row_upper,
        a.indptr[:-1].astype(np.int32),
        a.indices.astype(np.int32),
        a.data.astype(np.float64),
        np.zeros(n, dtype=np.int32),  # all continuous (an empty array is rejected)
    )
    if passed != highspy.HighsStatus.kOk:
        return HighsOutcome(f"passModel: {passed}", float("nan"), np.zeros(n))
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return HighsOutcome(status, float("nan"), np.zeros(n))
    primary = float(h.getInfo().objective_function_value)
    if secondary is None or not secondary.any():
        x = np.asarray(h.getSolution().col_value, dtype=np.float64)
        return HighsOutcome(status, primary, x)
    return _second_stage(h, cost, primary, secondary)


def _second_stage(
    h: highspy.Highs, cost: FloatArray, primary: float, secondary: FloatArray
) -> HighsOutcome:
    n = len(cost)
    first = np.asarray(h.getSolution().col_value, dtype=np.float64)
    on = np.flatnonzero(cost).astype(np.int32)
    h.addRow(primary, np.inf, len(on), on, cost[on])
    h.changeColsCost(n, np.arange(n, dtype=np.int32), secondary.astype(np.float64))
    h.changeObjectiveSense(highspy.ObjSense.kMinimize)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return HighsOutcome("Optimal", primary, first, float(secondary @ first))
    status = h.modelStatusToString(h.getModelStatus())
    x = np.asarray(h.getSolution().col_value, dtype=np.float64)
    return HighsOutcome(status, primary, x, float(h.getInfo().objective_function_value))
