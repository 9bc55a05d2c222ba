"""Adversarial solutions built from a solver's own problem (pure: no chain, no I/O).

`infeasible(problem, optimum, candidate, kind)` returns a solution that breaks the
constraint `kind` (a `market.verify.ViolationKind` the contract checks) and, where that
is possible, nothing else, with an objective that beats the candidate's (by the market's
minimum improvement) so that only the contract's verification can stop it. The catalogue
of market rules names the attack of each rule (`market.rules.Attack`; `ATTACKS` below
builds it), the offer side it bounds and what verify reports with it. The construction
starts from the solver's optimum (feasible) and changes or adds one trade: a price moved
out of range, an interval outside an offer, an unknown id, a copy of a trade, just enough
energy to overdraw an offer or a feeder limit. Every variant is checked with
`market.verify` and ranked:
  1. contract-consistent: the contract's verification will revert naming this kind
     (predicted by agents.solver.onchain, which follows its order of checks);
  2. beats the candidate (when the optimum uses every Wh it can, adding energy breaks a
     second rule: beating then wins over exactness); while a candidate has trades left
     this is part of 1 (the contract's pre-check refuses the rest with NotBetter);
  3. exact: verify reports exactly the intended kind (NOT_MATCHABLE_PRICE always comes
     with PRICE: no price lies in [Rs, Rb] when Rs > Rb).
Only contract-consistent solutions are returned; None when the problem has nothing to
build one from (e.g. no seller priced above a buyer for NOT_MATCHABLE_PRICE).

`inferior` and `flood_variants` build feasible solutions with lower objectives.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import islice

from agents.chain.encoding import MAX_INTERVAL, MAX_OFFER_ID
from agents.solver.onchain import contract_verdict
from market.rules import RULE_OF, Attack, ViolationKind, beats_candidate, feeder_excess
from market.types import Kind, Offer, Problem, Solution, Trade
from market.verify import verify

MAX_TRIPLES = 48  # matchable (seller, buyer, interval) triples tried per construction
# Variants checked with market.verify per construction: after ENOUGH_VARIANTS the best
# contract-consistent one so far is taken, MAX_VARIANTS bounds the search (each check
# verifies the whole solution: ~5 ms at 250 trades).
ENOUGH_VARIANTS, MAX_VARIANTS = 32, 256
GHOST_SELLER, GHOST_BUYER = MAX_OFFER_ID - 1, MAX_OFFER_ID  # ids no market will reach


def expected_kinds(kind: ViolationKind) -> frozenset[ViolationKind]:
    """What market.verify reports for a solution breaking only `kind` (the catalogue's
    `also`: e.g. NOT_MATCHABLE_PRICE always comes with PRICE)."""
    return frozenset({kind}) | RULE_OF[kind].also


@dataclass(frozen=True)
class Built:
    """An adversarial solution and market.verify's verdict on it."""

    kind: ViolationKind
    solution: Solution
    reported: frozenset[ViolationKind]
    candidate: int
    verdict: (
        ViolationKind | None
    )  # what the contract's verification reports (agents.solver.onchain)
    min_improvement: int = 1

    @property
    def beats(self) -> bool:
        return beats_candidate(self.solution.objective, self.candidate, self.min_improvement)

    @property
    def exact(self) -> bool:
        return self.reported == expected_kinds(self.kind)

    @property
    def consistent(self) -> bool:
        """The contract reverts naming `kind`: its verification meets it first, and the
        pre-check (a candidate with trades left) lets the solution through."""
        return self.verdict is self.kind and (self.candidate <= 0 or self.beats)

    def rank(self) -> tuple[bool, bool, bool]:
        return (self.consistent, self.beats, self.exact)

    @property
    def detail(self) -> str:
        notes = [] if self.exact else [f"verify also reports {sorted(self.reported - {self.kind})}"]
        if not self.beats:
            notes.append(f"objective {self.solution.objective} does not beat {self.candidate}")
        extra = f" ({'; '.join(notes)})" if notes else ""
        return (
            f"{self.kind.value}: {len(self.solution.trades)} trades, "
            f"objective {self.solution.objective} Wh{extra}"
        )


class _Book:
    """Offers, limits and what the fixed trades plus a base solution use of them."""

    def __init__(self, problem: Problem, base: Sequence[Trade]) -> None:
        self.problem = problem
        self.free_from = problem.free_from if problem.free_from is not None else 0
        self.offers = {o.id: o for o in problem.offers}
        self.feeders = {f.id: f for f in problem.feeders}
        self.base = list(base)
        self.used: dict[int, int] = defaultdict(int)
        self.sold: dict[tuple[int, int], int] = defaultdict(int)
        self.bought: dict[tuple[int, int], int] = defaultdict(int)
        for t in (*problem.fixed, *self.base):
            s, b = self.offers.get(t.seller), self.offers.get(t.buyer)
            if s is None or b is None:
                continue
            self.used[s.id] += t.energy
            self.used[b.id] += t.energy
            self.sold[s.feeder, t.interval] += t.energy
            self.bought[b.feeder, t.interval] += t.energy
        self.keys = {(t.seller, t.buyer, t.interval) for t in (*problem.fixed, *self.base)}
        self.sells = [o for o in problem.offers if o.kind == Kind.SELL]
        self.buys = [o for o in problem.offers if o.kind == Kind.BUY]

    def slack(self, offer: Offer) -> int:
        return offer.energy - self.used[offer.id]

    def triples(self, first: int | None = None) -> Iterator[tuple[Offer, Offer, int]]:
        """Matchable (seller, buyer, interval >= first): the base's trades first, then
        other pairs; at most MAX_TRIPLES."""
        first = self.free_from if first is None else first
        return islice(self._triples(first), MAX_TRIPLES)

    def _triples(self, first: int) -> Iterator[tuple[Offer, Offer, int]]:
        seen: set[tuple[int, int, int]] = set()
        for tr in self.base:
            key = (tr.seller, tr.buyer, tr.interval)
            if key not in seen and tr.interval >= first:
                seen.add(key)
                yield self.offers[tr.seller], self.offers[tr.buyer], tr.interval
        for s in self.sells:
            for b in self.buys:
                if s.price > b.price:
                    continue
                for t in range(max(s.start, b.start, first), min(s.end, b.end) + 1):
                    if (s.id, b.id, t) not in seen:
                        seen.add((s.id, b.id, t))
                        yield s, b, t

    def with_trade(self, trade: Trade) -> list[Trade]:
        """The base plus `trade`: added to the base's trade of the same key if there is one."""
        key = (trade.seller, trade.buyer, trade.interval)
        out, merged = [], False
        for t in self.base:
            if (t.seller, t.buyer, t.interval) == key and not merged:
                out.append(Trade(t.seller, t.buyer, t.interval, t.energy + trade.energy, t.price))
                merged = True
            else:
                out.append(t)
        return out if merged else [*out, trade]

    def replaced(self, index: int, trade: Trade) -> list[Trade]:
        return [trade if i == index else t for i, t in enumerate(self.base)]


def infeasible(
    problem: Problem,
    optimum: Solution,
    candidate: int,
    kind: ViolationKind,
    min_improvement: int = 1,
) -> Built | None:
    """The best-ranked solution breaking `kind` (see the module docstring), or None.
    `min_improvement`: the market's min_improvement_wh (while a candidate has trades
    left, anything that does not beat it by that much reverts NotBetter unverified)."""
    book = _Book(problem, optimum.trades)
    # Wh to add to beat the candidate
    need = max(1, candidate + (min_improvement if candidate > 0 else 1) - optimum.objective)
    attack = RULE_OF[kind].attack
    if attack is None:
        return None
    best: Built | None = None
    for n, trades in enumerate(ATTACKS[attack](book, need, kind)):
        if n >= MAX_VARIANTS or (n >= ENOUGH_VARIANTS and best is not None):
            break
        solution = Solution(tuple(trades))
        reported = frozenset(v.kind for v in verify(problem, solution))
        verdict = contract_verdict(problem, solution)
        built = Built(kind, solution, reported, candidate, verdict, min_improvement)
        if kind not in built.reported or not built.consistent:
            continue
        if best is None or built.rank() > best.rank():
            best = built
        if all(best.rank()):
            break
    return best


# A construction: solutions breaking rule `kind` given the book and the Wh to add.
Builder = Callable[[_Book, int, ViolationKind], Iterator[list[Trade]]]


def _unknown_offer(book: _Book, need: int, kind: ViolationKind) -> Iterator[list[Trade]]:
    yield [*book.base, Trade(GHOST_SELLER, GHOST_BUYER, book.free_from, need, 0)]


def _kind(book: _Book, need: int, kind: ViolationKind) -> Iterator[list[Trade]]:
    if book.sells and book.buys:  # a buy offer as the seller, a sell offer as the buyer
        yield [*book.base, Trade(book.buys[0].id, book.sells[0].id, book.free_from, need, 0)]
    for offer in book.problem.offers[:1]:  # one offer on both sides: one side is wrong
        yield [*book.base, Trade(offer.id, offer.id, book.free_from, need, 0)]


def _nonpositive(book: _Book, need: int, kind: ViolationKind) -> Iterator[list[Trade]]:
    for s, b, t in book.triples():
        if (s.id, b.id, t) not in book.keys:
            yield [*book.base, Trade(s.id, b.id, t, 0, s.price)]
    for i, tr in enumerate(book.base):
        yield book.replaced(i, Trade(tr.seller, tr.buyer, tr.interval, 0, tr.price))
    # to beat a candidate: `need` Wh more after the zero trade, on ghost ids (they sort
    # last in the interval, so the contract meets the zero trade first)
    for s, b, t in book.triples():
        if (s.id, b.id, t) not in book.keys:
            zero, more = (
                Trade(s.id, b.id, t, 0, s.price),
                Trade(GHOST_SELLER, GHOST_BUYER, t, need, 0),
            )
            yield [*book.base, zero, more]


def _finalized(book: _Book, need: int, kind: ViolationKind) -> Iterator[list[Trade]]:
    past = book.free_from - 1
    if past < 0:
        return
    covering = [
        (s, b)
        for s in book.sells
        for b in book.buys
        if s.price <= b.price and s.covers(past) and b.covers(past)
    ]
    for s, b in covering[:MAX_TRIPLES]:
        if (s.id, b.id, past) not in book.keys:
            for energy in (need, 1):
                yield [*book.base, Trade(s.id, b.id, past, energy, s.price)]
    for s, b, _ in book.triples():  # offers not covering it: still reverts FinalizedInterval
        yield [*book.base, Trade(s.id, b.id, past, need, s.price)]


def _outside(s: Offer, b: Offer, first: int) -> list[int]:
    """Intervals >= first outside s's or b's range (one side only first)."""
    out = [min(s.end, b.end) + 1, max(s.start, b.start) - 1, max(s.end, b.end) + 1]
    return [
        t
        for t in dict.fromkeys(out)
        if first <= t <= MAX_INTERVAL and not (s.covers(t) and b.covers(t))
    ]


def _interval(book: _Book, need: int, kind: ViolationKind) -> Iterator[list[Trade]]:
    for i, t in enumerate(book.base):
        s, b = book.offers[t.seller], book.offers[t.buyer]
        for other in _outside(s, b, book.free_from):
            if (s.id, b.id, other) in book.keys:
                continue
            yield book.replaced(i, Trade(t.seller, t.buyer, other, t.energy, t.price))
            yield book.replaced(i, Trade(t.seller, t.buyer, other, t.energy + need, t.price))
    for s, b, _ in book.triples():
        for other in _outside(s, b, book.free_from):
            if (s.id, b.id, other) in book.keys:
                continue
            for energy in (need, 1):
                yield [*book.base, Trade(s.id, b.id, other, energy, s.price)]


def _unmatchable_price(book: _Book, need: int, kind: ViolationKind) -> Iterator[list[Trade]]:
    pairs = [(s, b) for s in book.sells for b in book.buys if s.price > b.price]
    for s, b in pairs[:MAX_TRIPLES]:
        for t in range(max(s.start, b.start, book.free_from), min(s.end, b.end) + 1):
            if (s.id, b.id, t) not in book.keys:
                for energy in (need, 1):
                    yield [*book.base, Trade(s.id, b.id, t, energy, b.price)]
                break


def _price(book: _Book, need: int, kind: ViolationKind) -> Iterator[list[Trade]]:
    for i, tr in enumerate(book.base):
        high = book.offers[tr.buyer].price + 1
        yield book.replaced(i, Trade(tr.seller, tr.buyer, tr.interval, tr.energy, high))
        yield book.replaced(i, Trade(tr.seller, tr.buyer, tr.interval, tr.energy + need, high))
    for s, b, t in book.triples():
        for energy in (need, 1):
            yield book.with_trade(Trade(s.id, b.id, t, energy, b.price + 1))


def _duplicate(book: _Book, need: int, kind: ViolationKind) -> Iterator[list[Trade]]:
    for tr in book.base:
        for energy in (need, 1):
            yield [*book.base, Trade(tr.seller, tr.buyer, tr.interval, energy, tr.price)]
    for s, b, t in book.triples():
        yield [*book.base, Trade(s.id, b.id, t, 1, s.price), Trade(s.id, b.id, t, need, s.price)]


def _overdraw(book: _Book, need: int, kind: ViolationKind) -> Iterator[list[Trade]]:
    """One Wh more than the offer on the rule's side has left (or `need` Wh, when the
    other offer has room for it)."""
    for s, b, t in book.triples():
        over, other = (s, b) if RULE_OF[kind].side == Kind.SELL else (b, s)
        bump = max(book.slack(over) + 1, need)
        if book.slack(other) >= bump:
            yield book.with_trade(Trade(s.id, b.id, t, bump, s.price))
        yield book.with_trade(Trade(s.id, b.id, t, book.slack(over) + 1, s.price))


def _overload(book: _Book, need: int, kind: ViolationKind) -> Iterator[list[Trade]]:
    yield from _feeder_shifts(book, kind)
    for s, b, t in book.triples():
        bump = _feeder_bump(book, kind, s, b, t)
        if bump is None or not 1 <= bump <= min(book.slack(s), book.slack(b)):
            continue
        yield book.with_trade(Trade(s.id, b.id, t, bump, s.price))
        if need > bump and need <= min(book.slack(s), book.slack(b)):
            yield book.with_trade(Trade(s.id, b.id, t, need, s.price))


def _feeder_shifts(book: _Book, kind: ViolationKind) -> Iterator[list[Trade]]:
    """Move part of a trade of the optimum to another interval of both offers: offer
    energy is unchanged, the feeder flows of the new interval exceed the limit."""
    for i, tr in enumerate(book.base):
        s, b = book.offers[tr.seller], book.offers[tr.buyer]
        for t2 in range(max(s.start, b.start, book.free_from), min(s.end, b.end) + 1):
            bump = None if t2 == tr.interval else _feeder_bump(book, kind, s, b, t2)
            if bump is None or not 1 <= bump <= tr.energy:
                continue
            rest = [] if bump == tr.energy else [replace(tr, energy=tr.energy - bump)]
            others = [x for j, x in enumerate(book.base) if j != i]
            moved = _Book(book.problem, [*others, *rest])
            yield moved.with_trade(Trade(s.id, b.id, t2, bump, tr.price))


def _feeder_bump(book: _Book, kind: ViolationKind, s: Offer, b: Offer, t: int) -> int | None:
    """Wh to add to trade (s, b, t) so that the feeder rule `kind` is broken in the feeder
    of the rule's side (None: the trade cannot move that excess, e.g. a trade inside one
    feeder leaves its net flow unchanged)."""
    f = book.feeders.get(s.feeder if RULE_OF[kind].side == Kind.SELL else b.feeder)
    if f is None:
        return None
    sold, bought = book.sold[f.id, t], book.bought[f.id, t]
    before = feeder_excess(kind, f, sold, bought)
    step = feeder_excess(kind, f, sold + (s.feeder == f.id), bought + (b.feeder == f.id)) - before
    return 1 - before if step == 1 else None


# Which construction breaks a rule: the catalogue names the attack of each rule.
ATTACKS: dict[Attack, Builder] = {
    Attack.GHOST_OFFER: _unknown_offer,
    Attack.SWAPPED_KINDS: _kind,
    Attack.ZERO_ENERGY: _nonpositive,
    Attack.PAST_INTERVAL: _finalized,
    Attack.OUTSIDE_RANGE: _interval,
    Attack.CROSSED_PRICES: _unmatchable_price,
    Attack.PRICE_ABOVE_BUYER: _price,
    Attack.COPIED_TRADE: _duplicate,
    Attack.OVERDRAWN_OFFER: _overdraw,
    Attack.OVERLOADED_FEEDER: _overload,
}


# --- feasible but worse ----------------------------------------------------------------
def scaled(problem: Problem, optimum: Solution, target: int) -> Solution:
    """A feasible solution with objective <= target (< the optimum's): every trade of the
    optimum scaled down (integer Wh), halving the target until market.verify accepts it
    (rounding can unbalance a feeder's net flow); the empty solution at worst."""
    total = optimum.objective
    while target > 0 and total > 0:
        trades = tuple(
            Trade(t.seller, t.buyer, t.interval, t.energy * target // total, t.price)
            for t in optimum.trades
        )
        solution = Solution(tuple(t for t in trades if t.energy > 0))
        if not verify(problem, solution):
            return solution
        target //= 2
    return Solution(())


def inferior(
    problem: Problem, optimum: Solution, candidate: int, no_candidate: str = "worse"
) -> Solution:
    """Feasible, objective <= the candidate's (the contract answers NotBetter). With no
    candidate (0 Wh left): "worse" = strictly worse than the optimum, which the contract
    may accept (an honest solver then beats it); "empty" = the empty solution (NotBetter)."""
    if candidate <= 0 and no_candidate == "empty":
        return Solution(())
    target = candidate if candidate > 0 else optimum.objective - 1
    if target >= optimum.objective:
        return optimum
    return scaled(problem, optimum, max(target, 0))


def flood_variants(problem: Problem, optimum: Solution, count: int) -> list[Solution]:
    """`count` solutions: the optimum, then feasible ones scaled to (count-k)/count of it."""
    out = [optimum]
    for k in range(1, count):
        out.append(scaled(problem, optimum, optimum.objective * (count - k) // count))
    return out
