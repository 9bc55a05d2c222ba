"""Which optimum the solver picks: the tie-break policies (`market.tie_break` in a spec).

With uniform prices the LP of one solve has many optima (same total energy), and in
the streaming market the choice matters: the trades of interval t + T_clear are
finalized from it, and energy a multi-interval (battery) offer sells there is gone for
later intervals. A policy is a secondary objective, applied lexicographically: first
the total energy (16) is maximised exactly as without a policy, then, with the total
fixed at that optimum, a secondary cost is minimised. The contract's objective stays
the total energy, so every policy's solutions verify on chain.

The secondary cost is a weight per offer cell (offer o, interval t), for the energy o
trades in t: w(o, t) * x[o, t], summed over the cells of both sides. In the paper's LP
(one variable per triple s, b, t) the same cost is (w(s, t) + w(b, t)) * p[s, b, t],
since x[s, t] = Σ_b p[s, b, t]: both engines minimise the same function. `hi` is the
last interval the offer can trade in (its end, cut at the horizon), so weights are
equal within an offer class (`market.lp`). Policies:

- "none": no secondary objective; the solver's own choice among the optima (the
  engines may pick different ones).
- "expiring-first": w = hi + (t - t0) / H. In every interval, energy of offers that
  expire sooner is traded first (earliest deadline first): a one-interval offer's
  energy (solar now) before the energy of an offer that is still good later (a
  battery). Among the intervals of one offer, earlier first (the small term in t),
  so stored energy fills spare room as soon as it appears instead of piling up at
  the end of the day.
- "storage-last": w = hi - t, the intervals an offer could still wait. Like
  "expiring-first" within an interval, but multi-interval energy is pushed to the
  last visible intervals (kept for intervals that may have no other supply).

t0 is the problem's first interval and H the number of intervals it spans: the term
in t stays below 1, so it never outweighs a difference in hi. Weights count intervals
from t0 to keep them small numbers.
"""

from __future__ import annotations

import numpy as np

from market.errors import MarketError
from market.lp import FloatArray, IntArray

TIE_BREAKS = ("none", "expiring-first", "storage-last")
DEFAULT_TIE_BREAK = "expiring-first"


def check(policy: str) -> None:
    if policy not in TIE_BREAKS:
        raise MarketError(f"unknown tie_break {policy!r}; choose one of {', '.join(TIE_BREAKS)}")


def weights(policy: str, hi: IntArray, t: IntArray, t0: int, horizon: int) -> FloatArray:
    """Secondary cost per Wh of the cells (offer's last interval hi, interval t), to be
    minimised; all zero for "none". The problem spans intervals t0 .. t0 + horizon - 1
    (`Prepared.t0`, `Prepared.width`), so (t - t0) / horizon < 1."""
    check(policy)
    hi_f, t_f = (np.asarray(a, dtype=np.float64) - t0 for a in (hi, t))
    if policy == "expiring-first":
        return hi_f + t_f / max(1, horizon)
    if policy == "storage-last":
        return hi_f - t_f
    return np.zeros(len(t_f))
