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

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import TypeVar

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
T = TypeVar("T")
assert set(ONCHAIN) == {V(m) for m in MODES + EXTRA_MODES if m in set(V)}  # every rule


@dataclass(frozen=True)
class Case:
    mode: str
    variant: int
    offers: tuple[Offer, ...]
    first: tuple[Trade, ...]  # submitted first; its trades of intervals <= finalized are fixed
    finalized: int  # intervals 1..finalized are finalized before the checks
    checks: tuple[tuple[str, tuple[Trade, ...]], ...]  # (mode, solution) checked on chain


@cache
def _integers(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, hi)  # (hypothesis's own cache of strategies costs more)


def _int(draw: st.DrawFn, lo: int, hi: int) -> int:
    return draw(_integers(lo, hi))


def _pick(draw: st.DrawFn, values: Sequence[T]) -> T:
    """One of `values` (a sampled_from per call would cost a new strategy each time)."""
    return values[draw(_integers(0, len(values) - 1))]


# The parts of a case are plain functions of `draw`, not @st.composite strategies: a
# strategy object made per call (and validated, labelled) cost more than the draws.
def _plausible(draw: st.DrawFn, offers: tuple[Offer, ...], free_from: int, divisor: int) -> Trade:
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
    s, b = _pick(draw, pairs)
    lo, hi = max(s.start, b.start, free_from), min(s.end, b.end)
    if lo > hi:
        interval = _int(draw, 1, LAST)
    else:  # early intervals more often: they are the ones finalized into fixed trades
        interval = lo if _int(draw, 0, 3) < 3 else _int(draw, lo, hi)
    price = _int(draw, min(s.price, b.price), max(s.price, b.price))
    energy = _int(draw, 1, max(1, min(s.energy, b.energy) // divisor))
    return Trade(s.id, b.id, interval, energy, price)


def _trades(
    draw: st.DrawFn, offers: tuple[Offer, ...], free_from: int, max_size: int, divisor: int = 3
) -> list[Trade]:
    """Plausible trades with distinct keys."""
    trades: list[Trade] = []
    for _ in range(_int(draw, 1, max_size)):
        t = _plausible(draw, offers, free_from, divisor)
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
    interval = _int(draw, max(s.start, b.start, free_from), min(s.end, b.end))
    price = _int(draw, min(s.price, b.price), max(s.price, b.price))
    return Trade(s.id, b.id, interval, 1, price)


def _flawed(draw: st.DrawFn, kind: V, offers: tuple[Offer, ...], free_from: int) -> Trade:
    """A trade of offers 1 and 2 that breaks rule `kind` (and, as far as it can be
    helped, no rule the contract checks before it)."""
    t = _free_trade(draw, offers, free_from)
    s, b = offers[0], offers[1]
    # values near the encoding's limits among the ordinary ones
    if kind is V.UNKNOWN_OFFER:
        ghosts = [0, len(offers) + 1, 99, encoding.MAX_OFFER_ID - 1, encoding.MAX_OFFER_ID]
        return replace(t, **{_pick(draw, ["seller", "buyer"]): _pick(draw, ghosts)})
    if kind is V.NOT_MATCHABLE_KIND:
        return replace(t, seller=t.buyer, buyer=t.seller)
    if kind is V.NONPOSITIVE:
        return replace(t, energy=0)
    if kind is V.FINALIZED_INTERVAL:
        return replace(t, interval=_int(draw, 0, free_from - 1))
    if kind is V.NOT_MATCHABLE_INTERVAL:
        outside = [
            i
            for i in range(free_from, LAST + 2)
            if not (max(s.start, b.start) <= i <= min(s.end, b.end))
        ]
        far = [LAST + 1, 2**15, encoding.MAX_INTERVAL - 1, encoding.MAX_INTERVAL]
        return replace(t, interval=_pick(draw, [*outside, *far]))
    if kind is V.NOT_MATCHABLE_PRICE:  # offers 1 and 2 were drawn unmatchable (`cases`)
        return replace(t, price=b.price)
    if kind is V.PRICE:
        low = [s.price - 1] if s.price > 0 else []
        above = [p for p in (b.price + 1, b.price + 5, encoding.MAX_PRICE) if p > b.price]
        prices = [p for p in (*low, *above) if p <= encoding.MAX_PRICE]
        return replace(t, price=_pick(draw, prices)) if prices else t
    if kind is V.SELL_ENERGY:  # offer 1 is the smaller one (`cases`)
        return replace(t, energy=_pick(draw, [s.energy + 1, min(b.energy, s.energy + 9)]))
    if kind is V.BUY_ENERGY:  # offer 2 is the smaller one (`cases`)
        return replace(t, energy=_pick(draw, [b.energy + 1, min(s.energy, b.energy + 9)]))
    if kind is V.DUPLICATE:
        return t  # `_solution` adds a copy of its key
    # a feeder rule: `cases` placed offers 1 and 2 (41..60 Wh) on the feeders of
    # FEEDER_SETUPS: above every small limit (10..15 Wh), within the others (>= 40 Wh)
    return replace(t, energy=_int(draw, 16, 40))


def _solution(
    draw: st.DrawFn, offers: tuple[Offer, ...], free_from: int, mode: str
) -> tuple[Trade, ...]:
    if mode == "clean":  # small trades, or large ones (only energies and feeders can break)
        return tuple(_trades(draw, offers, free_from, 7, _pick(draw, [3, 1])))
    if mode == "limits":  # one huge trade, uint64 energy and prices (the "limits" variant)
        t = _free_trade(draw, offers, free_from)
        most = min(offers[0].energy, offers[1].energy)
        return (replace(t, energy=_int(draw, most - 3, most)),)
    kind = V(mode)
    background = _trades(draw, offers, free_from, 3, 10)  # small: they break nothing first
    flawed = _flawed(draw, kind, offers, free_from)
    if kind in FEEDER_SETUPS:  # the flawed trade alone in its interval
        background = [t for t in background if t.interval != flawed.interval]
    solution = _add(background, flawed)
    if kind is V.DUPLICATE:
        solution = (*solution, replace(flawed, energy=_int(draw, 1, 9)))
    return solution


def _offer(draw: st.DrawFn, i: int, kind: Kind, free_from: int, pair: bool) -> Offer:
    """Offer i; offers 1 and 2 (`pair`) overlap in a free interval."""
    start = _int(draw, 1, free_from if pair else LAST)
    end = LAST - _int(draw, 0, LAST - max(start, free_from if pair else start))
    energy = _int(draw, 1, 60)
    price = _int(draw, 0, 6) if kind == Kind.SELL else _int(draw, 4, 10)
    return Offer(i, _int(draw, 1, 3), kind, energy, start, end, price)


@st.composite
def cases(draw: st.DrawFn, mode: str | None = None) -> Case:
    """A case of `mode` (one of MODES), else of a mode drawn: hypothesis draws them
    unevenly (a small sampled_from, or this modulo, gave 31 to 111 cases of a mode in 520),
    so the CI test asks for each mode in turn."""
    if mode is None:
        mode = MODES[draw(st.integers(0, 2**32)) % len(MODES)]
    finalized = _pick(draw, [1, 2, 0, 3])
    free_from = finalized + 1
    n = 2 if mode == "limits" else _int(draw, 2, 7)
    kinds = [Kind.SELL, Kind.BUY]
    offers = [
        _offer(draw, i, kinds[i - 1] if i <= 2 else _pick(draw, kinds), free_from, i <= 2)
        for i in range(1, n + 1)
    ]
    s, b = offers[0], offers[1]
    variant = _int(draw, 0, 2)
    if mode == "limits":
        variant = LIMITS
        s = replace(s, energy=U64 - _int(draw, 0, 3), price=_pick(draw, [0, 1, U64 - 1]))
        b = replace(b, energy=U64 - _int(draw, 0, 3), price=U64 - _int(draw, 0, 1))
    elif mode == V.NOT_MATCHABLE_PRICE:
        s, b = replace(s, price=b.price + _int(draw, 1, 3)), b
    elif b.price < s.price:  # offers 1 and 2 matchable: the flaw is the only thing wrong
        b = replace(b, price=s.price + _int(draw, 0, 4))
    if mode == V.SELL_ENERGY:  # the buyer's offer well above: only the seller's can break
        s = replace(s, energy=min(s.energy, 40))
        b = replace(b, energy=2 * s.energy + 10 + _int(draw, 0, 20))
    elif mode == V.BUY_ENERGY:
        b = replace(b, energy=min(b.energy, 40))
        s = replace(s, energy=2 * b.energy + 10 + _int(draw, 0, 20))
    elif mode in FEEDER_SETUPS:
        variant, sf, bf = _pick(draw, FEEDER_SETUPS[V(mode)])
        s, b = (
            replace(s, feeder=sf, energy=_int(draw, 41, 60)),
            replace(b, feeder=bf, energy=_int(draw, 41, 60)),
        )
    offers[:2] = [s, b]
    offers_t = tuple(offers)
    first = _feasible_part(variant, offers_t, tuple(_trades(draw, offers_t, 1, 8)))
    extras = [_pick(draw, EXTRA_MODES) for _ in range(_int(draw, 1, 3))]
    checks = tuple((m, _solution(draw, offers_t, free_from, m)) for m in (mode, *extras))
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
