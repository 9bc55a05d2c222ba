"""Cases for the differential test of the contract against market.verify (the test:
test_contract_differential.py; the long offline run: bench/differential.py).

A case: offers posted on a real anvil, optionally a first solution submitted and some
intervals finalized (those trades become the problem's fixed trades), then a second
solution checked on chain. `check_case` compares the contract's verdict with
market.verify's: feasibility, the objective, the violation kind and the revert's
arguments the solver predicts, and whether submitting replaces the candidate.

The generator is steered: each case draws a `mode`, either a feasible solution
("clean", "limits") or one rule of the contract to break first (a strategy
per violation kind, so every kind is frequent), with values near the encoding's
uint16/uint32/uint64 limits among them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hypothesis import strategies as st

from agents.chain import encoding
from agents.chain.errors import ContractRevert
from agents.solver.onchain import contract_revert
from market.rules import ONCHAIN
from market.types import Kind, Offer, Problem, Solution, Trade
from market.verify import ViolationKind as V
from market.verify import objective, verify
from tests.integration.differential_env import (
    LAST,
    LIMITS,
    U64,
    VARIANTS,
    Env,
    Verdict,
    prepare,
    verdicts,
)

# (variant, seller's feeder, buyer's feeder): the one feeder rule a large trade breaks
FEEDER_SETUPS: dict[V, tuple[tuple[int, int, int], ...]] = {
    V.FEEDER_EXT_OUT: ((0, 1, 3), (2, 3, 1), (1, 2, 3)),
    V.FEEDER_EXT_IN: ((0, 3, 1), (2, 1, 3), (1, 3, 2)),
    V.FEEDER_INT_CONSUMPTION: ((0, 3, 2), (1, 3, 1)),
    V.FEEDER_INT_PRODUCTION: ((0, 2, 3), (1, 1, 3)),
}
# A case's mode sets up its offers and its first checked solution: a feasible one, or
# one that breaks a rule needing offers made for it (prices, energies, feeders).
MODES: tuple[str, ...] = (
    "clean",
    "limits",
    V.NOT_MATCHABLE_PRICE,
    V.SELL_ENERGY,
    V.BUY_ENERGY,
    *FEEDER_SETUPS,
)
# Further solutions checked against the same chain state (eth_call only: cheap): a
# feasible one or a flaw of one trade that any case's offers 1 and 2 allow.
EXTRA_MODES: tuple[str, ...] = (
    "clean",
    V.UNKNOWN_OFFER,
    V.NOT_MATCHABLE_KIND,
    V.NONPOSITIVE,
    V.FINALIZED_INTERVAL,
    V.NOT_MATCHABLE_INTERVAL,
    V.PRICE,
    V.DUPLICATE,
)
assert set(ONCHAIN) == {V(m) for m in MODES + EXTRA_MODES if m in set(V)}  # every rule


@dataclass(frozen=True)
class Case:
    mode: str
    variant: int
    offers: tuple[Offer, ...]
    first: tuple[Trade, ...]  # submitted first; its trades of intervals <= finalized are fixed
    finalized: int  # intervals 1..finalized are finalized before the checks
    checks: tuple[tuple[str, tuple[Trade, ...]], ...]  # (mode, solution) checked on chain


@st.composite
def _plausible(
    draw: st.DrawFn, offers: tuple[Offer, ...], free_from: int, divisor: int = 3
) -> Trade:
    """A matchable pair, an interval both offer (>= free_from), a price between the
    reservation prices, an energy up to the smaller offer's / divisor."""
    pairs = [
        (s, b)
        for s in offers
        for b in offers
        if s.kind == Kind.SELL
        and b.kind == Kind.BUY
        and s.price <= b.price
        and max(s.start, b.start, free_from) <= min(s.end, b.end)
    ]
    if not pairs:  # nothing can be traded: any sell and buy offer
        pairs = [
            (s, b) for s in offers for b in offers if (s.kind, b.kind) == (Kind.SELL, Kind.BUY)
        ]
    s, b = draw(st.sampled_from(pairs))
    lo, hi = max(s.start, b.start, free_from), min(s.end, b.end)
    if lo > hi:
        interval = draw(st.integers(1, LAST))
    else:  # early intervals more often: they are the ones finalized into fixed trades
        interval = lo if draw(st.integers(0, 3)) < 3 else draw(st.integers(lo, hi))
    price = draw(st.integers(min(s.price, b.price), max(s.price, b.price)))
    energy = draw(st.integers(1, max(1, min(s.energy, b.energy) // divisor)))
    return Trade(s.id, b.id, interval, energy, price)


@st.composite
def _trades(
    draw: st.DrawFn, offers: tuple[Offer, ...], free_from: int, max_size: int, divisor: int = 3
) -> list[Trade]:
    """Plausible trades with distinct keys."""
    trades: list[Trade] = []
    for _ in range(draw(st.integers(1, max_size))):
        t = draw(_plausible(offers, free_from, divisor))
        if all(encoding.trade_key(t) != encoding.trade_key(u) for u in trades):
            trades.append(t)
    return trades


def _add(trades: list[Trade], flawed: Trade) -> tuple[Trade, ...]:
    """The trades with `flawed` in place of any trade of its key."""
    key = encoding.trade_key(flawed)
    return (*(t for t in trades if encoding.trade_key(t) != key), flawed)


def _free_trade(draw: st.DrawFn, offers: tuple[Offer, ...], free_from: int) -> Trade:
    """A valid trade of offers 1 (sell) and 2 (buy), which `cases` makes matchable in an
    interval >= free_from."""
    s, b = offers[0], offers[1]
    interval = draw(st.integers(max(s.start, b.start, free_from), min(s.end, b.end)))
    price = draw(st.integers(min(s.price, b.price), max(s.price, b.price)))
    return Trade(s.id, b.id, interval, 1, price)


def _flawed(draw: st.DrawFn, kind: V, offers: tuple[Offer, ...], free_from: int) -> Trade:
    """A trade of offers 1 and 2 that breaks rule `kind` (and, as far as it can be
    helped, no rule the contract checks before it)."""
    t = _free_trade(draw, offers, free_from)
    s, b = offers[0], offers[1]
    near = st.sampled_from  # values near the encoding's limits among the ordinary ones
    if kind is V.UNKNOWN_OFFER:
        ghost = draw(
            near([0, len(offers) + 1, 99, encoding.MAX_OFFER_ID - 1, encoding.MAX_OFFER_ID])
        )
        return replace(t, **{draw(near(["seller", "buyer"])): ghost})
    if kind is V.NOT_MATCHABLE_KIND:
        return replace(t, seller=t.buyer, buyer=t.seller)
    if kind is V.NONPOSITIVE:
        return replace(t, energy=0)
    if kind is V.FINALIZED_INTERVAL:
        return replace(t, interval=draw(st.integers(0, free_from - 1)))
    if kind is V.NOT_MATCHABLE_INTERVAL:
        outside = [
            i
            for i in range(free_from, LAST + 2)
            if not (max(s.start, b.start) <= i <= min(s.end, b.end))
        ]
        return replace(
            t,
            interval=draw(
                near([*outside, LAST + 1, 2**15, encoding.MAX_INTERVAL - 1, encoding.MAX_INTERVAL])
            ),
        )
    if kind is V.NOT_MATCHABLE_PRICE:  # offers 1 and 2 were drawn unmatchable (`cases`)
        return replace(t, price=b.price)
    if kind is V.PRICE:
        low = [s.price - 1] if s.price > 0 else []
        above = [p for p in (b.price + 1, b.price + 5, encoding.MAX_PRICE) if p > b.price]
        prices = [p for p in (*low, *above) if p <= encoding.MAX_PRICE]
        return replace(t, price=draw(near(prices))) if prices else t
    if kind is V.SELL_ENERGY:  # offer 1 is the smaller one (`cases`)
        return replace(t, energy=draw(near([s.energy + 1, min(b.energy, s.energy + 9)])))
    if kind is V.BUY_ENERGY:  # offer 2 is the smaller one (`cases`)
        return replace(t, energy=draw(near([b.energy + 1, min(s.energy, b.energy + 9)])))
    if kind is V.DUPLICATE:
        return t  # `_solution` adds a copy of its key
    # a feeder rule: `cases` placed offers 1 and 2 (41..60 Wh) on the feeders of
    # FEEDER_SETUPS: above every small limit (10..15 Wh), within the others (>= 40 Wh)
    return replace(t, energy=draw(st.integers(16, 40)))


@st.composite
def _solution(
    draw: st.DrawFn, offers: tuple[Offer, ...], free_from: int, mode: str
) -> tuple[Trade, ...]:
    if mode == "clean":  # small trades, or large ones (only energies and feeders can break)
        return tuple(draw(_trades(offers, free_from, 7, draw(st.sampled_from([3, 1])))))
    if mode == "limits":  # one huge trade, uint64 energy and prices (the "limits" variant)
        t = _free_trade(draw, offers, free_from)
        energy = draw(
            st.integers(
                min(offers[0].energy, offers[1].energy) - 3, min(offers[0].energy, offers[1].energy)
            )
        )
        return (replace(t, energy=energy),)
    kind = V(mode)
    background = draw(_trades(offers, free_from, 3, 10))  # small: they break nothing first
    flawed = _flawed(draw, kind, offers, free_from)
    if kind in FEEDER_SETUPS:  # the flawed trade alone in its interval
        background = [t for t in background if t.interval != flawed.interval]
    solution = _add(background, flawed)
    if kind is V.DUPLICATE:
        solution = (*solution, replace(flawed, energy=draw(st.integers(1, 9))))
    return solution


@st.composite
def _offer(draw: st.DrawFn, i: int, kind: Kind, free_from: int, pair: bool) -> Offer:
    """Offer i; offers 1 and 2 (`pair`) overlap in a free interval."""
    start = draw(st.integers(1, free_from if pair else LAST))
    end = LAST - draw(st.integers(0, LAST - max(start, free_from if pair else start)))
    energy = draw(st.integers(1, 60))
    price = draw(st.integers(0, 6) if kind == Kind.SELL else st.integers(4, 10))
    return Offer(i, draw(st.integers(1, 3)), kind, energy, start, end, price)


@st.composite
def cases(draw: st.DrawFn, mode: str | None = None) -> Case:
    """A case of `mode` (one of MODES), else of a mode drawn: hypothesis draws them
    unevenly (a small sampled_from, or this modulo, gave 31 to 111 cases of a mode in 520),
    so the CI test asks for each mode in turn."""
    if mode is None:
        mode = MODES[draw(st.integers(0, 2**32)) % len(MODES)]
    finalized = draw(st.sampled_from([1, 2, 0, 3]))
    free_from = finalized + 1
    n = 2 if mode == "limits" else draw(st.integers(2, 7))
    offers = [
        draw(
            _offer(
                i,
                Kind.SELL if i == 1 else Kind.BUY if i == 2 else draw(st.sampled_from(Kind)),
                free_from,
                i <= 2,
            )
        )
        for i in range(1, n + 1)
    ]
    s, b = offers[0], offers[1]
    variant = draw(st.integers(0, 2))
    if mode == "limits":
        variant = LIMITS
        s = replace(
            s, energy=U64 - draw(st.integers(0, 3)), price=draw(st.sampled_from([0, 1, U64 - 1]))
        )
        b = replace(b, energy=U64 - draw(st.integers(0, 3)), price=U64 - draw(st.integers(0, 1)))
    elif mode == V.NOT_MATCHABLE_PRICE:
        s, b = replace(s, price=b.price + draw(st.integers(1, 3))), b
    elif b.price < s.price:  # offers 1 and 2 matchable: the flaw is the only thing wrong
        b = replace(b, price=s.price + draw(st.integers(0, 4)))
    if mode == V.SELL_ENERGY:  # the buyer's offer well above: only the seller's can break
        s = replace(s, energy=min(s.energy, 40))
        b = replace(b, energy=2 * s.energy + 10 + draw(st.integers(0, 20)))
    elif mode == V.BUY_ENERGY:
        b = replace(b, energy=min(b.energy, 40))
        s = replace(s, energy=2 * b.energy + 10 + draw(st.integers(0, 20)))
    elif mode in FEEDER_SETUPS:
        variant, sf, bf = draw(st.sampled_from(FEEDER_SETUPS[V(mode)]))
        s, b = (
            replace(s, feeder=sf, energy=draw(st.integers(41, 60))),
            replace(b, feeder=bf, energy=draw(st.integers(41, 60))),
        )
    offers[:2] = [s, b]
    offers_t = tuple(offers)
    first = _feasible_part(variant, offers_t, tuple(draw(_trades(offers_t, 1, 8))))
    extras = draw(st.lists(st.sampled_from(EXTRA_MODES), min_size=1, max_size=3))
    checks = tuple((m, draw(_solution(offers_t, free_from, m))) for m in (mode, *extras))
    return Case(mode, variant, offers_t, first if finalized else (), finalized, checks)


def _feasible_part(
    variant: int, offers: tuple[Offer, ...], trades: tuple[Trade, ...]
) -> tuple[Trade, ...]:
    """The trades, in order, that keep the solution feasible (by market.verify): the first
    solution must usually be accepted, so that its finalized trades become fixed ones."""
    problem = Problem(VARIANTS[variant], offers, (), 1)
    kept: list[Trade] = []
    for t in trades:
        if not verify(problem, Solution((*kept, t))):
            kept.append(t)
    return tuple(kept)


@dataclass
class Checked:
    """What one case showed: counters to add up, and the disagreements (none expected)."""

    labels: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)

    def expect(self, holds: bool, what: str) -> None:
        if not holds:
            self.disagreements.append(what)


def check_case(env: Env, case: Case) -> Checked:
    """The contract's verdicts on the case's solutions against market.verify's."""
    env.reset()
    accepted = prepare(env, case.variant, case.offers, case.first, case.finalized)
    fixed = tuple(t for t in case.first if accepted and t.interval <= case.finalized)
    left = objective(Solution(case.first)) - objective(Solution(fixed)) if accepted else 0
    out = Checked()
    free_from = case.finalized + 1
    solutions = [Solution(trades) for _, trades in case.checks]
    next_finalize, checked, submitted = verdicts(
        env, case.variant, [encoding.encode_trades(s.trades) for s in solutions]
    )
    out.expect(next_finalize == free_from, f"nextFinalize {next_finalize}")
    problem = Problem(VARIANTS[case.variant], case.offers, fixed, free_from)
    for solution, got, submission in zip(solutions, checked, submitted, strict=True):
        _check_solution(problem, solution, got, out)
        if not isinstance(got, ContractRevert):
            _check_submission(got, submission, left, out)
    if fixed:
        out.labels.append("with fixed trades")
    return out


def _check_solution(problem: Problem, solution: Solution, got: Verdict, out: Checked) -> None:
    """checkSolution's verdict `got` against market.verify's (and the revert the solver
    predicts, arguments included)."""
    expected = verify(problem, solution)
    out.labels.append("checked")
    if isinstance(got, ContractRevert):
        err = got
        kinds = {v.kind for v in expected}
        out.expect(bool(expected), f"contract rejects a feasible solution: {err}")
        out.expect(err.violation in kinds, f"{err} not among {sorted(kinds)}")
        predicted = contract_revert(problem, solution)  # the very revert, arguments included
        out.expect(
            predicted is not None
            and (predicted.error, dict(predicted.args)) == (err.name, err.params),
            f"{err} but the solver predicts {predicted}",
        )
        out.labels += [str(err.violation), "infeasible"]
    else:
        out.expect(not expected, f"contract accepts an infeasible solution: {expected}")
        out.expect(got == objective(solution), f"objective {got} != {objective(solution)}")
        out.labels.append("feasible")


def _check_submission(got: int, submission: Verdict, left: int, out: Checked) -> None:
    """Submitting replaces the candidate iff it beats what is left of the first one."""
    better = got > left
    if isinstance(submission, ContractRevert):
        err = submission
        out.expect(not better and err.name == "NotBetter", f"{(got, left)}: {err}")
        out.expect(
            err.params == {"objective": got, "candidateObjective": left},
            f"NotBetter arguments {err.params}",
        )
        out.labels.append("not better")
    else:
        out.expect(better, f"replaces although {got} <= {left}")
        out.labels.append("replaces")
