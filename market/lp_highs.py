"""Engine "highs": the LP built as sparse arrays and handed to HiGHS in one call.

No Python loop runs per variable or per row: rows are numbered with `np.unique` over
keys (seller, buyer, feeder-interval), the matrix is assembled as COO triplets and
converted to CSR by scipy, and `passModel` takes the arrays as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

from market.lp import FloatArray, IntArray, Prepared, Variables

HIGHS_OPTIONS: dict[str, object] = {
    "output_flag": False,
    "threads": 1,  # determinism
    "random_seed": 0,
    # Measured on the TRANSAX and 10x synthetic LPs: presolve costs 3-4x the time it
    # saves (the class LP has little to remove), so the dual simplex starts directly.
    "presolve": "off",
}
_ROWWISE = 2  # highspy.MatrixFormat.kRowwise
_MAXIMIZE = -1  # highspy.ObjSense.kMaximize


@dataclass(frozen=True)
class ArrayLp:
    """max 1·x  s.t.  row_lower <= A x <= row_upper,  0 <= x <= col_upper."""

    col_upper: FloatArray
    row_lower: FloatArray
    row_upper: FloatArray
    matrix: sp.csr_matrix

    @property
    def rows(self) -> int:
        return len(self.row_lower)


def build(prep: Prepared, var: Variables) -> ArrayLp:
    n = len(var)
    cols = np.arange(n, dtype=np.int64)
    fs = prep.sells.fpos[var.s]
    fb = prep.buys.fpos[var.b]
    col_t = var.t - prep.t0
    width = prep.width
    inf = np.inf

    row_ids: list[IntArray] = []
    col_ids: list[IntArray] = []
    coefs: list[FloatArray] = []
    lowers: list[FloatArray] = []
    uppers: list[FloatArray] = []
    offset = 0

    def add(keys: IntArray, columns: IntArray, coef: float) -> IntArray:
        """Rows for the distinct `keys` (sorted, so canonical); returns the keys."""
        nonlocal offset
        uniq, inverse = np.unique(keys, return_inverse=True)
        row_ids.append(offset + inverse.astype(np.int64))
        col_ids.append(columns)
        coefs.append(np.full(len(columns), coef))
        offset += len(uniq)
        return uniq

    # (3), (4): offer energy left after the fixed trades.
    for idx, table in ((var.s, prep.sells), (var.b, prep.buys)):
        uniq = add(idx, cols, 1.0)
        lowers.append(np.full(len(uniq), -inf))
        uppers.append(table.rem[uniq].astype(np.float64))
    # (8) production and (7) consumption per feeder and interval.
    for fpos, base in ((fs, prep.base_sold), (fb, prep.base_bought)):
        uniq = add(fpos * width + col_t, cols, 1.0)
        f, c = np.divmod(uniq, width)
        lowers.append(np.full(len(uniq), -inf))
        uppers.append((prep.c_int[f] - base[f, c]).astype(np.float64))
    # (5), (6): one ranged row per feeder and interval; same-feeder trades cancel out.
    cross = np.flatnonzero(fs != fb)
    keys = np.concatenate([fs[cross] * width + col_t[cross], fb[cross] * width + col_t[cross]])
    net_keys, net_rows = np.unique(keys, return_inverse=True)
    row_ids.append(offset + net_rows.astype(np.int64))
    col_ids.append(np.concatenate([cross, cross]))
    coefs.append(np.concatenate([np.ones(len(cross)), -np.ones(len(cross))]))
    nf, nc = np.divmod(net_keys, width)
    net = prep.base_sold[nf, nc] - prep.base_bought[nf, nc]
    lowers.append((-prep.c_ext[nf] - net).astype(np.float64))
    uppers.append((prep.c_ext[nf] - net).astype(np.float64))
    offset += len(net_keys)

    matrix = sp.csr_matrix(
        (np.concatenate(coefs), (np.concatenate(row_ids), np.concatenate(col_ids))),
        shape=(offset, n),
    )
    col_upper = np.minimum(prep.sells.rem[var.s], prep.buys.rem[var.b]).astype(np.float64)
    return ArrayLp(col_upper, np.concatenate(lowers), np.concatenate(uppers), matrix)


@dataclass(frozen=True)
class HighsOutcome:
    status: str
    objective: float
    x: FloatArray


def run(lp: ArrayLp) -> HighsOutcome:
    """Solve with HiGHS (`HIGHS_OPTIONS`: silent, one thread, dual simplex)."""
    n = len(lp.col_upper)
    a = lp.matrix
    h = highspy.Highs()
    for name, value in HIGHS_OPTIONS.items():
        h.setOptionValue(name, value)
    passed = h.passModel(
        n,
        lp.rows,
        int(a.nnz),
        _ROWWISE,
        _MAXIMIZE,
        0.0,
        np.ones(n),
        np.zeros(n),
        lp.col_upper,
        lp.row_lower,
        lp.row_upper,
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
    x = np.asarray(h.getSolution().col_value, dtype=np.float64)
    return HighsOutcome(status, float(h.getInfo().objective_function_value), x)
