"""Which custom error the contract's verification will revert with (pure prediction).

`market.verify` lists every violated rule; the contract (SolutionVerifier.sol) stops at
the first one it meets, in the order of the catalogue of market rules
(`market.rules.CONTRACT_ORDER`): trades sorted by (interval, seller, buyer), each trade's
own rules in that order (offer energy summed as it goes), and the feeders of an interval
checked when the next interval starts (in the order the trades first touched them). An
adversary uses this to know which revert its solution will provoke. Offers unknown to the
problem are treated as unknown on chain.

Each rule's test is below (`TRADE_TESTS`, `FEEDER_TESTS`); the order comes from the catalogue.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from market.rules import Stage, contract_order, feeder_excess
from market.rules import ViolationKind as V
from market.types import Feeder, Kind, Offer, Problem, Solution, Trade


@dataclass(frozen=True)
class _At:
    """One trade as the contract sees it: the previous trade's key, its offers (None:
    unknown), the first free interval, each offer's Wh left and Wh traded before it."""

    trade: Trade
    prev: tuple[int, int, int] | None
    seller: Offer | None
    buyer: Offer | None
    free_from: int
    remaining: Mapping[int, int]
    sums: Mapping[int, int]

    @property
    def s(self) -> Offer:
        assert self.seller is not None  # the rules after UNKNOWN_OFFER see known offers
        return self.seller

    @property
    def b(self) -> Offer:
        assert self.buyer is not None
        return self.buyer

    def overdrawn(self, offer: Offer) -> bool:
        return self.sums[offer.id] + self.trade.energy > self.remaining[offer.id]


def _key(t: Trade) -> tuple[int, int, int]:
    return (t.interval, t.seller, t.buyer)


# Does the trade break the rule? Evaluated in the contract's order, so each test may
# assume the ones before it passed.
TRADE_TESTS: Mapping[V, Callable[[_At], bool]] = {
    V.DUPLICATE: lambda a: _key(a.trade) == a.prev,
    V.UNKNOWN_OFFER: lambda a: a.seller is None or a.buyer is None,
    V.NOT_MATCHABLE_KIND: lambda a: a.s.kind != Kind.SELL or a.b.kind != Kind.BUY,
    V.NONPOSITIVE: lambda a: a.trade.energy <= 0,
    V.FINALIZED_INTERVAL: lambda a: a.trade.interval < a.free_from,
    V.NOT_MATCHABLE_INTERVAL: lambda a: not (
        a.s.covers(a.trade.interval) and a.b.covers(a.trade.interval)
    ),
    V.NOT_MATCHABLE_PRICE: lambda a: a.s.price > a.b.price,
    V.PRICE: lambda a: not a.s.price <= a.trade.price <= a.b.price,
    V.SELL_ENERGY: lambda a: a.overdrawn(a.s),
    V.BUY_ENERGY: lambda a: a.overdrawn(a.b),
}
TRADE_ORDER = contract_order(Stage.TRADE, Stage.OFFER)
FEEDER_ORDER = contract_order(Stage.FEEDER)


def contract_verdict(problem: Problem, solution: Solution) -> V | None:
    """The violation the contract reports first for `solution`, None if it accepts it
    (apart from NotBetter)."""
    offers = {o.id: o for o in problem.offers}
    feeders = {f.id: f for f in problem.feeders}
    free_from = problem.free_from if problem.free_from is not None else 0
    remaining = {o.id: o.energy for o in problem.offers}
    for t in problem.fixed:
        for oid in (t.seller, t.buyer):
            if oid in remaining:
                remaining[oid] -= t.energy
    trades = sorted(solution.trades, key=lambda t: (*_key(t), t.energy))
    sums: dict[int, int] = defaultdict(int)
    sold: dict[int, int] = {}
    bought: dict[int, int] = {}
    touched: list[int] = []
    prev: tuple[int, int, int] | None = None
    for trade in trades:
        if prev is not None and trade.interval != prev[0]:
            bad = _feeders(touched, sold, bought, feeders)
            if bad is not None:
                return bad
            sold, bought, touched = {}, {}, []
        at = _At(
            trade,
            prev,
            offers.get(trade.seller),
            offers.get(trade.buyer),
            free_from,
            remaining,
            sums,
        )
        bad = next((kind for kind in TRADE_ORDER if TRADE_TESTS[kind](at)), None)
        if bad is not None:
            return bad
        prev = _key(trade)
        s, b = at.s, at.b
        sums[s.id] += trade.energy
        sums[b.id] += trade.energy
        for fid, side in ((s.feeder, sold), (b.feeder, bought)):
            if fid not in sold and fid not in bought:
                touched.append(fid)
            side[fid] = side.get(fid, 0) + trade.energy
    return _feeders(touched, sold, bought, feeders) if trades else None


def _feeders(
    touched: list[int], sold: dict[int, int], bought: dict[int, int], feeders: dict[int, Feeder]
) -> V | None:
    for fid in touched:
        f = feeders.get(fid)
        if f is None:
            continue
        s, b = sold.get(fid, 0), bought.get(fid, 0)
        for kind in FEEDER_ORDER:
            if feeder_excess(kind, f, s, b) > 0:
                return kind
    return None
