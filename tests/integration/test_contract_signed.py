"""The DSO's signed grants on a real anvil: postSignedOffer and returnGrant.

A grant signed off chain by the DSO (EIP-712, agents.chain.encoding.SignedGrant) replaces
its addEnergy/addFinancialBalance transactions. Checked: it works once, only from the address
it names, only with the DSO's signature of exactly its fields, with the same checks (and
errors) as the DSO's own calls and as postOffer; an exact buy grant writes no balance slot;
an unused grant goes back to the DSO.
"""

from __future__ import annotations

from dataclasses import replace

from eth_abi import encode as abi_encode
from eth_utils import keccak
from web3.types import RPCEndpoint

from agents.chain.encoding import SignedGrant
from agents.chain.events import (
    AssetAdded,
    EnergyDeposited,
    FinancialAdded,
    FinancialDeposited,
)
from agents.chain.tx import Sender
from market.types import Kind, Trade
from tests.integration.test_contract_workflow import (  # the module's anvil
    FIRST,
    LAST,
    REVERT_GAS,
    Harness,
    anvil_log_on_failure,  # noqa: F401
    harness,  # noqa: F401
    node,  # noqa: F401
    reverts,
)


def _grant(
    h: Harness, who: Sender, feeder: int = 1, sell: int = 0, buy: int = 0, money: int = 0
) -> SignedGrant:
    g = SignedGrant(
        who.address,
        feeder,
        (sell, FIRST, LAST) if sell else (0, 0, 0),
        (buy, FIRST, LAST) if buy else (0, 0, 0),
        money,
    )
    return h.market.sign_grant(h.dso, g)


def _balance_slot_written(h: Harness, tx_hash: bytes, anon: str) -> bool:
    """Whether the transaction wrote the balance mapping's slot of `anon` (prestate diff)."""
    trace = h.w3.provider.make_request(
        RPCEndpoint("debug_traceTransaction"),
        [tx_hash.hex(), {"tracer": "prestateTracer", "tracerConfig": {"diffMode": True}}],
    )
    post = trace["result"]["post"].get(h.market.address.lower(), {}).get("storage", {})
    assert post, "the transaction wrote no storage at all: the trace is not what we think"
    # MarketBase storage: _feeders 0, _feederIndex1 1, _accounts 2, _balances 3
    slot = "0x" + keccak(abi_encode(["address", "uint256"], [anon, 3])).hex()
    return slot in post


def test_a_signed_grant_posts_an_offer_once_and_only_from_its_address(harness: Harness) -> None:  # noqa: F811
    h, m = harness, harness.market
    seller, buyer, stranger = h.sender(), h.sender(), h.sender()
    sell = _grant(h, seller, feeder=1, sell=400)
    buy = _grant(h, buyer, feeder=2, buy=300, money=300 * 150)
    start = h.w3.eth.block_number + 1
    m.post_signed_offer(seller, Kind.SELL, 300, FIRST, LAST, 100, sell).wait()
    receipt = m.post_signed_offer(buyer, Kind.BUY, 300, FIRST, LAST, 150, buy).wait()
    events = m.events(start)
    assert AssetAdded(seller.address, 1, Kind.SELL, 400, FIRST, LAST) in events
    assert AssetAdded(buyer.address, 2, Kind.BUY, 300, FIRST, LAST) in events
    assert FinancialAdded(buyer.address, 300 * 150) in events
    acc = m.account(seller.address)
    assert (acc.linked, acc.feeder, acc.sell.energy, acc.sell.start) == (True, 1, 100, FIRST)
    assert m.account(buyer.address).balance == 0
    assert m.offer(2).owner == buyer.address and m.offer(2).price == 150
    # the exact buy grant paid the reservation: no balance slot written
    assert not _balance_slot_written(h, receipt["transactionHash"], buyer.address)

    addrs = (seller.address, buyer.address, stranger.address)
    # a second use, by its address or by anyone else
    reverts(
        h,
        lambda: m.post_signed_offer(seller, Kind.SELL, 50, FIRST, LAST, 100, sell, gas=REVERT_GAS),
        "AlreadyLinked",
        *addrs,
        anon=seller.address.lower(),
    )
    stolen = replace(buy, anon=stranger.address)
    reverts(
        h,
        lambda: m.post_signed_offer(stranger, Kind.BUY, 1, FIRST, LAST, 1, stolen, gas=REVERT_GAS),
        "InvalidGrantSignature",
        *addrs,
    )
    # the seller still has 100 Wh: its next offers are ordinary postOffer calls
    m.post_offer(seller, Kind.SELL, 100, FIRST, LAST, 100).wait()
    assert m.account(seller.address).sell.energy == 0


def test_a_grant_changed_or_signed_by_anyone_else_is_refused(harness: Harness) -> None:  # noqa: F811
    h, m = harness, harness.market
    who = h.sender()
    good = _grant(h, who, sell=100)
    addrs = (who.address,)
    for bad in (
        replace(good, sell=(101, FIRST, LAST)),  # more energy than signed
        replace(good, sell=(100, FIRST, LAST + 1)),
        replace(good, feeder=2),
        replace(good, money=1),
        good.signed("0x" + "11" * 32, int(h.w3.eth.chain_id), m.address),  # not the DSO
        replace(good, vs=bytes(32)),
    ):
        reverts(
            h,
            lambda b=bad: m.post_signed_offer(
                who, Kind.SELL, 50, FIRST, LAST, 1, b, gas=REVERT_GAS
            ),
            "InvalidGrantSignature",
            *addrs,
        )
    # a grant for another market (the same DSO) is refused too
    other = good.signed(h.dso.account.key, int(h.w3.eth.chain_id), "0x" + "42" * 20)
    reverts(
        h,
        lambda: m.post_signed_offer(who, Kind.SELL, 50, FIRST, LAST, 1, other, gas=REVERT_GAS),
        "InvalidGrantSignature",
        *addrs,
    )
    m.post_signed_offer(who, Kind.SELL, 50, FIRST, LAST, 1, good).wait()


def test_a_signed_grant_keeps_the_checks_of_issue_and_post_offer(harness: Harness) -> None:  # noqa: F811
    h, m = harness, harness.market

    def try_post(grant: SignedGrant, kind: Kind, energy: int, price: int = 10):
        who = next(s for s in senders if s.address == grant.anon)
        return lambda: m.post_signed_offer(
            who, kind, energy, FIRST, LAST, price, grant, gas=REVERT_GAS
        )

    senders = [h.sender() for _ in range(7)]
    a = [s.address for s in senders]
    sign = m.sign_grant
    cases = [
        (sign(h.dso, SignedGrant(a[0], 9, (10, FIRST, LAST))), Kind.SELL, 5, "UnknownFeeder"),
        (sign(h.dso, SignedGrant(a[1], 1, (10, LAST, FIRST))), Kind.SELL, 5, "BadRange"),
        (sign(h.dso, SignedGrant(a[2], 1)), Kind.SELL, 5, "ZeroAmount"),
        (_grant(h, senders[3], sell=10), Kind.SELL, 11, "InsufficientEnergyAsset"),
        (_grant(h, senders[4], buy=10, money=99), Kind.BUY, 10, "InsufficientBalance"),
        (_grant(h, senders[5], sell=10), Kind.BUY, 5, "OutsidePermission"),
    ]
    for grant, kind, energy, name in cases:
        reverts(h, try_post(grant, kind, energy), name, *a)
    malformed = replace(_grant(h, senders[6], sell=10), feeder=1 | 1 << 31)
    err = reverts(
        h,
        lambda: m.post_signed_offer(
            senders[6], Kind.SELL, 5, FIRST, LAST, 1, malformed, gas=REVERT_GAS
        ),
        "InvalidGrantSignature",
        *a,
    )
    assert err.name == "InvalidGrantSignature"
    # money beyond the reservation stays as the address's balance
    g = _grant(h, senders[4], buy=10, money=150)
    m.post_signed_offer(senders[4], Kind.BUY, 10, FIRST, LAST, 10, g).wait()
    assert m.balance_of(a[4]) == 50


def test_a_signed_grant_for_finalized_intervals_is_refused(harness: Harness) -> None:  # noqa: F811
    h, m = harness, harness.market
    who = h.sender()
    early = m.sign_grant(h.dso, SignedGrant(who.address, 1, (10, FIRST, FIRST)))
    h.finalize_through(FIRST)
    reverts(
        h,
        lambda: m.post_signed_offer(who, Kind.SELL, 5, FIRST, FIRST, 1, early, gas=REVERT_GAS),
        "RangeFinalized",
        who.address,
    )


def test_an_unused_grant_goes_back_to_the_dso_once(harness: Harness) -> None:  # noqa: F811
    h, m = harness, harness.market
    who = h.sender()
    g = _grant(h, who, sell=70, buy=30, money=30 * 20)
    h.finalize_through(LAST)  # its intervals are over: it can still be given back
    start = h.w3.eth.block_number + 1
    m.return_grant(who, g).wait()
    events = m.events(start)
    assert EnergyDeposited(who.address, Kind.SELL, 70, FIRST, LAST) in events
    assert EnergyDeposited(who.address, Kind.BUY, 30, FIRST, LAST) in events
    assert FinancialDeposited(who.address, 600) in events
    state = m.account(who.address)
    assert (state.sell.energy, state.buy.energy, state.balance) == (0, 0, 0)
    reverts(h, lambda: m.return_grant(who, g, gas=REVERT_GAS), "AlreadyLinked", who.address)


def test_signed_offers_trade_settle_and_close_like_issued_ones(harness: Harness) -> None:  # noqa: F811
    h, m = harness, harness.market
    seller, buyer = h.sender(), h.sender()
    m.post_signed_offer(
        seller, Kind.SELL, 100, FIRST, FIRST, 10, _grant(h, seller, sell=100)
    ).wait()
    bg = _grant(h, buyer, feeder=2, buy=100, money=100 * 30)
    m.post_signed_offer(buyer, Kind.BUY, 100, FIRST, FIRST, 30, bg).wait()
    m.submit_solution(h.sender(), [Trade(1, 2, FIRST, 60, 20)]).wait()
    h.finalize_through(FIRST)
    start = h.w3.eth.block_number + 1
    m.close_offers(h.sender(), [1, 2]).wait()
    deposited = {(e.anon, e.amount) for e in m.events(start) if isinstance(e, FinancialDeposited)}
    # the seller's takings; the buyer's refund (30 - 20 per Wh traded) and its untraded 40 Wh
    assert deposited == {(seller.address, 60 * 20), (buyer.address, 60 * 10 + 40 * 30)}
