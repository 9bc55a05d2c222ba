"""The contract's trade encoding and the candidate's hash chain, in pure Python."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.chain import encoding
from agents.chain.errors import EncodingError
from agents.common.abi import keccak256
from market.types import Solution, Trade

trades = st.builds(
    Trade,
    seller=st.integers(0, encoding.MAX_OFFER_ID),
    buyer=st.integers(0, encoding.MAX_OFFER_ID),
    interval=st.integers(0, encoding.MAX_INTERVAL),
    energy=st.integers(0, encoding.MAX_ENERGY),
    price=st.integers(0, encoding.MAX_PRICE),
)


@given(trades)
def test_trade_round_trip(trade: Trade) -> None:
    word = encoding.encode_trade(trade)
    assert word >> 208 == 0
    assert encoding.decode_trade(word) == trade
    assert encoding.word_interval(word) == trade.interval


def test_trade_layout_is_the_contracts() -> None:
    word = encoding.encode_trade(Trade(seller=2, buyer=3, interval=7, energy=5, price=11))
    assert word == (7 << 192) | (2 << 160) | (3 << 128) | (5 << 64) | 11


@pytest.mark.parametrize(
    "trade",
    [
        Trade(-1, 2, 3, 4, 5),
        Trade(1, 1 << 32, 3, 4, 5),
        Trade(1, 2, 1 << 16, 4, 5),
        Trade(1, 2, 3, -4, 5),
        Trade(1, 2, 3, 1 << 64, 5),
        Trade(1, 2, 3, 4, -5),
    ],
)
def test_unencodable_trades_are_refused(trade: Trade) -> None:
    with pytest.raises(EncodingError):
        encoding.encode_trade(trade)


def test_decode_refuses_words_with_high_bits() -> None:
    with pytest.raises(EncodingError):
        encoding.decode_trade(1 << 208)


@given(st.lists(trades, max_size=30))
def test_solution_encoding_is_sorted_by_interval_seller_buyer(items: list[Trade]) -> None:
    words = encoding.encode_trades(items)
    keys = [encoding.trade_key(encoding.decode_trade(w)) for w in words]
    assert keys == sorted(keys)
    assert sorted(encoding.decode_solution(words).trades) == sorted(items)
    assert encoding.encode_solution(Solution(tuple(items))) == words


def test_duplicates_stay_adjacent_for_the_contract_to_report() -> None:
    a, b = Trade(1, 2, 5, 10, 1), Trade(1, 2, 5, 3, 2)
    words = encoding.encode_trades([a, Trade(4, 2, 5, 1, 1), b])
    keys = [w >> 128 for w in words]
    assert keys[0] == keys[1] != keys[2]


def _node(words: list[int], next_interval: int, next_hash: bytes) -> bytes:
    data = b"".join(w.to_bytes(32, "big") for w in [*words, next_interval])
    return keccak256(data + next_hash)


def test_chain_matches_the_contract_definition() -> None:
    t3 = [encoding.encode_trade(Trade(1, 2, 3, 5, 1)), encoding.encode_trade(Trade(1, 4, 3, 6, 1))]
    t5 = [encoding.encode_trade(Trade(1, 2, 5, 7, 1))]
    last = _node(t5, 0, bytes(32))
    head = _node(t3, 5, last)
    links = encoding.chain(t3 + t5)
    assert [(link.interval, link.node) for link in links] == [(3, head), (5, last)]
    assert encoding.candidate_head(t3 + t5) == (head, 3)
    assert encoding.candidate_head([]) == (bytes(32), 0)


@given(st.lists(trades, max_size=20), st.integers(0, 20))
@settings(max_examples=50)
def test_finalize_args_walk_the_chain(items: list[Trade], extra: int) -> None:
    words = encoding.encode_trades(
        [Trade(t.seller, t.buyer, t.interval % 8, t.energy, t.price) for t in items]
    )
    head, head_interval = encoding.candidate_head(words)
    rest = list(words)
    while rest:
        args = encoding.finalize_args(words, head_interval)
        n = len(args.segment)
        assert n > 0
        assert _node(list(args.segment), args.next_interval, args.next_hash) == head
        assert list(args.segment) == rest[:n]
        rest = rest[n:]
        head, head_interval = args.next_hash, args.next_interval
    assert (head, head_interval) == (bytes(32), 0)
    assert encoding.finalize_args(words, 8 + extra) == encoding.FinalizeArgs()


def test_grant_layout_is_the_contracts_issue() -> None:
    anon = "0x" + "ab" * 20
    sell = encoding.Grant(anon, 0, 500, feeder=7, start=3, end=9)
    money = encoding.Grant(anon, encoding.MONEY, 10**30)
    words = encoding.encode_grants([sell, money])
    assert len(words) == 4 and words[1] == 500 and words[3] == 10**30
    head = words[0]
    assert head & ((1 << 160) - 1) == int(anon, 16)
    assert (head >> 160 & 0xFFFFFFFF, head >> 192 & 0xFF) == (7, 0)
    assert (head >> 200 & 0xFFFF, head >> 216 & 0xFFFF, head >> 232) == (3, 9, 0)
    assert words[2] == int(anon, 16) | encoding.MONEY << 192
