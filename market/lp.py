"""What both LP engines share: the problem validated and laid out canonically, as arrays.

The paper's LP (section 5.1) has one variable p[s,b,t] (Wh in interval t) per
matchable triple in the free intervals (`matchable`, vectorised; the GLPK engine
enumerates the same list with plain loops) and rows (3), (4), (5)-(6) as one ranged
row, (7), (8); fixed trades lower the right-hand sides (`prepare`). The HiGHS engine
solves an exact reformulation on offer cells instead (`market.lp_cells`).

Canonical order: offers are ranked by (feeder, kind, start, end, energy, price, id),
classes (below) by (feeder, window, price), triples by (interval, seller class, buyer
class). Everything downstream follows these orders, so problems that differ only in
the order of `problem.offers` give the same LP, byte for byte, and the same solution.

Offer classes (an exact reduction, used by the HiGHS engine): offers of one kind with
the same feeder, the same free window [lo, hi] and the same reservation price are
interchangeable, since every constraint sees them only through feeder, interval and
price, except (3)/(4), which bound each one's own energy. Replace such a group by one
class offer whose energy is the group's total remaining energy. Any feasible solution
maps to the class LP by summing (same objective). Conversely a class solution splits
into per-offer trades (`split`) by filling the members one after the other, in
canonical order: a class never trades more than the members' total, every member
matches everything the class matches, and feeder sums are unchanged. So both LPs have
the same optimum. Without aggregation every offer is its own class (engine "glpk").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from market.errors import MarketError
from market.types import Kind, Problem

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class OfferTable:
    """Offers (one row each) that can still trade in the free window: `rem` is the
    energy left after fixed trades, `lo`/`hi` the free part of the range, `fpos` the
    feeder's position in `Prepared.feeder_ids`."""

    id: IntArray
    fpos: IntArray
    kind: IntArray
    rem: IntArray
    lo: IntArray
    hi: IntArray
    price: IntArray

    def take(self, mask: npt.NDArray[np.bool_] | IntArray) -> OfferTable:
        return OfferTable(*(getattr(self, name)[mask] for name in _FIELDS))


_FIELDS = ("id", "fpos", "kind", "rem", "lo", "hi", "price")


@dataclass(frozen=True)
class ClassTable:
    """Offer classes (see the module docstring): class k has feeder position fpos[k],
    window [lo[k], hi[k]], price[k] and energy rem[k]; its member offers are
    member_id[member_start[k]:member_start[k + 1]], in canonical order."""

    fpos: IntArray
    lo: IntArray
    hi: IntArray
    price: IntArray
    rem: IntArray
    member_id: IntArray
    member_rem: IntArray
    member_start: IntArray

    def __len__(self) -> int:
        return len(self.rem)


def _group(table: OfferTable, aggregate: bool) -> ClassTable:
    """Classes of `table` (already in canonical offer order)."""
    n = len(table.id)
    if aggregate:
        order = np.lexsort((np.arange(n), table.price, table.hi, table.lo, table.fpos))
    else:
        order = np.arange(n)
    t = table.take(order)
    new = np.ones(n, dtype=bool)
    if aggregate and n:
        new[1:] = (
            (t.fpos[1:] != t.fpos[:-1])
            | (t.lo[1:] != t.lo[:-1])
            | (t.hi[1:] != t.hi[:-1])
            | (t.price[1:] != t.price[:-1])
        )
    first = np.flatnonzero(new)
    rem = np.add.reduceat(t.rem, first) if n else np.zeros(0, dtype=np.int64)
    return ClassTable(
        fpos=t.fpos[first],
        lo=t.lo[first],
        hi=t.hi[first],
        price=t.price[first],
        rem=rem.astype(np.int64),
        member_id=t.id,
        member_rem=t.rem,
        member_start=np.append(first, n).astype(np.int64),
    )


@dataclass(frozen=True)
class Prepared:
    """The problem reduced to what the LP needs.

    Feeder limits are arrays by feeder position (feeders sorted by id); `base_*` are
    the fixed trades' contributions per (feeder position, interval - t0) over
    intervals t0..t0+width-1.
    """

    sells: ClassTable
    buys: ClassTable
    feeder_ids: IntArray
    c_ext: IntArray
    c_int: IntArray
    t0: int
    width: int
    base_sold: IntArray
    base_bought: IntArray


def prepare(
    problem: Problem, last_interval: int | None = None, *, aggregate: bool = True
) -> Prepared:
    """Validate `problem` and lay it out canonically (raises MarketError if malformed).
    Only intervals >= problem.free_from and <= last_interval are free."""
    feeder_ids = np.array(sorted(f.id for f in problem.feeders), dtype=np.int64)
    if len(set(feeder_ids.tolist())) != len(problem.feeders):
        raise MarketError("duplicate feeder ids")
    by_feeder = {f.id: f for f in problem.feeders}
    c_ext = np.array([by_feeder[int(i)].c_ext for i in feeder_ids], dtype=np.int64)
    c_int = np.array([by_feeder[int(i)].c_int for i in feeder_ids], dtype=np.int64)
    if (c_ext < 0).any() or (c_int < 0).any():
        raise MarketError("negative feeder limit")

    rows = [
        (o.feeder, int(o.kind), o.start, o.end, o.energy, o.price, o.id) for o in problem.offers
    ]
    raw = np.array(rows, dtype=np.int64).reshape(len(rows), 7)
    feeder, kind, start, end, energy, price, oid = raw.T
    if len(np.unique(oid)) != len(oid):
        raise MarketError("duplicate offer ids")
    fpos = np.searchsorted(feeder_ids, feeder)
    known = fpos < len(feeder_ids)
    known[known] = feeder_ids[fpos[known]] == feeder[known]
    if not known.all():
        raise MarketError(f"offer {int(oid[~known][0])} lies in an unknown feeder")
    if (start > end).any():
        raise MarketError(f"offer {int(oid[start > end][0])} has start > end")

    offer_pos = {int(i): k for k, i in enumerate(oid)}
    used = np.zeros(len(oid), dtype=np.int64)
    fixed_t = [tr.interval for tr in problem.fixed]
    t_lo = min([*fixed_t, *start.tolist()], default=0)
    t_hi = max([*fixed_t, *end.tolist()], default=0)
    width = t_hi - t_lo + 1
    base_sold = np.zeros((len(feeder_ids), width), dtype=np.int64)
    base_bought = np.zeros((len(feeder_ids), width), dtype=np.int64)
    for tr in problem.fixed:
        s, b = offer_pos.get(tr.seller), offer_pos.get(tr.buyer)
        if s is None or b is None:
            raise MarketError(f"fixed trade {tr} names an unknown offer")
        used[s] += tr.energy
        used[b] += tr.energy
        base_sold[fpos[s], tr.interval - t_lo] += tr.energy
        base_bought[fpos[b], tr.interval - t_lo] += tr.energy

    _check_fixed(oid, energy, used, feeder_ids, c_ext, c_int, base_sold, base_bought)
    lo = start if problem.free_from is None else np.maximum(start, problem.free_from)
    hi = end if last_interval is None else np.minimum(end, last_interval)
    rem = energy - used
    order = np.lexsort((oid, price, energy, end, start, kind, feeder))
    table = OfferTable(oid, fpos, kind, rem, lo, hi, price).take(order)
    live = (table.rem > 0) & (table.lo <= table.hi)
    table = table.take(live)
    return Prepared(
        sells=_group(table.take(table.kind == int(Kind.SELL)), aggregate),
        buys=_group(table.take(table.kind == int(Kind.BUY)), aggregate),
        feeder_ids=feeder_ids,
        c_ext=c_ext,
        c_int=c_int,
        t0=t_lo,
        width=width,
        base_sold=base_sold,
        base_bought=base_bought,
    )


def _check_fixed(
    oid: IntArray,
    energy: IntArray,
    used: IntArray,
    feeder_ids: IntArray,
    c_ext: IntArray,
    c_int: IntArray,
    sold: IntArray,
    bought: IntArray,
) -> None:
    """Fixed trades alone must be feasible, or no solution is (and rounding, which only
    ever lowers free trades, could not repair a violated row)."""
    over = used > energy
    if over.any():
        raise MarketError(f"fixed trades exceed the energy of offer {int(oid[over][0])}")
    net = sold - bought
    bad = (
        (net > c_ext[:, None])
        | (net < -c_ext[:, None])
        | (sold > c_int[:, None])
        | (bought > c_int[:, None])
    )
    if bad.any():
        f = int(np.argwhere(bad)[0][0])
        raise MarketError(f"fixed trades violate the limits of feeder {int(feeder_ids[f])}")


@dataclass(frozen=True)
class Variables:
    """The LP's variables in canonical order: class indices into `Prepared.sells` and
    `Prepared.buys`, and the interval, of each matchable triple."""

    s: IntArray
    b: IntArray
    t: IntArray

    def __len__(self) -> int:
        return len(self.t)


def matchable(prep: Prepared) -> Variables:
    """All matchable (s, b, t) triples, vectorised: each offer is expanded into its
    (offer, interval) cells, and sellers and buyers are paired per interval."""
    s_cell, s_t = cells_of(prep.sells)
    b_cell, b_t = cells_of(prep.buys)
    # Cells are grouped by interval (stable, so offers stay in canonical order).
    s_ord = np.argsort(s_t, kind="stable")
    b_ord = np.argsort(b_t, kind="stable")
    s_cell, s_t = s_cell[s_ord], s_t[s_ord]
    b_cell, b_t = b_cell[b_ord], b_t[b_ord]
    b_first = np.searchsorted(b_t, s_t, side="left")
    b_count = np.searchsorted(b_t, s_t, side="right") - b_first
    total = int(b_count.sum())
    s_rep = np.repeat(np.arange(len(s_t)), b_count)
    group_start = np.repeat(np.cumsum(b_count) - b_count, b_count)
    b_idx = np.repeat(b_first, b_count) + (np.arange(total) - group_start)
    s = s_cell[s_rep]
    b = b_cell[b_idx]
    t = s_t[s_rep]
    ok = prep.sells.price[s] <= prep.buys.price[b]
    return Variables(s[ok], b[ok], t[ok])


def cells_of(table: ClassTable) -> tuple[IntArray, IntArray]:
    """(class, interval) for every interval of every class's free window, class-major."""
    lengths = table.hi - table.lo + 1
    owner = np.repeat(np.arange(len(lengths)), lengths)
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)
    t = table.lo[owner] + (np.arange(len(owner)) - first)
    return owner.astype(np.int64), t.astype(np.int64)


@dataclass(frozen=True)
class Piece:
    """`energy` Wh from sell offer `seller` to buy offer `buyer` in `interval`, with the
    classes' reservation prices."""

    seller: int
    buyer: int
    interval: int
    energy: int
    seller_price: int
    buyer_price: int


def split(prep: Prepared, var: Variables, energy: IntArray) -> list[Piece]:
    """Per-offer trades from integer class flows `energy` (aligned with `var`): each
    class fills its members one after the other (canonical order), first on the seller
    side, then on the buyer side. Each (seller, buyer, interval) comes out once: a seller
    takes part in a flow at most once, and each such piece goes to distinct buyers."""
    keep = np.flatnonzero(energy > 0)
    flows = zip(
        var.s[keep].tolist(),
        var.b[keep].tolist(),
        var.t[keep].tolist(),
        energy[keep].tolist(),
        strict=True,
    )
    sells, buys = prep.sells, prep.buys
    halves = _fill(sells, [(s, (b, t), e) for s, b, t, e in flows])
    pieces = _fill(buys, [(b, (seller, t, s), e) for seller, (b, t), e, s in halves])
    return [
        Piece(seller, buyer, t, e, int(sells.price[s]), int(buys.price[b]))
        for buyer, (seller, t, s), e, b in pieces
    ]


_Rest = TypeVar("_Rest")


def _fill(
    table: ClassTable, flows: list[tuple[int, _Rest, int]]
) -> list[tuple[int, _Rest, int, int]]:
    """Split each (class, rest, e) flow over the class's members in order: returns
    (member id, rest, part of e, class) items."""
    left = table.member_rem.tolist()
    ids = table.member_id.tolist()
    cursor = table.member_start[:-1].tolist()
    end = table.member_start[1:].tolist()
    out: list[tuple[int, _Rest, int, int]] = []
    for cls, rest, e in flows:
        while e > 0:
            m = cursor[cls]
            if m >= end[cls]:
                raise MarketError("split: a class flow exceeds its members' energy")
            part = min(e, left[m])
            out.append((ids[m], rest, part, cls))
            left[m] -= part
            e -= part
            if left[m] == 0:
                cursor[cls] = m + 1
    return out
