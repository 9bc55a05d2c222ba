"""From the LP optimum (real Wh) to integer trades that keep every constraint.

1. Floor: e = floor(x + 1e-6), at least 0. The 1e-6 absorbs solver noise such as
   2999.9999999 (HiGHS' feasibility tolerance is 1e-7); flooring alone keeps every
   row with only positive coefficients, (3), (4), (7), (8), up to that noise.
2. Repair: (5)/(6) mix signs (sold - bought), so flooring an inflow can push a
   feeder's net flow past c_ext. While a row is violated, decrement a trade of that
   row by at most the excess, preferring the trade whose decrement harms no other
   row (same-feeder trades never touch (5)/(6)), then the largest one. Every step
   lowers the total by at least 1 Wh; and because the fixed trades alone are
   feasible (checked by `prepare`), a violated row always has a trade to lower
   (e.g. net outflow > c_ext >= fixed net outflow implies a free outflow). So the
   loop ends feasible.
3. Fill: walk the LP's support in canonical order and raise each trade by the
   smallest slack of the rows it is in, until a pass changes nothing. This only
   uses slack, so it stays feasible, and wins back most of the Wh lost to flooring.
All steps are deterministic functions of the canonical variable order.
"""

from __future__ import annotations

import numpy as np

from market.errors import MarketError
from market.lp import FloatArray, IntArray, Prepared, Variables
from market.rules import RULE_OF, ViolationKind

FLOOR_EPS = 1e-6
# The feeder rows (market.rules) in the order the repair fixes them: the rows a cut of any
# of their trades lowers first, then the net flows, which only a cross-feeder trade moves.
# (Offer energy (3), (4) comes before them.) Fixed: the rounded result depends on it.
REPAIR_ORDER = (
    ViolationKind.FEEDER_INT_PRODUCTION,  # (8)
    ViolationKind.FEEDER_INT_CONSUMPTION,  # (7)
    ViolationKind.FEEDER_EXT_OUT,  # (5)
    ViolationKind.FEEDER_EXT_IN,  # (6)
)


def round_solution(prep: Prepared, var: Variables, x: FloatArray) -> IntArray:
    """Integer Wh per variable (aligned with `var`), feasible for `prep`."""
    energy = np.maximum(np.floor(x + FLOOR_EPS), 0).astype(np.int64)
    support = np.flatnonzero(x > FLOOR_EPS)
    state = _State(prep, var, energy, support)
    state.repair()
    state.fill()
    return state.energy


class _State:
    """Row activities of the current integer point, updated one trade at a time."""

    def __init__(self, prep: Prepared, var: Variables, energy: IntArray, support: IntArray):
        self.prep, self.energy, self.support = prep, energy, support
        e = energy[support]
        self.s, self.b = var.s[support], var.b[support]
        self.fs = prep.sells.fpos[self.s]
        self.fb = prep.buys.fpos[self.b]
        self.col = var.t[support] - prep.t0
        self.used_s = np.bincount(self.s, weights=e, minlength=len(prep.sells)).astype(np.int64)
        self.used_b = np.bincount(self.b, weights=e, minlength=len(prep.buys)).astype(np.int64)
        self.sold = prep.base_sold.copy()
        self.bought = prep.base_bought.copy()
        np.add.at(self.sold, (self.fs, self.col), e)
        np.add.at(self.bought, (self.fb, self.col), e)

    def _change(self, k: int, delta: int) -> None:
        """Add `delta` Wh to support trade k."""
        self.energy[self.support[k]] += delta
        self.used_s[self.s[k]] += delta
        self.used_b[self.b[k]] += delta
        self.sold[self.fs[k], self.col[k]] += delta
        self.bought[self.fb[k], self.col[k]] += delta

    def _harmless_cut(self, k: int) -> int:
        """How far support trade k can be lowered without breaking another (5)/(6) row."""
        e = int(self.energy[self.support[k]])
        fs, fb, c = self.fs[k], self.fb[k], self.col[k]
        if fs == fb:
            return e
        c_ext = self.prep.c_ext
        net_s = self.sold[fs, c] - self.bought[fs, c]
        net_b = self.sold[fb, c] - self.bought[fb, c]
        return max(0, min(e, int(net_s + c_ext[fs]), int(c_ext[fb] - net_b)))

    def _cut(self, members: IntArray, excess: int) -> None:
        live = members[self.energy[self.support[members]] > 0]
        if len(live) == 0:  # impossible when the fixed trades are feasible (see above)
            raise MarketError("rounding: a violated row has no trade left to lower")
        harmless = np.array([self._harmless_cut(int(k)) for k in live], dtype=np.int64)
        if harmless.max() > 0:
            k = int(live[int(np.argmax(harmless))])
            self._change(k, -min(excess, int(harmless.max())))
            return
        sizes = self.energy[self.support[live]]
        k = int(live[int(np.argmax(sizes))])
        self._change(k, -min(excess, int(sizes.max())))

    def _violation(self) -> tuple[IntArray, int] | None:
        """The first violated row (fixed order of checks) and the trades that can fix it."""
        prep = self.prep
        over = self.used_s - prep.sells.rem
        if (over > 0).any():
            i = int(np.argmax(over > 0))
            return np.flatnonzero(self.s == i), int(over[i])
        over = self.used_b - prep.buys.rem
        if (over > 0).any():
            i = int(np.argmax(over > 0))
            return np.flatnonzero(self.b == i), int(over[i])
        for kind in REPAIR_ORDER:
            row = RULE_OF[kind].row
            assert row is not None
            limit = (prep.c_ext if row.limit == "c_ext" else prep.c_int)[:, None]
            excess = row.sold * self.sold + row.bought * self.bought - limit
            if (excess > 0).any():
                f, c = (int(v) for v in np.argwhere(excess > 0)[0])
                # the trades whose cut lowers the row: e.g. for (5) a cross-feeder outflow
                effect = row.sold * (self.fs == f) + row.bought * (self.fb == f)
                return np.flatnonzero((effect > 0) & (self.col == c)), int(excess[f, c])
        return None

    def repair(self) -> None:
        while (found := self._violation()) is not None:
            self._cut(*found)

    def fill(self) -> None:
        """Passes over the support until no trade can grow any more."""
        while self._fill_pass():
            pass

    def _fill_pass(self) -> bool:
        prep = self.prep
        c_ext, c_int = prep.c_ext, prep.c_int
        grew = False
        for k in range(len(self.support)):
            fs, fb, c = self.fs[k], self.fb[k], self.col[k]
            room = [
                prep.sells.rem[self.s[k]] - self.used_s[self.s[k]],
                prep.buys.rem[self.b[k]] - self.used_b[self.b[k]],
                c_int[fs] - self.sold[fs, c],
                c_int[fb] - self.bought[fb, c],
            ]
            if fs != fb:
                room.append(c_ext[fs] - (self.sold[fs, c] - self.bought[fs, c]))
                room.append(c_ext[fb] + (self.sold[fb, c] - self.bought[fb, c]))
            grow = int(min(room))
            if grow > 0:
                self._change(k, grow)
                grew = True
        return grew
