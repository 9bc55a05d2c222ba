"""Cheaper offers on a real anvil: the DSO's batched `issue`, the clock's batched
`closeOffers` (deposits folded in), the money settled trades keep in their offers until
closed, and the DSO agent issuing a batch (one transaction; a refused grant costs only its
own request)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from agents.chain.client import MarketClient, load_abi
from agents.chain.encoding import MONEY, Grant, encode_grants
from agents.chain.errors import ContractRevert
from agents.chain.events import EnergyDeposited, FinancialAdded, FinancialDeposited
from agents.chain.node import Anvil, mine
from agents.common.config import DsoConfig, parse_config
from agents.common.protocol import Asset, AssetsAdded, FailedWithdrawal, WithdrawAssets
from agents.common.rpc import Contract, JsonRpc, Signer
from agents.common.typed import to_plain
from agents.dso.accounts import Accounts
from agents.dso.service import DsoService
from market.types import Kind, Trade
from tests.integration.test_contract_workflow import (  # the module's anvil
    FIRST,
    LAST,
    REVERT_GAS,
    Harness,
    anvil_log_on_failure,  # noqa: F401
    harness,  # noqa: F401
    node,  # noqa: F401
)


def test_issue_grants_permissions_and_money_in_one_transaction(harness: Harness) -> None:  # noqa: F811
    h, m = harness, harness.market
    a, b = h.sender().address, h.sender().address
    start = h.w3.eth.block_number
    receipt = m.issue(
        h.dso,
        [
            Grant(a, int(Kind.SELL), 300, 1, FIRST, LAST),
            Grant(b, int(Kind.BUY), 200, 2, 4, 5),
            Grant(b, MONEY, 7_000),
            Grant(a, int(Kind.BUY), 50, 1, FIRST, FIRST),
        ],
    ).wait()
    assert receipt["blockNumber"] == start + 1  # one transaction
    sa, sb = m.account(a), m.account(b)
    assert (sa.feeder, sa.sell.energy, sa.buy.energy, sa.balance) == (1, 300, 50, 0)
    assert (sb.feeder, sb.buy.energy, sb.buy.start, sb.buy.end, sb.balance) == (2, 200, 4, 5, 7_000)
    assert FinancialAdded(b, 7_000) in [
        e for e in m.events(start + 1) if isinstance(e, FinancialAdded)
    ]


def _malformed(case: str, a: str) -> list[int]:
    sell = Grant(a, int(Kind.SELL), 5, 1, FIRST, LAST)
    return {
        "odd": encode_grants([Grant(a, MONEY, 5)])[:1],
        "what": encode_grants([Grant(a, MONEY, 5), Grant(a, 3, 5, 1, FIRST, LAST)]),
        "money with a feeder": encode_grants([Grant(a, MONEY, 5, feeder=1)]),
        "energy above 64 bits": encode_grants([Grant(a, int(Kind.SELL), 1 << 64, 1, FIRST, LAST)]),
        "high bits": [encode_grants([sell])[0] | 1 << 240, 5],
    }[case]


@pytest.mark.parametrize(
    ("case", "index"),
    [("odd", 0), ("what", 1), ("money with a feeder", 0), ("energy above 64 bits", 0),
     ("high bits", 0)],
)  # fmt: skip
def test_issue_refuses_malformed_grants_whole(
    harness: Harness,  # noqa: F811
    case: str,
    index: int,
) -> None:
    h, m = harness, harness.market
    a = h.sender().address
    before = h.state(a)
    words = _malformed(case, a)
    pending = h.dso.send(m.address, m.encode("issue", words), function="issue", gas=REVERT_GAS)
    with pytest.raises(ContractRevert) as info:
        pending.wait()
    assert (info.value.name, info.value.params["index"]) == ("MalformedGrant", index)
    assert h.state(a) == before


def test_issue_checks_each_grant_as_its_own_call_and_only_for_the_dso(harness: Harness) -> None:  # noqa: F811
    h, m = harness, harness.market
    a, b = h.sender(), h.sender().address
    before = h.state(a.address, b)
    good = Grant(a.address, int(Kind.SELL), 10, 1, FIRST, LAST)
    with pytest.raises(ContractRevert) as info:  # the second grant's feeder is unknown
        m.issue(h.dso, [good, Grant(b, int(Kind.BUY), 5, 9, FIRST, LAST)], gas=REVERT_GAS).wait()
    assert (info.value.name, info.value.params) == ("UnknownFeeder", {"feeder": 9})
    with pytest.raises(ContractRevert, match="ZeroAmount"):
        m.issue(h.dso, [good, Grant(b, MONEY, 0)], gas=REVERT_GAS).wait()
    with pytest.raises(ContractRevert, match="NotDso"):
        m.issue(a, [good], gas=REVERT_GAS).wait()
    assert h.state(a.address, b) == before


def test_close_offers_by_anyone_credits_and_deposits_what_owners_have_left(
    harness: Harness,  # noqa: F811
) -> None:
    h, m = harness, harness.market
    seller = h.anon(1, Kind.SELL, 400)  # 100 Wh of it never offered
    buyer = h.anon(2, Kind.BUY, 300, balance=100_000)
    keeper = h.anon(2, Kind.BUY, 200, start=FIRST, end=LAST, balance=50_000)
    s1 = h.post(seller, Kind.SELL, 300, FIRST, FIRST + 1, 100)
    b1 = h.post(buyer, Kind.BUY, 200, FIRST, FIRST + 1, 150)
    k1 = h.post(keeper, Kind.BUY, 10, FIRST, FIRST, 150)
    k2 = h.post(keeper, Kind.BUY, 10, LAST, LAST, 150)  # still open after FIRST + 1
    m.submit_solution(h.sender(), [Trade(s1, b1, FIRST, 80, 120)]).wait()
    h.finalize_through(FIRST)
    # the money of a settled trade waits in the offers
    assert m.balance_of(seller.address) == 0
    assert m.balance_of(buyer.address) == 100_000 - 200 * 150
    clock = h.sender()
    with pytest.raises(ContractRevert) as info:
        m.close_offers(clock, [k1, s1], gas=REVERT_GAS).wait()  # s1 ends at FIRST + 1
    assert info.value.name == "OfferStillOpen"
    with pytest.raises(ContractRevert, match="UnknownOffer"):
        m.close_offers(clock, [k1, 99], gas=REVERT_GAS).wait()
    h.finalize_through(FIRST + 1)
    m.close_offer(buyer, b1).wait()  # its owner closed it first: closeOffers skips it
    start = h.w3.eth.block_number + 1
    m.close_offers(clock, [s1, b1, k1]).wait()
    assert all(m.offer(i).closed for i in (s1, b1, k1)) and not m.offer(k2).closed
    events = m.events(start)
    deposited = [e for e in events if isinstance(e, FinancialDeposited)]
    energy = [e for e in events if isinstance(e, EnergyDeposited)]
    # the seller had nothing else open: its takings and its never-offered 100 Wh go back
    assert FinancialDeposited(seller.address, 80 * 120) in deposited
    assert EnergyDeposited(seller.address, Kind.SELL, 220, FIRST, FIRST + 1) in energy
    assert EnergyDeposited(seller.address, Kind.SELL, 100, FIRST, LAST) in energy
    assert m.balance_of(seller.address) == 0 and m.account(seller.address).sell.energy == 0
    # the keeper still has k2 open: k1's refund is credited, nothing deposited
    assert m.balance_of(keeper.address) == 50_000 - 20 * 150 + 10 * 150
    assert all(e.anon != keeper.address for e in deposited)
    # the buyer closed its own, last open offer: everything it held went back (its balance,
    # its limit - the trade price and the untraded), as closeOffers does
    assert m.balance_of(buyer.address) == 0


def test_money_too_large_to_keep_in_an_offer_is_kept_apart_until_closed(harness: Harness) -> None:  # noqa: F811
    h, m = harness, harness.market
    price = 1 << 62  # 8 Wh at 2^62 is 2^65: more than an offer word keeps (64 bits)
    seller = h.anon(1, Kind.SELL, 10)
    buyer = h.anon(2, Kind.BUY, 10, balance=10 * price)
    s = h.post(seller, Kind.SELL, 10, FIRST, FIRST, price)
    b = h.post(buyer, Kind.BUY, 10, FIRST, FIRST, price)
    m.submit_solution(h.sender(), [Trade(s, b, FIRST, 8, price)]).wait()
    h.finalize_through(FIRST)
    assert m.balance_of(seller.address) == 0  # kept for the offer (_overflow)
    start = h.w3.eth.block_number + 1
    m.close_offer(seller, s).wait()
    m.close_offer(buyer, b).wait()
    deposited = [e for e in m.events(start) if isinstance(e, FinancialDeposited)]
    assert deposited == [
        FinancialDeposited(seller.address, 8 * price),
        FinancialDeposited(buyer.address, 2 * price),
    ]
    assert m.balance_of(seller.address) == m.balance_of(buyer.address) == 0


PROSUMERS: list[dict[str, Any]] = [
    {"id": 100 + i, "feeder": 1, "offers": [{"start": 4, "end": 5, "energy_wh": -500}]}
    for i in range(6)
]


def test_dso_issues_a_batch_in_one_transaction_and_refuses_only_a_refused_grant(
    node: Anvil,  # noqa: F811
    harness: Harness,  # noqa: F811
    tmp_path: Path,
) -> None:
    h, m = harness, harness.market
    dso_key = "0x" + bytes(h.dso.account.key).hex()
    config = parse_config(
        {"run_id": "batched", "name": "dso", "role": "dso", "rpc_url": node.url,
         "contract_address": m.address, "chain_id": h.w3.eth.chain_id, "out_dir": str(tmp_path),
         "market": to_plain(h.params), "private_key": dso_key,
         "feeders": [{"id": 1, "c_ext": 1_000, "c_int": 1_000}], "prosumers": PROSUMERS,
         "initial_balance": {p["id"]: 10_000_000 for p in PROSUMERS}}
    )  # fmt: skip
    assert isinstance(config, DsoConfig)
    chain = MarketClient.connect(config, dso_key)
    assert chain.main is not None
    service = DsoService(config, Accounts.from_config(config), chain, chain.main, random.Random(3))
    anons = [h.sender().address for _ in PROSUMERS]
    # the chain links anons[2] to feeder 2 behind the DSO agent's back: its grant must fail
    m.add_energy(h.dso, anons[2], 2, Kind.BUY, 1, FIRST, LAST).wait()
    chain.main.sync_nonce(chain.rpc)
    requests = [
        WithdrawAssets(p["id"], a, 1, (Asset(1, 500, 4, 5),), amount=500 * 20)
        for p, a in zip(PROSUMERS, anons, strict=True)
    ]
    try:
        first = chain.block_number() + 1
        results = service.withdraw_all(requests[:2])
        assert results == [AssetsAdded(a) for a in anons[:2]]
        assert chain.block_number() == first  # both requests in one issue transaction
        results = service.withdraw_all(requests[2:])
        assert isinstance(results, list) and isinstance(results[0], FailedWithdrawal)
        assert results[1:] == [AssetsAdded(a) for a in anons[3:]]
        for state in chain.accounts(anons[:2] + anons[3:]):
            assert (state.linked, state.buy_energy, state.balance) == (True, 500, 500 * 20)
        assert service.accounts.summary()["102"]["balance"] == 10_000_000  # undone
    finally:
        chain.close()


def test_the_clocks_finalize_closes_the_offers_that_ended(harness: Harness, node: Anvil) -> None:  # noqa: F811
    h, m = harness, harness.market
    seller = h.anon(1, Kind.SELL, 100)
    buyer = h.anon(2, Kind.BUY, 100, balance=20_000)
    s1 = h.post(seller, Kind.SELL, 50, FIRST, FIRST, 100)
    s2 = h.post(seller, Kind.SELL, 50, LAST, LAST, 100)
    b1 = h.post(buyer, Kind.BUY, 100, FIRST, FIRST + 1, 150)
    m.submit_solution(h.sender(), [Trade(s1, b1, FIRST, 40, 120)]).wait()
    clock = h.sender()
    chain = MarketClient(
        JsonRpc(node.url), Contract(m.address, load_abi()), h.w3.eth.chain_id,
        Signer(bytes(clock.account.key), h.w3.eth.chain_id),
    )  # fmt: skip
    try:
        for interval in (FIRST, FIRST + 1):
            mine(h.w3, max(h.params.finalizable_at(interval), h.now()))
            chain.finalize(timestamp=None)
            assert m.next_finalize() == interval + 1
        assert chain.closed([s1, s2, b1]) == [True, False, True]
    finally:
        chain.close()
    # the buyer had nothing else open: everything went back; the seller still has s2 open
    assert m.balance_of(buyer.address) == 0 and m.account(buyer.address).buy.energy == 0
    assert m.balance_of(seller.address) == 40 * 120
