"""The market stays live on a real anvil (issue 14): a flood of 1-Wh offers traded by the
honest solver's optimum is finalized in chunks that any caller continues, every offer closes;
submissions after a T_clear deadline are refused; the constructor bounds its packed fields;
the minimum offer energy and the per-address open-offer cap hold.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account
from web3 import Web3

from agents.chain.client import MarketClient, load_abi
from agents.chain.contract import MarketContract, deploy_market
from agents.chain.errors import ContractRevert
from agents.chain.events import IntervalFinalized, OfferClosed, OfferPosted, TradeFinalized
from agents.chain.node import Anvil, latest_timestamp, mine
from agents.chain.tx import PendingTx, Sender
from agents.common.abi import keccak256
from agents.common.market import MarketParams
from agents.common.rpc import Contract, JsonRpc, Signer
from agents.solver.trim import max_trades, trim
from market.solve import solve
from market.types import Feeder, Kind, Problem, Trade
from market.verify import verify
from tests.integration.test_contract_workflow import (
    anvil_log_on_failure,  # noqa: F401
    node,  # noqa: F401
)

FEEDERS = (Feeder(1, 10**6, 10**6), Feeder(2, 10**6, 10**6))
FIRST, LAST, T_CLEAR, HOUR = 2, 3, 1, 3600
FLOOD = 150  # 1-Wh buy offers, each from a fresh address (the testbed's rotation)
CHUNK = 40  # trades settled per finalize() call: the flood's interval takes 4 calls
TX_GAS = 1_000_000


class Market:
    """A market deployed for one test, with fresh keys that need no funds (gas price 0)."""

    def __init__(self, w3: Web3, **limits: int) -> None:
        self.w3 = w3
        self.dso = self.key("dso")
        # interval FIRST open for an hour: offers and solutions come before its deadline
        self.params = MarketParams(
            first_interval=FIRST,
            last_interval=LAST,
            t_clear=T_CLEAR,
            interval_seconds=HOUR,
            epoch=latest_timestamp(w3) - 60,
            **limits,
        )
        self.contract: MarketContract = deploy_market(w3, self.dso, FEEDERS, self.params)

    def key(self, label: str) -> Sender:
        who = Sender(self.w3, Account.from_key(keccak256(f"{id(self)}/{label}".encode())), 0)
        who.set_nonce(0)
        return who

    def issue(
        self, who: Sender, feeder: int, kind: Kind, energy: int, price: int
    ) -> list[PendingTx]:
        c = self.contract
        sent = [c.add_energy(self.dso, who.address, feeder, kind, energy, FIRST, LAST, gas=TX_GAS)]
        if kind is Kind.BUY:
            sent.append(c.add_financial_balance(self.dso, who.address, energy * price, gas=TX_GAS))
        return sent

    def finalize_through(self, interval: int, callers: list[Sender]) -> int:
        """Finalize up to `interval`, cycling through `callers`; returns the calls made."""
        calls = 0
        while self.contract.next_finalize() <= interval:
            if (at := self.contract.finalizable_at()) > latest_timestamp(self.w3):
                mine(self.w3, at)
            self.contract.finalize(callers[calls % len(callers)], gas=29_000_000).wait()
            calls += 1
        return calls


@pytest.fixture
def w3(node: Anvil) -> Iterator[Web3]:  # noqa: F811
    yield node.web3()


def _flood(m: Market, n: int = FLOOD) -> dict[int, Sender]:
    """One seller with plenty and n 1-Wh buyers in interval FIRST; offer id -> poster."""
    seller = m.key("seller")
    buyers = [m.key(f"buyer/{i}") for i in range(n)]
    pending = m.issue(seller, 1, Kind.SELL, 10_000, 0)
    for i, b in enumerate(buyers):
        pending += m.issue(b, 1 + i % 2, Kind.BUY, 1, 100)
    for p in pending:
        p.wait()
    c = m.contract
    posts = [(seller, c.post_offer(seller, Kind.SELL, 10_000, FIRST, LAST, 10, gas=TX_GAS))]
    posts += [(b, c.post_offer(b, Kind.BUY, 1, FIRST, FIRST, 100, gas=TX_GAS)) for b in buyers]
    for _, p in posts:
        assert p.wait()["status"] == 1
    return {i + 1: who for i, (who, _) in enumerate(posts)}


def test_a_flood_of_one_wh_offers_is_finalized_in_chunks_and_every_offer_closes(w3: Web3) -> None:
    m = Market(w3, settle_chunk=CHUNK)
    posters = _flood(m)
    offers = tuple(
        e.offer for e in m.contract.events(0, types=[OfferPosted]) if isinstance(e, OfferPosted)
    )
    problem = Problem(FEEDERS, offers, (), FIRST)
    optimum = solve(problem, "highs", last_interval=LAST).solution
    assert len(optimum.trades) == FLOOD and optimum.objective == FLOOD
    solution = trim(problem, optimum, max_trades())
    assert solution == optimum and not verify(problem, solution)
    m.contract.submit_solution(m.key("solver"), solution, gas=29_000_000).wait()

    start = w3.eth.block_number
    callers = [m.key(f"caller/{i}") for i in range(3)]  # anyone may continue a finalization
    mine(w3, m.contract.finalizable_at())
    m.contract.finalize(callers[0], gas=29_000_000).wait()
    assert m.contract.next_finalize() == FIRST  # one chunk settled, the interval still open
    with pytest.raises(ContractRevert) as late:  # the deadline has passed: no new candidate
        m.contract.submit_solution(m.key("late"), solution, gas=29_000_000).wait()
    assert late.value.name == "DeadlinePassed"
    assert late.value.params["interval"] == FIRST
    chunks = -(-FLOOD // CHUNK)
    assert m.finalize_through(LAST, callers[1:]) == chunks - 1 + 1  # FIRST's other chunks, LAST

    events = m.contract.events(start + 1)
    settled = [e.trade for e in events if isinstance(e, TradeFinalized)]
    assert sorted(settled) == sorted(solution.trades)
    done = [e for e in events if isinstance(e, IntervalFinalized)]
    assert [(e.interval, e.trade_count, e.energy) for e in done] == [
        (FIRST, FLOOD, FLOOD),
        (LAST, 0, 0),
    ]
    assert m.contract.candidate().remaining_objective == 0
    closes = [m.contract.close_offer(who, oid, gas=TX_GAS) for oid, who in posters.items()]
    for p in closes:
        assert p.wait()["status"] == 1
    closed = [e for e in m.contract.events(start + 1) if isinstance(e, OfferClosed)]
    assert len(closed) == len(posters)
    assert all(m.contract.offer(oid).remaining == 0 for oid in list(posters)[1:])


def test_submissions_after_the_deadline_are_refused_until_it_is_finalized(w3: Web3) -> None:
    m = Market(w3)
    seller, buyer = m.key("s"), m.key("b")
    for p in [*m.issue(seller, 1, Kind.SELL, 100, 0), *m.issue(buyer, 2, Kind.BUY, 100, 50)]:
        p.wait()
    m.contract.post_offer(seller, Kind.SELL, 100, FIRST, LAST, 10, gas=TX_GAS).wait()
    m.contract.post_offer(buyer, Kind.BUY, 100, FIRST, LAST, 50, gas=TX_GAS).wait()
    solver = m.key("solver")
    first = [Trade(1, 2, FIRST, 60, 20), Trade(1, 2, LAST, 10, 20)]
    m.contract.submit_solution(solver, first, gas=TX_GAS).wait()
    mine(w3, m.params.finalizable_at(FIRST))
    # the deadline of FIRST has passed: the candidate's FIRST trades can no longer change
    rewrite = [Trade(1, 2, FIRST, 90, 20), Trade(1, 2, LAST, 10, 20)]
    with pytest.raises(ContractRevert) as refused:
        m.contract.submit_solution(solver, rewrite, gas=TX_GAS).wait()
    assert refused.value.name == "DeadlinePassed"
    assert refused.value.params == {
        "interval": FIRST,
        "finalizableAt": m.params.finalizable_at(FIRST),
    }
    m.contract.finalize(m.key("clock"), gas=TX_GAS).wait()
    better = [Trade(1, 2, LAST, 40, 20)]  # LAST's deadline is an interval away
    m.contract.submit_solution(solver, better, gas=TX_GAS).wait()
    assert m.contract.candidate().remaining_objective == 40


def test_the_constructor_bounds_every_packed_field(w3: Web3) -> None:
    dso = Sender(w3, Account.create(), 0)
    now = latest_timestamp(w3)
    for bad in (
        MarketParams(
            first_interval=2, last_interval=0xFFFF, t_clear=1, interval_seconds=HOUR, epoch=now
        ),  # nextFinalize would carry over
        MarketParams(
            first_interval=2,
            last_interval=3,
            t_clear=1,
            interval_seconds=HOUR,
            epoch=now,
            min_offer_energy_wh=0,
        ),
        MarketParams(
            first_interval=2,
            last_interval=3,
            t_clear=1,
            interval_seconds=HOUR,
            epoch=now,
            max_open_offers=0,
        ),
        MarketParams(
            first_interval=2,
            last_interval=3,
            t_clear=1,
            interval_seconds=HOUR,
            epoch=now,
            settle_chunk=0,
        ),
        MarketParams(
            first_interval=2,
            last_interval=3,
            t_clear=1,
            interval_seconds=HOUR,
            epoch=now,
            min_improvement_wh=0,
        ),
    ):
        with pytest.raises(ContractRevert) as info:
            deploy_market(w3, dso, FEEDERS, bad)
        assert info.value.name == "BadParameters", bad
    assert deploy_market(
        w3,
        dso,
        FEEDERS,
        MarketParams(
            first_interval=2, last_interval=0xFFFE, t_clear=1, interval_seconds=HOUR, epoch=now
        ),
    ).address


def test_offers_below_the_minimum_and_above_the_open_offer_cap_are_refused(w3: Web3) -> None:
    m = Market(w3, min_offer_energy_wh=5, max_open_offers=2)
    anon = m.key("anon")
    for p in m.issue(anon, 1, Kind.SELL, 100, 0):
        p.wait()
    with pytest.raises(ContractRevert) as small:
        m.contract.post_offer(anon, Kind.SELL, 4, FIRST, FIRST, 10, gas=TX_GAS).wait()
    assert (small.value.name, small.value.params) == ("OfferTooSmall", {"energy": 4, "minimum": 5})
    for _ in range(2):
        m.contract.post_offer(anon, Kind.SELL, 5, FIRST, FIRST, 10, gas=TX_GAS).wait()
    with pytest.raises(ContractRevert) as many:
        m.contract.post_offer(anon, Kind.SELL, 5, LAST, LAST, 10, gas=TX_GAS).wait()
    assert many.value.name == "TooManyOpenOffers"
    assert many.value.params == {"anon": anon.address.lower(), "limit": 2}
    m.finalize_through(FIRST, [m.key("clock")])
    m.contract.close_offer(anon, 1, gas=TX_GAS).wait()  # a closed offer frees its place
    assert m.contract.post_offer(anon, Kind.SELL, 5, LAST, LAST, 10, gas=TX_GAS).wait()


def test_the_clocks_finalize_continues_a_chunked_interval_to_its_end(node: Anvil) -> None:  # noqa: F811
    w3 = node.web3()
    m = Market(w3, settle_chunk=7)
    _flood(m, 30)
    offers = [
        e.offer for e in m.contract.events(0, types=[OfferPosted]) if isinstance(e, OfferPosted)
    ]
    problem = Problem(FEEDERS, tuple(offers), (), FIRST)
    solution = solve(problem, "highs", last_interval=LAST).solution
    m.contract.submit_solution(m.key("solver"), solution, gas=TX_GAS * 10).wait()
    key = keccak256(b"liveness/clock")
    chain_id = w3.eth.chain_id
    client = MarketClient(
        JsonRpc(node.url), Contract(m.contract.address, load_abi()), chain_id, Signer(key, chain_id)
    )
    try:
        done = client.finalize(timestamp=m.params.finalizable_at(FIRST))
    finally:
        client.close()
    assert (done.interval, done.trades, done.energy_wh) == (FIRST, 30, 30)
    assert m.contract.next_finalize() == FIRST + 1
