"""Which custom error the contract's verification will revert with (pure prediction).

`market.verify` lists every violated rule; the contract (SolutionVerifier.sol) stops at
the first one it meets, in its own order: trades sorted by (interval, seller, buyer),
each trade checked on its own (_diagnose's order), offer energy summed as it goes, and
the feeders of an interval checked when the next interval starts (in the order the
trades first touched them: ext out, ext in, consumption, production). An adversary
uses this to know which revert its solution will provoke. Offers unknown to the
problem are treated as unknown on chain.
"""

from __future__ import annotations

from collections import defaultdict

from market.types import Feeder, Kind, Offer, Problem, Solution, Trade
from market.verify import ViolationKind as V


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
    trades = sorted(solution.trades, key=lambda t: (t.interval, t.seller, t.buyer, t.energy))
    sums: dict[int, int] = defaultdict(int)
    sold: dict[int, int] = {}
    bought: dict[int, int] = {}
    touched: list[int] = []
    prev: tuple[int, int, int] | None = None
    interval: int | None = None
    for trade in trades:
        if interval is not None and trade.interval != interval:
            bad = _feeders(touched, sold, bought, feeders)
            if bad is not None:
                return bad
            sold, bought, touched = {}, {}, []
        interval = trade.interval
        key = (trade.interval, trade.seller, trade.buyer)
        if key == prev:
            return V.DUPLICATE
        prev = key
        bad = _trade(trade, offers, free_from, remaining, sums)
        if bad is not None:
            return bad
        s, b = offers[trade.seller], offers[trade.buyer]
        for fid, side in ((s.feeder, sold), (b.feeder, bought)):
            if fid not in sold and fid not in bought:
                touched.append(fid)
            side[fid] = side.get(fid, 0) + trade.energy
    return _feeders(touched, sold, bought, feeders) if trades else None


def _trade(
    trade: Trade,
    offers: dict[int, Offer],
    free_from: int,
    remaining: dict[int, int],
    sums: dict[int, int],
) -> V | None:
    s, b = offers.get(trade.seller), offers.get(trade.buyer)
    if s is None or b is None:
        return V.UNKNOWN_OFFER
    if s.kind != Kind.SELL or b.kind != Kind.BUY:
        return V.NOT_MATCHABLE_KIND
    if trade.energy <= 0:
        return V.NONPOSITIVE
    if trade.interval < free_from:
        return V.FINALIZED_INTERVAL
    if not (s.covers(trade.interval) and b.covers(trade.interval)):
        return V.NOT_MATCHABLE_INTERVAL
    if s.price > b.price:
        return V.NOT_MATCHABLE_PRICE
    if not s.price <= trade.price <= b.price:
        return V.PRICE
    sums[s.id] += trade.energy
    sums[b.id] += trade.energy
    if sums[s.id] > remaining[s.id]:
        return V.SELL_ENERGY
    if sums[b.id] > remaining[b.id]:
        return V.BUY_ENERGY
    return None


def _feeders(
    touched: list[int], sold: dict[int, int], bought: dict[int, int], feeders: dict[int, Feeder]
) -> V | None:
    for fid in touched:
        f = feeders.get(fid)
        if f is None:
            continue
        s, b = sold.get(fid, 0), bought.get(fid, 0)
        if s > b + f.c_ext:
            return V.FEEDER_EXT_OUT
        if b > s + f.c_ext:
            return V.FEEDER_EXT_IN
        if b > f.c_int:
            return V.FEEDER_INT_CONSUMPTION
        if s > f.c_int:
            return V.FEEDER_INT_PRODUCTION
    return None
