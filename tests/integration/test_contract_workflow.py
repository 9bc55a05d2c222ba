"""The market contract on a real anvil: the whole workflow, access control and misuse.

The fixtures here (`node`, `harness`, the log-on-failure one) are imported by the other
test_contract_* modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from agents.chain.contract import (
    MarketContract,
    constructor_args,
    deploy_market,
    deploy_with_args,
)
from agents.chain.encoding import FinalizeArgs, encode_trade
from agents.chain.errors import ContractRevert
from agents.chain.events import (
    AssetAdded,
    EnergyDeposited,
    FinancialAdded,
    FinancialDeposited,
    IntervalFinalized,
    OfferClosed,
    OfferPosted,
    SolutionAccepted,
    TradeFinalized,
)
from agents.chain.node import Anvil, latest_timestamp, mine
from agents.chain.tx import Sender
from agents.common.abi import keccak256
from agents.common.market import MarketParams
from market.types import Feeder, Kind, Offer, Solution, Trade
from tests.conftest import require_tool

FEEDERS = (Feeder(1, 1_000, 1_000), Feeder(2, 1_000, 1_000), Feeder(3, 1_000, 50))
FIRST, LAST, T_CLEAR, SECONDS = 3, 6, 1, 60
REVERT_GAS = 3_000_000  # explicit gas: the reverting transaction is mined, not just estimated


@pytest.fixture(scope="module")
def node() -> Iterator[Anvil]:
    require_tool("anvil")
    with Anvil() as anvil:
        yield anvil


@pytest.fixture(autouse=True)
def anvil_log_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """Prints what anvil logged during the test; pytest shows it only if the test failed."""
    if "node" not in request.fixturenames:
        yield
        return
    anvil: Anvil = request.getfixturevalue("node")
    mark = len(anvil.log())
    yield
    print("---- anvil log during the test (tail) ----")
    print("\n".join(anvil.log()[mark:].splitlines()[-200:]))


@dataclass
class Harness:
    """A freshly deployed market on the module's anvil, with helpers."""

    w3: Web3
    market: MarketContract
    dso: Sender
    params: MarketParams
    _keys: int = field(default=0)

    def sender(self) -> Sender:
        self._keys += 1
        key = keccak256(f"{self.market.address}/{self._keys}".encode())
        return Sender(self.w3, Account.from_key(key))

    def anon(
        self,
        feeder: int,
        kind: Kind,
        energy: int,
        start: int = FIRST,
        end: int = LAST,
        balance: int = 0,
    ) -> Sender:
        """A fresh anonymous address holding a permission (and money) from the DSO."""
        who = self.sender()
        self.market.add_energy(self.dso, who.address, feeder, kind, energy, start, end).wait()
        if balance:
            self.market.add_financial_balance(self.dso, who.address, balance).wait()
        return who

    def post(self, who: Sender, kind: Kind, energy: int, start: int, end: int, price: int) -> int:
        receipt = self.market.post_offer(who, kind, energy, start, end, price).wait()
        return self.market.offer_count() if receipt["status"] == 1 else 0

    def finalize_through(self, interval: int) -> None:
        while self.market.next_finalize() <= interval:
            mine(self.w3, max(self.params.finalizable_at(self.market.next_finalize()), self.now()))
            self.market.finalize(self.dso).wait()

    def now(self) -> int:
        return latest_timestamp(self.w3)

    def state(self, *addresses: str) -> tuple[Any, ...]:
        """Everything a failed call could have changed."""
        m = self.market
        return (
            m.offer_count(),
            tuple(m.offer(i) for i in range(1, m.offer_count() + 1)),
            tuple(m.account(a) for a in addresses),
            m.candidate(),
            m.next_finalize(),
        )


@pytest.fixture
def harness(node: Anvil) -> Harness:
    w3 = node.web3()
    dso = Sender(w3, Account.create())
    params = MarketParams(
        first_interval=FIRST,
        last_interval=LAST,
        t_clear=T_CLEAR,
        interval_seconds=SECONDS,
        epoch=latest_timestamp(w3) + 30,
    )
    return Harness(w3, deploy_market(w3, dso, FEEDERS, params), dso, params)


def reverts(h: Harness, send: Any, name: str, *addresses: str, **params: Any) -> ContractRevert:
    """`send()` (a transaction with explicit gas) is mined, reverts with `name` (and the
    given arguments) and changes no state."""
    before = h.state(*addresses)
    with pytest.raises(ContractRevert) as info:
        send().wait()
    err = info.value
    assert err.name == name, str(err)
    for key, value in params.items():
        assert err.params[key] == value, (key, err.params)
    assert h.state(*addresses) == before
    return err


# ------------------------------------------------------------------------ workflow
def test_whole_workflow_assets_offers_solution_finalization_settlement_deposits(
    harness: Harness,
) -> None:
    h, m = harness, harness.market
    start_block = h.w3.eth.block_number
    seller = h.anon(1, Kind.SELL, 400)
    buyer = h.anon(2, Kind.BUY, 300, balance=100_000)
    acc = m.account(buyer.address)
    assert (acc.linked, acc.feeder, acc.buy.energy, acc.balance) == (True, 2, 300, 100_000)

    assert h.post(seller, Kind.SELL, 300, 3, 5, 100) == 1
    assert h.post(buyer, Kind.BUY, 200, 4, 6, 150) == 2
    assert m.account(seller.address).sell.energy == 100
    assert m.account(buyer.address).buy.energy == 100
    assert m.balance_of(buyer.address) == 100_000 - 200 * 150  # reserved at its limit price

    solution = Solution((Trade(1, 2, 5, 50, 130), Trade(1, 2, 4, 80, 120)))
    assert m.check_solution(solution) == 130
    m.submit_solution(h.sender(), solution).wait()
    cand = m.candidate()
    assert (cand.candidate_id, cand.remaining_objective, cand.head_interval) == (1, 130, 4)

    h.finalize_through(4)  # 3: nothing traded, 4: the first trade
    assert m.candidate().remaining_objective == 50
    assert m.offer(1).remaining == 220 and m.offer(2).remaining == 120
    # the seller's takings and the buyer's refund of (its limit - the trade price) wait in
    # their offers until closeOffer credits them
    assert m.balance_of(seller.address) == 0
    assert m.balance_of(buyer.address) == 70_000

    h.finalize_through(LAST)
    with pytest.raises(ContractRevert, match="MarketClosed"):
        m.finalize(h.dso)
    assert m.balance_of(seller.address) == 0
    assert m.candidate().remaining_objective == 0

    # After its last interval is finalized an offer is closed: the unsold energy goes back
    # to the DSO and the buyer's unspent reservation is released; an owner closing its last
    # open offer deposits everything it holds (no depositFinancial transaction).
    closing = h.w3.eth.block_number + 1
    m.close_offer(seller, 1).wait()
    m.close_offer(buyer, 2).wait()
    assert m.offer(1).closed and m.offer(1).remaining == 0
    buyer_money = 70_000 + 80 * 30 + 50 * 20 + 70 * 150
    deposited = [e for e in m.events(closing) if isinstance(e, FinancialDeposited)]
    assert deposited == [
        FinancialDeposited(seller.address, 80 * 120 + 50 * 130),
        FinancialDeposited(buyer.address, buyer_money),
    ]
    assert m.balance_of(seller.address) == m.balance_of(buyer.address) == 0
    assert m.account(seller.address).sell.energy == 0

    events = m.events(start_block)
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "AssetAdded",
        "AssetAdded",
        "FinancialAdded",
        "OfferPosted",
        "OfferPosted",
        "SolutionAccepted",
        "IntervalFinalized",
        "TradeFinalized",
        "IntervalFinalized",
        "TradeFinalized",
        "IntervalFinalized",
        "IntervalFinalized",
        "EnergyDeposited",
        "OfferClosed",
        "EnergyDeposited",
        "FinancialDeposited",
        "EnergyDeposited",
        "OfferClosed",
        "EnergyDeposited",
        "FinancialDeposited",
    ]
    by = {name: [e for e in events if type(e).__name__ == name] for name in set(kinds)}
    assert by["AssetAdded"][0] == AssetAdded(seller.address, 1, Kind.SELL, 400, FIRST, LAST)
    assert by["FinancialAdded"] == [FinancialAdded(buyer.address, 100_000)]
    offers = [e.offer for e in by["OfferPosted"] if isinstance(e, OfferPosted)]
    assert offers == [Offer(1, 1, Kind.SELL, 300, 3, 5, 100), Offer(2, 2, Kind.BUY, 200, 4, 6, 150)]
    (accepted,) = by["SolutionAccepted"]
    assert isinstance(accepted, SolutionAccepted) and accepted.objective == 130
    assert sorted(accepted.solution.trades) == sorted(solution.trades)
    # A recorder rebuilds every finalized trade from the events alone.
    finalized = [e.trade for e in by["TradeFinalized"] if isinstance(e, TradeFinalized)]
    assert finalized == [Trade(1, 2, 4, 80, 120), Trade(1, 2, 5, 50, 130)]
    intervals = [(e.interval, e.trade_count, e.energy) for e in by["IntervalFinalized"]]  # type: ignore[attr-defined]
    assert intervals == [(3, 0, 0), (4, 1, 80), (5, 1, 50), (6, 0, 0)]
    assert by["EnergyDeposited"] == [
        EnergyDeposited(seller.address, Kind.SELL, 170, 3, 5),  # offer 1's unsold energy
        EnergyDeposited(seller.address, Kind.SELL, 100, FIRST, LAST),  # never offered
        EnergyDeposited(buyer.address, Kind.BUY, 70, 4, 6),  # offer 2's unbought energy
        EnergyDeposited(buyer.address, Kind.BUY, 100, FIRST, LAST),  # never offered
    ]
    assert OfferClosed(2, 70, 70 * 150 + 80 * 30 + 50 * 20) in by["OfferClosed"]
    assert FinancialDeposited(buyer.address, buyer_money) in by["FinancialDeposited"]
    assert all(isinstance(e, IntervalFinalized) for e in by["IntervalFinalized"])


def test_no_candidate_finalizes_nothing_and_a_late_candidate_still_counts(harness: Harness) -> None:
    h, m = harness, harness.market
    s = h.anon(1, Kind.SELL, 100)
    b = h.anon(3, Kind.BUY, 100, balance=10_000)
    h.post(s, Kind.SELL, 100, 3, 6, 10)
    h.post(b, Kind.BUY, 100, 3, 6, 10)
    h.finalize_through(4)  # no solution yet: p = 0, the market moves on
    assert m.next_finalize() == 5 and m.offer(1).remaining == 100
    with pytest.raises(ContractRevert) as info:
        m.check_solution([Trade(1, 2, 4, 10, 10)])
    assert info.value.name == "FinalizedInterval"
    m.submit_solution(h.sender(), [Trade(1, 2, 5, 30, 10), Trade(1, 2, 6, 20, 10)]).wait()
    h.finalize_through(LAST)
    assert m.offer(1).remaining == m.offer(2).remaining == 50
    start = h.w3.eth.block_number + 1
    m.close_offer(s, 1).wait()  # its last open offer: the takings go back to the DSO
    assert FinancialDeposited(s.address, 500) in m.events(start)
    assert m.balance_of(s.address) == 0


def test_clock_views(harness: Harness) -> None:
    h, m = harness, harness.market
    assert m.params() == h.params and m.feeders() == tuple(FEEDERS)
    assert m.first_delivery_interval() == FIRST and m.dso() == h.dso.address
    with pytest.raises(ContractRevert, match="NotStarted"):
        m.current_interval()
    mine(h.w3, h.params.epoch + 2 * SECONDS + 5)
    assert m.current_interval() == h.params.first_clock_interval + 2
    assert m.finalizable_at() == h.params.epoch + SECONDS


# ------------------------------------------------------------ access control, misuse
def test_only_the_dso_issues_assets(harness: Harness) -> None:
    h, m = harness, harness.market
    intruder, anon = h.sender(), h.sender()
    reverts(
        h,
        lambda: m.add_energy(intruder, anon.address, 1, Kind.SELL, 10, 3, 4, gas=REVERT_GAS),
        "NotDso",
        anon.address,
    )
    reverts(
        h,
        lambda: m.add_financial_balance(intruder, anon.address, 10, gas=REVERT_GAS),
        "NotDso",
        anon.address,
    )


def test_asset_issuing_checks(harness: Harness) -> None:
    h, m, dso = harness, harness.market, harness.dso
    a = h.anon(1, Kind.SELL, 10, 3, 4)

    def add(feeder: int, kind: Kind, energy: int, start: int, end: int) -> Any:
        return lambda: m.add_energy(
            dso, a.address, feeder, kind, energy, start, end, gas=REVERT_GAS
        )

    reverts(h, add(9, Kind.SELL, 10, 3, 4), "UnknownFeeder", a.address, feeder=9)
    reverts(h, add(2, Kind.BUY, 10, 3, 4), "FeederMismatch", a.address, linked=1, requested=2)
    reverts(h, add(1, Kind.SELL, 10, 4, 3), "BadRange", a.address)
    reverts(h, add(1, Kind.SELL, 10, 2, 4), "BadRange", a.address)  # before the first interval
    reverts(h, add(1, Kind.SELL, 10, 3, 7), "BadRange", a.address)  # after the last
    reverts(h, add(1, Kind.SELL, 0, 3, 4), "ZeroAmount", a.address)
    reverts(h, add(1, Kind.SELL, 10, 3, 5), "PermissionRangeMismatch", a.address)
    m.add_energy(dso, a.address, 1, Kind.SELL, 5, 3, 4).wait()  # same range: adds up
    m.add_energy(dso, a.address, 1, Kind.BUY, 5, 5, 6).wait()  # other kind: its own range
    acc = m.account(a.address)
    assert (acc.sell.energy, acc.buy.energy, acc.buy.start) == (15, 5, 5)


def test_offers_must_be_covered_by_assets(harness: Harness) -> None:
    h, m = harness, harness.market
    s = h.anon(1, Kind.SELL, 100, 3, 5)
    b = h.anon(2, Kind.BUY, 100, 3, 5, balance=1_000)
    nobody = h.sender()

    def post(who: Sender, kind: Kind, energy: int, start: int, end: int, price: int) -> Any:
        return lambda: m.post_offer(who, kind, energy, start, end, price, gas=REVERT_GAS)

    addrs = (s.address, b.address)
    reverts(h, post(s, Kind.SELL, 101, 3, 5, 1), "InsufficientEnergyAsset", *addrs, available=100)
    reverts(h, post(s, Kind.SELL, 10, 3, 6, 1), "OutsidePermission", *addrs)
    reverts(h, post(s, Kind.BUY, 10, 3, 5, 1), "OutsidePermission", *addrs)  # no buy permission
    reverts(h, post(b, Kind.BUY, 11, 3, 5, 100), "InsufficientBalance", *addrs, requested=1_100)
    reverts(h, post(nobody, Kind.SELL, 1, 3, 5, 1), "NotLinked", *addrs)
    reverts(h, post(s, Kind.SELL, 0, 3, 5, 1), "ZeroAmount", *addrs)
    reverts(h, post(s, Kind.SELL, 10, 5, 4, 1), "BadRange", *addrs)
    assert h.post(b, Kind.BUY, 10, 3, 5, 100) == 1  # exactly its balance
    assert m.balance_of(b.address) == 0


def test_offers_for_finalized_intervals_are_refused(harness: Harness) -> None:
    h, m = harness, harness.market
    s = h.anon(1, Kind.SELL, 100, 3, 6)
    h.finalize_through(4)
    reverts(
        h,
        lambda: m.post_offer(s, Kind.SELL, 10, 3, 4, 1, gas=REVERT_GAS),
        "RangeFinalized",
        s.address,
        end=4,
        nextFinalize=5,
    )
    late = h.sender()
    reverts(
        h,
        lambda: m.add_energy(h.dso, late.address, 1, Kind.SELL, 10, 3, 4, gas=REVERT_GAS),
        "RangeFinalized",
        late.address,
    )
    assert h.post(s, Kind.SELL, 10, 3, 5, 1) == 1  # still open in interval 5


def test_finalize_only_after_the_interval_ended_and_only_once(harness: Harness) -> None:
    h, m = harness, harness.market
    ends = h.params.finalizable_at(FIRST)
    err = reverts(h, lambda: m.finalize(h.dso, gas=REVERT_GAS), "IntervalNotEnded", interval=3)
    assert err.params["endsAt"] == ends
    mine(h.w3, ends)
    m.finalize(h.dso).wait()
    reverts(h, lambda: m.finalize(h.dso, gas=REVERT_GAS), "IntervalNotEnded", interval=4)
    assert m.next_finalize() == 4


def test_finalize_needs_the_candidates_true_segment(harness: Harness) -> None:
    h, m = harness, harness.market
    s = h.anon(1, Kind.SELL, 100)
    b = h.anon(2, Kind.BUY, 100, balance=10_000)
    h.post(s, Kind.SELL, 100, 3, 6, 10)
    h.post(b, Kind.BUY, 100, 3, 6, 10)
    m.submit_solution(h.sender(), [Trade(1, 2, 3, 30, 10), Trade(1, 2, 4, 20, 10)]).wait()
    mine(h.w3, h.params.finalizable_at(3))
    good = m.finalize_args()
    assert len(good.segment) == 1
    forged = encode_trade(Trade(1, 2, 3, 29, 10))
    for bad in (
        FinalizeArgs(),  # hiding the interval's trades
        FinalizeArgs((forged,), good.next_interval, good.next_hash),
        FinalizeArgs(good.segment, good.next_interval, bytes(32)),
    ):
        reverts(h, lambda a=bad: m.finalize(h.dso, a, gas=REVERT_GAS), "CandidateMismatch")
    m.finalize(h.dso, good).wait()
    assert m.offer(1).remaining == 70


def test_malformed_solution_encodings_are_refused(harness: Harness) -> None:
    h, m = harness, harness.market
    s = h.anon(1, Kind.SELL, 100)
    b = h.anon(2, Kind.BUY, 100, balance=10_000)
    h.post(s, Kind.SELL, 100, 3, 6, 10)
    h.post(b, Kind.BUY, 100, 3, 6, 10)
    t3, t4 = encode_trade(Trade(1, 2, 3, 5, 10)), encode_trade(Trade(1, 2, 4, 5, 10))
    solver = h.sender()
    for words, name in (([t3 | 1 << 208], "MalformedTrade"), ([t4, t3], "UnsortedTrades")):
        err = reverts(h, lambda w=words: m.submit_solution(solver, w, gas=REVERT_GAS), name)
        assert err.malformed and err.violation is None


def test_closing_offers_and_deposits_misuse(harness: Harness) -> None:
    h, m = harness, harness.market
    s = h.anon(1, Kind.SELL, 100, 3, 4)
    other = h.sender()
    h.post(s, Kind.SELL, 60, 3, 4, 10)
    addrs = (s.address,)
    reverts(h, lambda: m.close_offer(s, 1, gas=REVERT_GAS), "OfferStillOpen", *addrs)
    reverts(h, lambda: m.close_offer(s, 2, gas=REVERT_GAS), "UnknownOffer", *addrs, offerId=2)
    reverts(h, lambda: m.close_offer(other, 1, gas=REVERT_GAS), "NotOfferOwner", *addrs)
    reverts(
        h,
        lambda: m.deposit_energy(s, Kind.SELL, 41, gas=REVERT_GAS),
        "InsufficientEnergyAsset",
        *addrs,
        available=40,
    )
    reverts(h, lambda: m.deposit_financial(s, 1, gas=REVERT_GAS), "InsufficientBalance", *addrs)
    h.finalize_through(4)
    m.close_offer(s, 1).wait()
    reverts(h, lambda: m.close_offer(s, 1, gas=REVERT_GAS), "OfferAlreadyClosed", *addrs)


def test_constructor_refuses_bad_parameters(harness: Harness) -> None:
    h = harness
    bad = constructor_args(FEEDERS, h.params)
    bad[6] = 0  # t_clear (MarketParams itself refuses it)
    with pytest.raises(ContractRevert, match="BadParameters"):
        deploy_with_args(h.w3, h.dso, bad)
    with pytest.raises(ContractRevert, match="BadParameters"):
        deploy_market(h.w3, h.dso, (FEEDERS[0], FEEDERS[0]), h.params)
