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

from eth_account import Account
from hypothesis import strategies as st
from web3 import Web3

from agents.chain import encoding
from agents.chain.contract import MarketContract, deploy_market
from agents.chain.errors import ContractRevert
from agents.chain.events import TradeFinalized
from agents.chain.node import latest_timestamp, mine, revert, rpc, snapshot
from agents.chain.tx import PendingTx, Sender
from agents.common.abi import keccak256
from agents.common.market import MarketParams
from agents.solver.onchain import contract_revert
from market.rules import ONCHAIN
from market.types import Feeder, Kind, Offer, Problem, Solution, Trade
from market.verify import ViolationKind as V
from market.verify import objective, verify

LAST = 6  # delivery intervals 1..6 (clock starts at 0, T_clear = 1)
HOUR = 3600
U64 = encoding.MAX_ENERGY
VARIANTS = (  # feeder limits (c_ext, c_int): each rule of (5)-(8) has a window of energies
    (Feeder(1, 15, 1_000), Feeder(2, 1_000, 12), Feeder(3, 1_000, 1_000)),
    (Feeder(1, 1_000, 10), Feeder(2, 10, 1_000), Feeder(3, 40, 40)),
    (Feeder(1, 1_000, 1_000), Feeder(2, 1_000, 1_000), Feeder(3, 10, 1_000)),
    (Feeder(1, U64, U64), Feeder(2, U64, U64), Feeder(3, U64, U64)),  # "limits": no bound
)
LIMITS = 3  # the variant whose posters hold uint64 energy and a huge balance
TX_GAS = 3_000_000
ENERGY_ASSET, MONEY_ASSET = 10**9, 10**15
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


@dataclass
class Env:
    w3: Web3
    markets: list[MarketContract]
    posters: list[dict[tuple[int, Kind], Sender]]  # per variant: (feeder, kind) -> address
    solver: Sender
    clock: Sender
    base: str  # snapshot id of the deployed markets
    base_block: int
    base_time: int  # its block's timestamp

    def reset(self) -> None:
        revert(self.w3, self.base)
        # the node's clock back to the snapshot's: interval 1's deadline lies half an hour
        # after it, however long the cases before took (a long run takes hours)
        rpc(self.w3, "evm_setTime", self.base_time + 1)
        self.base = snapshot(self.w3)
        for posters in self.posters:
            for sender in posters.values():
                sender.set_nonce(0)  # they have sent nothing in the snapshot
        self.solver.set_nonce(0)
        self.clock.set_nonce(0)


def _sender(w3: Web3, label: str) -> Sender:
    return Sender(w3, Account.from_key(keccak256(label.encode())))


def deploy_env(w3: Web3) -> Env:
    """One market per variant, a poster per (feeder, kind) with assets, a snapshot."""
    dso = _sender(w3, "differential/dso")
    markets, posters = [], []
    # Hour-long intervals, interval 1 open for half an hour: prepare() moves chain time to
    # each deadline before finalizing (a snapshot's revert moves it back), and submissions
    # come before the next deadline (submitSolution refuses after it: DeadlinePassed).
    epoch = latest_timestamp(w3) - HOUR // 2
    params = MarketParams(
        first_interval=1, last_interval=LAST, t_clear=1, interval_seconds=HOUR, epoch=epoch
    )
    for v, feeders in enumerate(VARIANTS):
        market = deploy_market(w3, dso, feeders, params)
        energy, money = (U64, 1 << 200) if v == LIMITS else (ENERGY_ASSET, MONEY_ASSET)
        senders: dict[tuple[int, Kind], Sender] = {}
        pending: list[PendingTx] = []
        for f in feeders:
            for kind in Kind:
                who = _sender(w3, f"differential/{v}/{f.id}/{kind.name}")
                senders[f.id, kind] = who
                pending.append(market.add_energy(dso, who.address, f.id, kind, energy, 1, LAST))
                pending.append(market.add_financial_balance(dso, who.address, money))
        for p in pending:
            p.wait()
        markets.append(market)
        posters.append(senders)
    solver, clock = _sender(w3, "differential/solver"), _sender(w3, "differential/clock")
    base = snapshot(w3)
    return Env(w3, markets, posters, solver, clock, base, w3.eth.block_number, latest_timestamp(w3))


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
def cases(draw: st.DrawFn) -> Case:
    # (hypothesis draws a small sampled_from unevenly: some modes came 8 times in 520)
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


def prepare(env: Env, case: Case) -> tuple[MarketContract, tuple[Trade, ...], int]:
    """Posts the offers, submits and finalizes `case.first`; returns the market, the fixed
    trades and what is left of the candidate's objective."""
    market = env.markets[case.variant]
    posters = env.posters[case.variant]
    pending = [
        market.post_offer(
            posters[o.feeder, o.kind], o.kind, o.energy, o.start, o.end, o.price, gas=TX_GAS
        )
        for o in case.offers
    ]
    for p in pending:
        p.wait()
    words = encoding.encode_trades(case.first)
    accepted = bool(words)  # it is feasible by construction: the contract must take it
    if accepted:
        market.submit_solution(env.solver, words, gas=TX_GAS).wait()
    for interval in range(1, case.finalized + 1):
        mine(env.w3, market.finalizable_at())
        args = encoding.finalize_args(words, interval) if accepted else encoding.FinalizeArgs()
        market.finalize(env.clock, args, gas=TX_GAS).wait()
    fixed = tuple(t for t in case.first if accepted and t.interval <= case.finalized)
    left = objective(Solution(case.first)) - objective(Solution(fixed)) if accepted else 0
    if fixed:  # what was finalized on chain, as a recorder sees it, is the fixed part
        events = market.events(env.base_block + 1, types=[TradeFinalized])
        assert sorted(e.trade for e in events if isinstance(e, TradeFinalized)) == sorted(fixed)
    return market, fixed, left


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
    market, fixed, left = prepare(env, case)
    out = Checked()
    free_from = case.finalized + 1
    out.expect(market.next_finalize() == free_from, f"nextFinalize {market.next_finalize()}")
    problem = Problem(VARIANTS[case.variant], case.offers, fixed, free_from)
    for _mode, trades in case.checks:
        _check_solution(env, market, problem, Solution(trades), left, out)
    if fixed:
        out.labels.append("with fixed trades")
    return out


def _check_solution(
    env: Env, market: MarketContract, problem: Problem, solution: Solution, left: int, out: Checked
) -> None:
    expected = verify(problem, solution)
    words = encoding.encode_trades(solution.trades)
    out.labels.append("checked")
    try:
        got = market.check_solution(words)
    except ContractRevert as err:
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
        _check_submission(env, market, words, got, left, out)


def _check_submission(
    env: Env, market: MarketContract, words: list[int], got: int, left: int, out: Checked
) -> None:
    """Submitting replaces the candidate iff it beats what is left of the first one."""
    better = got > left
    try:
        market.call("submitSolution", words, sender=env.solver.address)
    except ContractRevert as err:
        out.expect(not better and err.name == "NotBetter", f"{(got, left)}: {err}")
        out.expect(
            err.params == {"objective": got, "candidateObjective": left},
            f"NotBetter arguments {err.params}",
        )
        out.labels.append("not better")
    else:
        out.expect(better, f"replaces although {got} <= {left}")
        out.labels.append("replaces")
