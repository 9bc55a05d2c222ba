"""Which custom error the contract's verification will revert with (pure prediction).

`market.verify` lists every violated rule; the contract (SolutionVerifier.sol) stops at
the first one it meets, in the order of the catalogue of market rules
(`market.rules.CONTRACT_ORDER`): trades sorted by (interval, seller, buyer), each trade's
own rules in that order (offer energy summed as it goes), and the feeders of an interval
checked when the next interval starts (in the order the trades first touched them). An
adversary uses this to know which revert its solution will provoke. Offers unknown to the
problem are treated as unknown on chain.

Each trade rule's test is below (`TRADE_TESTS`), the feeder rules are the catalogue's rows;
the order comes from the catalogue. `submission_error` adds submitSolution's checks around
the verification (`market.rules.SUBMISSION_ERRORS`): while a candidate has trades left, a
solution that does not beat it by the market's minimum improvement reverts NotBetter
before any rule is checked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from market.rules import (
    ERROR_OF_KIND,
    NOT_BETTER,
    Stage,
    beats_candidate,
    contract_order,
    feeder_rows,
)
from market.rules import ViolationKind as V
from market.types import Feeder, Kind, Offer, Problem, Solution, Trade


@dataclass(slots=True)
class _Ctx:
    """What the contract knows when it reaches a trade: the previous trade's key, the
    first free interval, each offer's Wh left and Wh traded so far."""

    prev: tuple[int, int, int] | None
    free_from: int
    remaining: Mapping[int, int]
    sums: dict[int, int]


# Stands for an offer id the problem does not know; only UNKNOWN_OFFER's test sees it (the
# tests after it run on known offers).
_UNKNOWN = Offer(-1, -1, Kind.SELL, 0, 0, -1, 0)


def _key(t: Trade) -> tuple[int, int, int]:
    return (t.interval, t.seller, t.buyer)


def _overdrawn(t: Trade, offer: Offer, c: _Ctx) -> bool:
    return c.sums[offer.id] + t.energy > c.remaining[offer.id]


# Does trade t between offers s and b break the rule? Evaluated in the contract's order,
# so each test may assume the ones before it passed.
TRADE_TESTS: Mapping[V, Callable[[Trade, Offer, Offer, _Ctx], bool]] = {
    V.DUPLICATE: lambda t, s, b, c: _key(t) == c.prev,
    V.UNKNOWN_OFFER: lambda t, s, b, c: s is _UNKNOWN or b is _UNKNOWN,
    V.NOT_MATCHABLE_KIND: lambda t, s, b, c: s.kind != Kind.SELL or b.kind != Kind.BUY,
    V.NONPOSITIVE: lambda t, s, b, c: t.energy <= 0,
    V.FINALIZED_INTERVAL: lambda t, s, b, c: t.interval < c.free_from,
    V.NOT_MATCHABLE_INTERVAL: lambda t, s, b, c: not (
        s.covers(t.interval) and b.covers(t.interval)
    ),
    V.NOT_MATCHABLE_PRICE: lambda t, s, b, c: s.price > b.price,
    V.PRICE: lambda t, s, b, c: not s.price <= t.price <= b.price,
    V.SELL_ENERGY: lambda t, s, b, c: _overdrawn(t, s, c),
    V.BUY_ENERGY: lambda t, s, b, c: _overdrawn(t, b, c),
}
TRADE_ORDER = contract_order(Stage.TRADE, Stage.OFFER)
FEEDER_ORDER = contract_order(Stage.FEEDER)
_TESTS = tuple((kind, TRADE_TESTS[kind]) for kind in TRADE_ORDER)
_FEEDER_ROWS = feeder_rows(FEEDER_ORDER)


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
    # the encoding's word order: (interval, seller, buyer) then energy, then price
    trades = sorted(solution.trades, key=lambda t: (*_key(t), t.energy, t.price))
    ctx = _Ctx(None, free_from, remaining, defaultdict(int))
    sold: dict[int, int] = {}
    bought: dict[int, int] = {}
    touched: list[int] = []
    for trade in trades:
        if ctx.prev is not None and trade.interval != ctx.prev[0]:
            bad = _feeders(touched, sold, bought, feeders)
            if bad is not None:
                return bad
            sold, bought, touched = {}, {}, []
        s, b = offers.get(trade.seller, _UNKNOWN), offers.get(trade.buyer, _UNKNOWN)
        for kind, test in _TESTS:
            if test(trade, s, b, ctx):
                return kind
        ctx.prev = _key(trade)
        ctx.sums[s.id] += trade.energy
        ctx.sums[b.id] += trade.energy
        for fid, side in ((s.feeder, sold), (b.feeder, bought)):
            if fid not in sold and fid not in bought:
                touched.append(fid)
            side[fid] = side.get(fid, 0) + trade.energy
    return _feeders(touched, sold, bought, feeders) if trades else None


def submission_error(
    problem: Problem, solution: Solution, candidate: int, min_improvement: int = 1
) -> str | None:
    """The custom error submitSolution reverts `solution` with (None: it becomes the
    candidate), given the candidate's remaining objective `candidate` (Wh) and the
    market's `min_improvement_wh`; the deadline is the caller's business."""
    beats = beats_candidate(solution.objective, candidate, min_improvement)
    if candidate > 0 and not beats:
        return NOT_BETTER.name  # the pre-check, before the verification
    kind = contract_verdict(problem, solution)
    if kind is not None:
        return ERROR_OF_KIND[kind]
    return None if beats else NOT_BETTER.name


def _feeders(
    touched: list[int], sold: dict[int, int], bought: dict[int, int], feeders: dict[int, Feeder]
) -> V | None:
    for fid in touched:
        f = feeders.get(fid)
        if f is None:
            continue
        s, b = sold.get(fid, 0), bought.get(fid, 0)
        for kind, row in _FEEDER_ROWS:
            if row.excess(f, s, b) > 0:
                return kind
    return None
