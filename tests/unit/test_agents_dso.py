"""DSO safety checks and accounts, without network."""

from __future__ import annotations

import pytest

from agents.chain.client import MarketClient
from agents.common.config import DsoConfig, ProsumerSpec, TraceOffer, parse_config
from agents.common.protocol import (
    Asset,
    BatchResult,
    Bootstrap,
    BootstrapInfo,
    ErrorReply,
    FailedWithdrawal,
    WithdrawAssets,
    WithdrawBatch,
    decode,
    encode,
)
from agents.common.rpc import Contract, JsonRpc, Signer
from agents.dso.accounts import Accounts, Refused
from agents.dso.service import DsoService, permissions
from market.types import Kind

A1 = "0x" + "a1" * 20
A2 = "0x" + "a2" * 20
SELL, BUY = int(Kind.SELL), int(Kind.BUY)


def accounts() -> Accounts:
    prosumers = (
        ProsumerSpec(
            101,
            1,
            (
                TraceOffer(3, 3, 1000),
                TraceOffer(4, 6, 900),
                TraceOffer(8, 99, 400),  # reaches beyond the window: clipped
            ),
        ),
        ProsumerSpec(202, 2, (TraceOffer(3, 4, -700),)),
    )
    return Accounts(prosumers, {101: 0, 202: 10_000}, {1, 2}, first_interval=2, last_interval=10)


def req(
    prosumer: int, feeder: int, *assets: Asset, amount: int = 0, anon: str = A1
) -> WithdrawAssets:
    return WithdrawAssets(prosumer, anon, feeder, assets, amount)


def test_declared_offers_cover_withdrawals_until_used_up() -> None:
    acc = accounts()
    acc.withdraw(req(101, 1, Asset(SELL, 600, 3, 3)))
    acc.withdraw(req(101, 1, Asset(SELL, 400, 3, 3), anon=A2))
    with pytest.raises(Refused, match="exceeds prosumer 101's declared offers"):
        acc.withdraw(req(101, 1, Asset(SELL, 1, 3, 3), anon=A2))
    assert acc.owner == {A1: 101, A2: 101}


def test_sub_range_of_a_declared_offer_is_covered() -> None:
    acc = accounts()
    acc.withdraw(req(101, 1, Asset(SELL, 900, 5, 6)))
    with pytest.raises(Refused, match="declared"):
        acc.withdraw(req(101, 1, Asset(SELL, 1, 4, 4), anon=A2))


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (req(999, 1, Asset(SELL, 1, 3, 3)), "unknown prosumer 999"),
        (req(101, 7, Asset(SELL, 1, 3, 3)), "unknown feeder 7"),
        (req(101, 2, Asset(SELL, 1, 3, 3)), "is on feeder 1, not 2"),
        (req(101, 1, Asset(SELL, 1001, 3, 3)), "declared"),  # over-asking energy
        (req(101, 1, Asset(BUY, 10, 3, 3)), "declared"),  # wrong kind
        (req(101, 1, Asset(SELL, 10, 3, 4)), "declared"),  # range not inside one offer
        (req(101, 1, Asset(SELL, 0, 3, 3)), "empty asset"),
        (req(101, 1, Asset(SELL, 5, 4, 3)), "empty asset"),
        (req(101, 1, Asset(7, 5, 3, 3)), "unknown asset kind"),
        (req(101, 1, Asset(SELL, 5, 1, 3)), "outside the market's intervals 2..10"),
        (req(101, 1, Asset(SELL, 5, 9, 11)), "outside"),
        (req(202, 2, Asset(BUY, 700, 3, 4), amount=10_001), "insufficient funds"),
        (req(202, 2, Asset(BUY, 700, 3, 4), amount=-1), "negative amount"),
        (req(101, 1), "nothing to withdraw"),
        (req(101, 1, Asset(SELL, 5, 3, 3), anon="0x1234"), "malformed address"),
    ],
)
def test_unsafe_withdrawals_are_refused_and_change_nothing(
    request_: WithdrawAssets, reason: str
) -> None:
    acc = accounts()
    before = {p: (list(a.declared), a.balance) for p, a in acc.accounts.items()}
    with pytest.raises(Refused, match=reason):
        acc.withdraw(request_)
    assert {p: (list(a.declared), a.balance) for p, a in acc.accounts.items()} == before
    assert acc.owner == {}


def test_finalized_intervals_cannot_be_withdrawn() -> None:
    acc = accounts()
    acc.finalized = 4
    with pytest.raises(Refused, match="already finalized"):
        acc.withdraw(req(101, 1, Asset(SELL, 10, 3, 3)))
    acc.withdraw(req(101, 1, Asset(SELL, 10, 5, 6)))  # 4..6 offer, later part


def test_address_of_another_prosumer_is_refused() -> None:
    acc = accounts()
    acc.withdraw(req(101, 1, Asset(SELL, 10, 3, 3)))
    with pytest.raises(Refused, match="belongs to another prosumer"):
        acc.withdraw(req(202, 2, Asset(BUY, 10, 3, 3), anon=A1))


def test_money_is_debited_and_deposits_credit_back() -> None:
    acc = accounts()
    acc.withdraw(req(202, 2, Asset(BUY, 700, 3, 4), amount=7_000, anon=A2))
    assert acc.accounts[202].balance == 3_000
    assert acc.deposit_money(A2.upper().replace("0X", "0x"), 5_500)
    assert acc.accounts[202].balance == 8_500
    assert acc.deposit_energy(A2, 200, BUY, 3, 4)
    assert acc.accounts[202].deposited_energy_wh == 200
    assert acc.accounts[202].declared == [(BUY, 3, 4, 200)]
    assert not acc.deposit_money(A1, 1)  # not a known address


def test_clipped_declared_offer_covers_the_clipped_range() -> None:
    acc = accounts()
    acc.withdraw(req(101, 1, Asset(SELL, 400, 8, 10)))  # declared 8..99 clipped to 8..10


def test_duplicate_and_undo() -> None:
    acc = accounts()
    r = req(202, 2, Asset(BUY, 700, 3, 4), amount=7_000)
    grant = acc.withdraw(r)
    assert acc.is_duplicate(r)
    acc.undo(grant)
    assert not acc.is_duplicate(r)
    assert acc.accounts[202].balance == 10_000
    assert acc.accounts[202].declared == [(BUY, 3, 4, 700)]
    assert acc.owner == {}


def test_undo_of_several_grants_in_any_order_restores_the_account() -> None:
    acc = accounts()
    before = list(acc.accounts[101].declared)
    g1 = acc.withdraw(req(101, 1, Asset(SELL, 300, 3, 3)))
    g2 = acc.withdraw(req(101, 1, Asset(SELL, 200, 3, 3), Asset(SELL, 50, 5, 5), anon=A2))
    g3 = acc.withdraw(req(101, 1, Asset(SELL, 100, 4, 4)))  # A1 again: already linked
    acc.undo(g1)
    assert acc.owner == {A1: 101, A2: 101}  # g3 still uses A1
    acc.undo(g3)
    assert acc.owner == {A2: 101}
    acc.undo(g2)
    assert acc.accounts[101].declared == before
    assert acc.owner == {}
    assert acc.accounts[101].addresses == set()


def test_permissions_aggregate_one_range_per_kind() -> None:
    r = req(
        101,
        1,
        Asset(SELL, 100, 3, 3),
        Asset(SELL, 50, 5, 6),
        Asset(BUY, 20, 4, 4),
    )
    assert permissions(r) == [(SELL, 150, 3, 6), (BUY, 20, 4, 4)]


def test_many_requests_are_answered_in_order_with_one_reply_each() -> None:
    """The DSO's ROUTER loop: requests waiting together are handled together
    (refusals, bootstrap and garbage here: no transaction, so no node needed)."""
    config = parse_config(
        {
            "role": "dso",
            "name": "dso",
            "contract_address": "0x" + "cc" * 20,
            "private_key": "0x" + "01" * 32,
            "market": {
                "first_interval": 2,
                "last_interval": 10,
                "prediction_window": 2,
                "t_clear": 1,
                "interval_seconds": 60,
                "epoch": 0,
            },
            "feeders": [{"id": 1, "c_ext": 10, "c_int": 10}, {"id": 2, "c_ext": 10, "c_int": 10}],
            "prosumers": [],
        }
    )
    assert isinstance(config, DsoConfig)
    chain = MarketClient(JsonRpc("http://127.0.0.1:9"), Contract("0x" + "cc" * 20, []), 31337)
    service = DsoService(config, accounts(), chain, Signer("0x" + "01" * 32, 31337))
    frames = [
        encode(
            WithdrawBatch((req(999, 1, Asset(SELL, 1, 3, 3)), req(101, 2, Asset(SELL, 1, 3, 3))))
        ),
        encode(Bootstrap()),
        b"garbage",
        encode(req(101, 1, Asset(SELL, 5000, 3, 3))),
    ]
    replies = [decode(r) for r in service.handle_many(frames, service.dispatcher())]
    assert len(replies) == 4
    batch, boot, bad, single = replies
    assert isinstance(batch, BatchResult)
    assert [type(r) for r in batch.results] == [FailedWithdrawal, FailedWithdrawal]
    assert "unknown prosumer 999" in batch.results[0].reason  # type: ignore[union-attr]
    assert isinstance(boot, BootstrapInfo) and boot.market == config.market
    assert isinstance(bad, ErrorReply) and "not JSON" in bad.reason
    assert isinstance(single, FailedWithdrawal) and "declared" in single.reason
    assert service.refused == 3
