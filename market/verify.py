"""Feasibility of a solution to the (extended) energy trading problem, paper section 4.

`verify(problem, solution)` returns every violation, as a sorted list; an empty list
means the solution is feasible. The smart contract implements the same verdict
(feasible iff no violation), so the rules are stated exactly here. The kinds, their
report order (the sort order of the list), their contract errors and equations are the
catalogue of market rules, `market.rules`; the checks below run in that order.

Units: `Trade.energy` is Wh delivered in that one interval (p·Δ); `Offer.energy` is
the Wh of the whole offer; `Feeder.c_ext` and `Feeder.c_int` are Wh per interval.

Checks on each trade of `solution` (`problem.fixed` trades are trusted, see below):
- UNKNOWN_OFFER: seller or buyer is not an offer id of the problem.
- NOT_MATCHABLE_KIND: the seller is not a SELL offer or the buyer not a BUY offer.
- UNKNOWN_FEEDER: an offer of the trade lies in a feeder the problem does not list.
- NONPOSITIVE: energy <= 0 (a listed trade must move energy; (17) p >= 0).
- NEGATIVE_PRICE: price < 0 ((17) π >= 0).
- NOT_MATCHABLE_PRICE: seller reservation price > buyer reservation price (1).
- NOT_MATCHABLE_INTERVAL: the interval lies outside the seller's or the buyer's range (2).
- FINALIZED_INTERVAL: `problem.free_from` is set and the interval is before it (12).
- DUPLICATE: the (seller, buyer, interval) triple already occurred earlier in the
  solution or among the fixed trades.
- PRICE: the price is not within [seller reservation, buyer reservation] (9).

Aggregate checks, over fixed + solution trades together. Every trade whose offers are
known and of the right kinds counts with its energy as given (also a duplicate or
otherwise flagged one); for the feeder checks the trade must also name known feeders.
- SELL_ENERGY (3): Σ energy of the trades of sell offer s > E_s.
- BUY_ENERGY (4): Σ energy of the trades of buy offer b > E_b.
For each feeder f and interval t, with sold = Σ energy of trades whose seller is in f
(to a buyer anywhere) and bought = Σ energy of trades whose buyer is in f:
- FEEDER_EXT_OUT (5): sold - bought > c_ext.
- FEEDER_EXT_IN (6): sold - bought < -c_ext.
- FEEDER_INT_CONSUMPTION (7): bought > c_int.
- FEEDER_INT_PRODUCTION (8): sold > c_int.

Fixed trades are the finalized ones (section 4.3): they were verified when they were
accepted, so only their offers must be known (else UNKNOWN_OFFER with the trade); they
are exempt from every other per-trade check but use up offer energy and feeder limits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from market.rules import REPORT_RANK, RULES, Stage, ViolationKind, feeder_rows
from market.types import Feeder, Kind, Offer, Problem, Solution, Trade

__all__ = ["Violation", "ViolationKind", "objective", "verify"]


@dataclass(frozen=True, slots=True)
class Violation:
    """One violated rule. `offer`, `feeder` and `interval` name what is at fault (None
    when not applicable); `trade` is the offending trade for per-trade checks."""

    kind: ViolationKind
    message: str
    offer: int | None = None
    feeder: int | None = None
    interval: int | None = None
    trade: Trade | None = None

    def sort_key(self) -> tuple[int, int, int, int, tuple[int, ...]]:
        trade = self.trade
        return (
            REPORT_RANK[self.kind],
            -1 if self.offer is None else self.offer,
            -1 if self.feeder is None else self.feeder,
            -1 if self.interval is None else self.interval,
            () if trade is None else (trade.seller, trade.buyer, trade.interval, trade.energy),
        )


def objective(solution: Solution) -> int:
    """Objective (16): total energy traded by `solution`, in Wh."""
    return sum(t.energy for t in solution.trades)


def verify(problem: Problem, solution: Solution) -> list[Violation]:
    """Every violation of `solution` against `problem` (see the module docstring)."""
    offers = {o.id: o for o in problem.offers}
    feeders = {f.id: f for f in problem.feeders}
    out: list[Violation] = []
    counted: list[tuple[Trade, Offer, Offer]] = []
    seen: set[tuple[int, int, int]] = set()
    for trade in problem.fixed:
        pair = _known_pair(trade, offers, out, fixed=True)
        if pair is not None:
            seen.add((trade.seller, trade.buyer, trade.interval))
            counted.append((trade, *pair))
    for trade in solution.trades:
        pair = _known_pair(trade, offers, out, fixed=False)
        if pair is None:
            continue
        _check_trade(trade, pair[0], pair[1], problem.free_from, seen, out)
        counted.append((trade, *pair))
    _check_offer_energy(counted, out)
    _check_feeders(counted, feeders, out)
    out.sort(key=Violation.sort_key)
    return out


def _known_pair(
    trade: Trade, offers: dict[int, Offer], out: list[Violation], *, fixed: bool
) -> tuple[Offer, Offer] | None:
    what = "fixed trade" if fixed else "trade"
    seller, buyer = offers.get(trade.seller), offers.get(trade.buyer)
    for oid, offer in ((trade.seller, seller), (trade.buyer, buyer)):
        if offer is None:
            out.append(
                _v(
                    ViolationKind.UNKNOWN_OFFER,
                    f"{what} {_t(trade)}: unknown offer {oid}",
                    offer=oid,
                    interval=trade.interval,
                    trade=trade,
                )
            )
    if seller is None or buyer is None:
        return None
    ok = True
    if not fixed:
        for offer, want in ((seller, Kind.SELL), (buyer, Kind.BUY)):
            if offer.kind != want:
                ok = False
                out.append(
                    _v(
                        ViolationKind.NOT_MATCHABLE_KIND,
                        f"trade {_t(trade)}: offer {offer.id} is {offer.kind.name}, "
                        f"not {want.name}",
                        offer=offer.id,
                        interval=trade.interval,
                        trade=trade,
                    )
                )
    elif seller.kind != Kind.SELL or buyer.kind != Kind.BUY:
        ok = False
        out.append(
            _v(
                ViolationKind.NOT_MATCHABLE_KIND,
                f"fixed trade {_t(trade)}: offers of the wrong kinds",
                offer=trade.seller,
                interval=trade.interval,
                trade=trade,
            )
        )
    return (seller, buyer) if ok else None


@dataclass(slots=True)
class _Pair:
    """A trade of the solution with its (known, rightly kinded) offers."""

    trade: Trade
    seller: Offer
    buyer: Offer
    free_from: int | None
    seen: set[tuple[int, int, int]]


# A per-trade rule: (offer at fault, message) for each way the trade breaks it; () if kept
# (a plain tuple, not a generator: verify runs every check on every trade).
_Found = tuple[tuple[int, str], ...]
_TradeCheck = Callable[[_Pair], _Found]


def _nonpositive(p: _Pair) -> _Found:
    if p.trade.energy > 0:
        return ()
    return ((p.seller.id, f"energy {p.trade.energy} Wh <= 0"),)


def _negative_price(p: _Pair) -> _Found:
    if p.trade.price >= 0:
        return ()
    return ((p.seller.id, f"price {p.trade.price} < 0"),)


def _not_matchable_price(p: _Pair) -> _Found:
    s, b = p.seller, p.buyer
    if s.price <= b.price:
        return ()
    return ((s.id, f"seller {s.id} reservation {s.price} > buyer {b.id} reservation {b.price}"),)


def _not_matchable_interval(p: _Pair) -> _Found:
    t = p.trade.interval
    return tuple(
        (o.id, f"interval {t} outside offer {o.id} range [{o.start}, {o.end}]")
        for o in (p.seller, p.buyer)
        if not o.covers(t)
    )


def _finalized_interval(p: _Pair) -> _Found:
    t = p.trade.interval
    if p.free_from is None or t >= p.free_from:
        return ()
    return ((p.seller.id, f"interval {t} is before the first free interval {p.free_from}"),)


def _duplicate(p: _Pair) -> _Found:
    t = p.trade
    if (t.seller, t.buyer, t.interval) not in p.seen:
        return ()
    what = f"seller {p.seller.id}, buyer {p.buyer.id}, interval {t.interval} already traded"
    return ((p.seller.id, what),)


def _price(p: _Pair) -> _Found:
    s, b, price = p.seller, p.buyer, p.trade.price
    if s.price <= price <= b.price:
        return ()
    return (
        (s.id, f"price {price} outside [{s.price}, {b.price}] of seller {s.id} and buyer {b.id}"),
    )


_TRADE_CHECKS: dict[ViolationKind, _TradeCheck] = {
    ViolationKind.NONPOSITIVE: _nonpositive,
    ViolationKind.NEGATIVE_PRICE: _negative_price,
    ViolationKind.NOT_MATCHABLE_PRICE: _not_matchable_price,
    ViolationKind.NOT_MATCHABLE_INTERVAL: _not_matchable_interval,
    ViolationKind.FINALIZED_INTERVAL: _finalized_interval,
    ViolationKind.DUPLICATE: _duplicate,
    ViolationKind.PRICE: _price,
}
# Trade rules checked elsewhere: the offers' existence and kinds decide whether a trade
# counts at all (_known_pair); an offer's feeder is checked once per offer.
_NOT_PER_TRADE = frozenset(
    {ViolationKind.UNKNOWN_OFFER, ViolationKind.NOT_MATCHABLE_KIND, ViolationKind.UNKNOWN_FEEDER}
)
TRADE_ORDER = tuple(
    r.kind for r in RULES if r.stage is Stage.TRADE and r.kind not in _NOT_PER_TRADE
)
FEEDER_ORDER = tuple(r.kind for r in RULES if r.stage is Stage.FEEDER)
_CHECKS = tuple((kind, _TRADE_CHECKS[kind]) for kind in TRADE_ORDER)
_FEEDER_ROWS = feeder_rows(FEEDER_ORDER)
# the rule bounding an offer's total energy, by the offer's kind: (3), (4)
_ENERGY_RULE = {r.side: r.kind for r in RULES if r.stage is Stage.OFFER}
# feeder rule -> what its row measures, for the message
_FEEDER_TEXT = {
    ViolationKind.FEEDER_EXT_OUT: "net outflow",
    ViolationKind.FEEDER_EXT_IN: "net inflow",
    ViolationKind.FEEDER_INT_CONSUMPTION: "consumption",
    ViolationKind.FEEDER_INT_PRODUCTION: "production",
}


def _check_trade(
    trade: Trade,
    seller: Offer,
    buyer: Offer,
    free_from: int | None,
    seen: set[tuple[int, int, int]],
    out: list[Violation],
) -> None:
    pair = _Pair(trade, seller, buyer, free_from, seen)
    for kind, check in _CHECKS:
        for oid, message in check(pair):
            out.append(
                _v(
                    kind,
                    f"trade {_t(trade)}: {message}",
                    offer=oid,
                    interval=trade.interval,
                    trade=trade,
                )
            )
    seen.add((trade.seller, trade.buyer, trade.interval))


def _check_offer_energy(
    counted: Iterable[tuple[Trade, Offer, Offer]], out: list[Violation]
) -> None:
    used: dict[int, int] = defaultdict(int)
    by_id: dict[int, Offer] = {}
    for trade, seller, buyer in counted:
        used[seller.id] += trade.energy
        used[buyer.id] += trade.energy
        by_id[seller.id], by_id[buyer.id] = seller, buyer
    for oid, total in used.items():
        offer = by_id[oid]
        if total > offer.energy:
            kind = _ENERGY_RULE[offer.kind]
            verb = "sold" if offer.kind == Kind.SELL else "bought"
            out.append(
                _v(
                    kind,
                    f"offer {oid}: {total} Wh {verb} > {offer.energy} Wh offered",
                    offer=oid,
                    feeder=offer.feeder,
                )
            )


def _check_feeders(
    counted: Iterable[tuple[Trade, Offer, Offer]], feeders: dict[int, Feeder], out: list[Violation]
) -> None:
    sold: dict[tuple[int, int], int] = defaultdict(int)
    bought: dict[tuple[int, int], int] = defaultdict(int)
    unknown: set[tuple[int, int]] = set()
    for trade, seller, buyer in counted:
        for offer in (seller, buyer):
            if offer.feeder not in feeders:
                unknown.add((offer.id, offer.feeder))
        if seller.feeder in feeders and buyer.feeder in feeders:
            sold[seller.feeder, trade.interval] += trade.energy
            bought[buyer.feeder, trade.interval] += trade.energy
    for oid, fid in unknown:
        out.append(
            _v(
                ViolationKind.UNKNOWN_FEEDER,
                f"offer {oid}: unknown feeder {fid}",
                offer=oid,
                feeder=fid,
            )
        )
    for f, t in set(sold) | set(bought):
        feeder, s, b = feeders[f], sold.get((f, t), 0), bought.get((f, t), 0)
        for kind, row in _FEEDER_ROWS:
            excess = row.excess(feeder, s, b)
            if excess > 0:
                limit = row.bound(feeder)
                out.append(
                    _v(
                        kind,
                        f"feeder {f}, interval {t}: {_FEEDER_TEXT[kind]} {excess + limit} Wh > "
                        f"{row.limit} {limit} Wh",
                        feeder=f,
                        interval=t,
                    )
                )


def _t(trade: Trade) -> str:
    return f"({trade.seller}->{trade.buyer}@{trade.interval})"


def _v(
    kind: ViolationKind,
    message: str,
    *,
    offer: int | None = None,
    feeder: int | None = None,
    interval: int | None = None,
    trade: Trade | None = None,
) -> Violation:
    return Violation(kind, message, offer, feeder, interval, trade)
