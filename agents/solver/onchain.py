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
    RULE_OF,
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


@dataclass(frozen=True, slots=True)
class Revert:
    """The contract's first revert for a solution: the rule and its custom error's
    arguments, by the ABI's names (the catalogue's `ContractError.args`)."""

    kind: V
    args: Mapping[str, int]

    @property
    def error(self) -> str:
        return ERROR_OF_KIND[self.kind]


# The arguments the contract's error carries when trade t between s and b breaks a rule
# (SolutionVerifier._diagnose): the first unknown id, the offer outside the interval, the
# Wh traded so far by the overdrawn offer including t (and what it had left).
TRADE_ARGS: Mapping[V, Callable[[Trade, Offer, Offer, _Ctx], tuple[int, ...]]] = {
    V.DUPLICATE: lambda t, s, b, c: (t.seller, t.buyer, t.interval),
    V.UNKNOWN_OFFER: lambda t, s, b, c: (t.seller if s is _UNKNOWN else t.buyer,),
    V.NOT_MATCHABLE_KIND: lambda t, s, b, c: (t.seller, t.buyer),
    V.NONPOSITIVE: lambda t, s, b, c: (t.seller, t.buyer, t.interval),
    V.FINALIZED_INTERVAL: lambda t, s, b, c: (t.seller, t.buyer, t.interval, c.free_from),
    V.NOT_MATCHABLE_INTERVAL: lambda t, s, b, c: (
        t.buyer if s.covers(t.interval) else t.seller,
        t.interval,
    ),
    V.NOT_MATCHABLE_PRICE: lambda t, s, b, c: (t.seller, t.buyer),
    V.PRICE: lambda t, s, b, c: (t.seller, t.buyer, t.interval, t.price),
    V.SELL_ENERGY: lambda t, s, b, c: (s.id, c.sums[s.id] + t.energy, c.remaining[s.id]),
    V.BUY_ENERGY: lambda t, s, b, c: (b.id, c.sums[b.id] + t.energy, c.remaining[b.id]),
}


def _revert(kind: V, *values: int) -> Revert:
    error = RULE_OF[kind].error
    assert error is not None  # the tests and rows above are the on-chain rules only
    return Revert(kind, dict(zip((name for name, _ in error.args), values, strict=True)))


def contract_verdict(problem: Problem, solution: Solution) -> V | None:
    """The violation the contract reports first for `solution`, None if it accepts it
    (apart from NotBetter)."""
    revert = contract_revert(problem, solution)
    return None if revert is None else revert.kind


def contract_revert(problem: Problem, solution: Solution) -> Revert | None:
    """The contract verification's revert for `solution`, with its arguments (None if the
    verification passes)."""
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
            bad = _feeders(touched, sold, bought, feeders, ctx.prev[0])
            if bad is not None:
                return bad
            sold, bought, touched = {}, {}, []
        s, b = offers.get(trade.seller, _UNKNOWN), offers.get(trade.buyer, _UNKNOWN)
        for kind, test in _TESTS:
            if test(trade, s, b, ctx):
                return _revert(kind, *TRADE_ARGS[kind](trade, s, b, ctx))
        ctx.prev = _key(trade)
        ctx.sums[s.id] += trade.energy
        ctx.sums[b.id] += trade.energy
        for fid, side in ((s.feeder, sold), (b.feeder, bought)):
            if fid not in sold and fid not in bought:
                touched.append(fid)
            side[fid] = side.get(fid, 0) + trade.energy
    return _feeders(touched, sold, bought, feeders, trades[-1].interval) if trades else None


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
    touched: list[int],
    sold: dict[int, int],
    bought: dict[int, int],
    feeders: dict[int, Feeder],
    interval: int,
) -> Revert | None:
    """The first feeder rule broken when `interval` closes: (feeder id, interval, the
    rule's amount, its limit)."""
    for fid in touched:
        f = feeders.get(fid)
        if f is None:
            continue
        s, b = sold.get(fid, 0), bought.get(fid, 0)
        for kind, row in _FEEDER_ROWS:
            excess = row.excess(f, s, b)
            if excess > 0:
                limit = row.bound(f)
                return _revert(kind, fid, interval, excess + limit, limit)
    return None
