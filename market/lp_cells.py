"""The HiGHS engine's LP: the paper's LP projected onto offer cells (an exact reformulation).

The paper's LP has one variable per matchable triple (s, b, t): sellers x buyers per
interval, 10^5 at paper scale and 10^7 at 10x. But the constraints see a solution only
through each offer's energy per interval and, per feeder and interval, the sums of
those. So this LP has one variable per seller cell, x[s, t] (Wh sold by offer class s in
t), and per buyer cell, y[b, t], with (3), (4), (5)-(8) written on them, plus what makes
(x, y) splittable into trades between matchable pairs: per interval a transportation
problem with supplies x and demands y, where s may serve b iff R_s <= R_b.

Gale's theorem: it is feasible iff Σx = Σy and every set S of sellers has
x(S) <= y(N(S)). Neighbourhoods are nested (a higher R_s sees a subset of the
buyers), so only the sets {s: R_s >= r} matter, r ranging over the sellers' prices at
t. With those levels in descending order r_1 > r_2 > ... > r_L, a chain variable
u_j = Σ{y: R_b >= r_j} - Σ{x: R_s >= r_j} >= 0 per level gives one equality row per
level (each cell in exactly one row) and u_L = 0 is the balance. Buyers below r_L and
sellers above every buyer's price at t cannot trade and get no cell.

Back to trades (`pair`): per interval, sellers by descending price take from buyers by
descending price (two pointers); by the level conditions every seller finds enough
buyers at or above its price. Both LPs thus have the same optimum (the tests hold this
engine against the GLPK model of the paper's LP).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from market.lp import FloatArray, IntArray, Prepared, Variables, cells_of


@dataclass(frozen=True)
class CellLp:
    """Columns: x cells, then y cells, then the chain variables u (one per level)."""

    xs: IntArray  # seller class of each x cell
    xt: IntArray
    yb: IntArray  # buyer class of each y cell
    yt: IntArray
    level_price: IntArray  # the sellers' price levels, grouped by interval, descending
    level_t: IntArray
    col_upper: FloatArray
    cost: FloatArray
    row_lower: FloatArray
    row_upper: FloatArray
    matrix: sp.csr_matrix

    @property
    def columns(self) -> int:
        return len(self.col_upper)

    @property
    def rows(self) -> int:
        return len(self.row_lower)


def build(prep: Prepared) -> CellLp:
    sells, buys = prep.sells, prep.buys
    xs, xt = cells_of(sells)
    yb, yt = cells_of(buys)
    width, t0 = prep.width, prep.t0
    # Highest buyer price per interval; lowest seller price per interval.
    best_buy = np.full(width, np.iinfo(np.int64).min)
    np.maximum.at(best_buy, yt - t0, buys.price[yb])
    keep_x = sells.price[xs] <= best_buy[xt - t0]
    xs, xt = xs[keep_x], xt[keep_x]
    # Levels: distinct (t, seller price), price descending within t.
    prices = np.unique(np.concatenate([sells.price[xs], buys.price[yb]]))
    n_p = len(prices)

    def level_key(t: IntArray, price: IntArray) -> IntArray:
        return (t - t0) * n_p + (n_p - 1 - np.searchsorted(prices, price))

    x_key = level_key(xt, sells.price[xs])
    level_keys, x_level = np.unique(x_key, return_inverse=True)
    level_t = level_keys // n_p + t0
    level_price = prices[n_p - 1 - level_keys % n_p]
    # A buyer cell joins the first level (highest price) it can pay, in its interval.
    y_level = np.searchsorted(level_keys, level_key(yt, buys.price[yb]), side="left")
    keep_y = y_level < len(level_keys)
    keep_y[keep_y] = level_t[y_level[keep_y]] == yt[keep_y]
    yb, yt, y_level = yb[keep_y], yt[keep_y], y_level[keep_y]

    nx, ny, nl = len(xs), len(yb), len(level_keys)
    x_cols = np.arange(nx)
    y_cols = nx + np.arange(ny)
    u_cols = nx + ny + np.arange(nl)
    rows = _Rows()
    inf = np.inf
    # (3), (4)
    uniq = rows.add(xs, x_cols, 1.0)
    rows.bounds(-inf, sells.rem[uniq])
    uniq = rows.add(yb, y_cols, 1.0)
    rows.bounds(-inf, buys.rem[uniq])
    # (8), (7)
    fx = sells.fpos[xs] * width + (xt - t0)
    fy = buys.fpos[yb] * width + (yt - t0)
    uniq = rows.add(fx, x_cols, 1.0)
    f, c = np.divmod(uniq, width)
    rows.bounds(-inf, prep.c_int[f] - prep.base_sold[f, c])
    uniq = rows.add(fy, y_cols, 1.0)
    f, c = np.divmod(uniq, width)
    rows.bounds(-inf, prep.c_int[f] - prep.base_bought[f, c])
    # (5), (6): sold - bought per feeder and interval.
    uniq = rows.add_signed(np.concatenate([fx, fy]), np.concatenate([x_cols, y_cols]), nx)
    f, c = np.divmod(uniq, width)
    net = prep.base_sold[f, c] - prep.base_bought[f, c]
    rows.bounds(-prep.c_ext[f] - net, prep.c_ext[f] - net)
    # Levels: u_j - u_{j-1} + Σ x at level j - Σ y joining at j = 0.
    first = np.ones(nl, dtype=bool)
    first[1:] = level_t[1:] != level_t[:-1]
    last = np.ones(nl, dtype=bool)
    last[:-1] = level_t[1:] != level_t[:-1]
    prev = np.flatnonzero(~first)
    rows.add_raw(
        np.concatenate([x_level, y_level, np.arange(nl), prev]),
        np.concatenate([x_cols, y_cols, u_cols, u_cols[prev - 1]]),
        np.concatenate([np.ones(nx), -np.ones(ny), np.ones(nl), -np.ones(len(prev))]),
        nl,
    )
    rows.bounds(np.zeros(nl), np.zeros(nl))

    col_upper = np.concatenate([sells.rem[xs], buys.rem[yb], np.where(last, 0, inf)]).astype(
        np.float64
    )
    cost = np.concatenate([np.ones(nx), np.zeros(ny + nl)])
    return CellLp(xs, xt, yb, yt, level_price, level_t, col_upper, cost, *rows.finish(nx + ny + nl))


class _Rows:
    """Accumulates COO triplets and row bounds, numbering rows as they come."""

    def __init__(self) -> None:
        self.r: list[IntArray] = []
        self.c: list[IntArray] = []
        self.v: list[FloatArray] = []
        self.lo: list[FloatArray] = []
        self.hi: list[FloatArray] = []
        self.n = 0

    def add_raw(self, row: IntArray, col: IntArray, val: FloatArray, count: int) -> None:
        self.r.append(self.n + row)
        self.c.append(col)
        self.v.append(val)
        self.n += count

    def add(self, keys: IntArray, cols: IntArray, coef: float) -> IntArray:
        uniq, inverse = np.unique(keys, return_inverse=True)
        self.add_raw(inverse.astype(np.int64), cols, np.full(len(cols), coef), len(uniq))
        return uniq

    def add_signed(self, keys: IntArray, cols: IntArray, n_plus: int) -> IntArray:
        """Like `add`, with +1 for the first `n_plus` entries and -1 for the rest."""
        uniq, inverse = np.unique(keys, return_inverse=True)
        val = np.concatenate([np.ones(n_plus), -np.ones(len(cols) - n_plus)])
        self.add_raw(inverse.astype(np.int64), cols, val, len(uniq))
        return uniq

    def bounds(self, lo: FloatArray | float, hi: FloatArray | IntArray) -> None:
        hi_arr = np.asarray(hi, dtype=np.float64)
        self.lo.append(np.broadcast_to(np.asarray(lo, dtype=np.float64), hi_arr.shape).copy())
        self.hi.append(hi_arr)

    def finish(self, n_cols: int) -> tuple[FloatArray, FloatArray, sp.csr_matrix]:
        matrix = sp.csr_matrix(
            (np.concatenate(self.v), (np.concatenate(self.r), np.concatenate(self.c))),
            shape=(self.n, n_cols),
        )
        return np.concatenate(self.lo), np.concatenate(self.hi), matrix


def pair(
    prep: Prepared, lp: CellLp, values: FloatArray, eps: float = 1e-9
) -> tuple[Variables, FloatArray]:
    """Trades (class triples, Wh) from an optimal (x, y): per interval, sellers by
    descending price (then class) take from buyers by descending price (then class),
    the buyers' pointer only moving forward. Returns the triples in canonical order."""
    nx, ny = len(lp.xs), len(lp.yb)
    x, left = values[:nx], values[nx : nx + ny].copy()
    sx, sy = np.flatnonzero(x > eps), np.flatnonzero(left > eps)
    sx = sx[np.lexsort((lp.xs[sx], -prep.sells.price[lp.xs[sx]], lp.xt[sx]))]
    sy = sy[np.lexsort((lp.yb[sy], -prep.buys.price[lp.yb[sy]], lp.yt[sy]))]
    y_t = lp.yt[sy]
    y_cls = lp.yb[sy].tolist()
    y_price = prep.buys.price[lp.yb[sy]].tolist()
    y_idx = sy.tolist()
    found: list[tuple[int, int, int, float]] = []
    t_now, k, end = None, 0, 0
    for i in sx.tolist():
        t, cls = int(lp.xt[i]), int(lp.xs[i])
        if t != t_now:
            t_now = t
            k = int(np.searchsorted(y_t, t, side="left"))
            end = int(np.searchsorted(y_t, t, side="right"))
        price, need = int(prep.sells.price[cls]), float(x[i])
        while need > eps and k < end and y_price[k] >= price:
            part = min(need, float(left[y_idx[k]]))
            found.append((t, cls, y_cls[k], part))
            need -= part
            left[y_idx[k]] -= part
            if left[y_idx[k]] <= eps:
                k += 1
    found.sort()
    arr = np.array([(t, s, b) for t, s, b, _ in found], dtype=np.int64).reshape(len(found), 3)
    energy = np.array([e for *_, e in found], dtype=np.float64)
    return Variables(arr[:, 1].copy(), arr[:, 2].copy(), arr[:, 0].copy()), energy
