"""agents.common.abi without eth-abi for arguments of 32-byte words (agents.common.abiwords)
gives eth-abi's bytes and values, and eth-abi's verdict on what it refuses; its RLP,
Keccak-256 and addresses are rlp's, eth-utils' and eth-keys'."""

from __future__ import annotations

from typing import Any

import eth_abi
import pytest
import rlp
from eth_keys import keys
from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.common import abi
from agents.common.abiwords import decode_words, encode_words, kind_of

SIZES = [8, 16, 32, 64, 128, 160, 256]
STATIC = [*(f"uint{n}" for n in SIZES), "bool", "address", "bytes32", "bytes4", "bytes1"]
TYPES = st.sampled_from([*STATIC, "uint256[]", "uint64[]", "address[]", "bool[]"])
ADDRESSES = st.binary(min_size=20, max_size=20).flatmap(
    lambda raw: st.sampled_from(
        ["0x" + raw.hex(), "0x" + raw.hex().upper(), to_checksum_address(raw)]
    )
)


def value_of(abi_type: str) -> st.SearchStrategy[Any]:
    """Values eth-abi accepts for `abi_type`."""
    if abi_type.endswith("[]"):
        return st.lists(value_of(abi_type[:-2]), max_size=5)
    if abi_type.startswith("uint"):
        return st.integers(min_value=0, max_value=2 ** int(abi_type[4:]) - 1)
    if abi_type.startswith("bytes"):
        return st.binary(max_size=int(abi_type[5:]))
    return st.booleans() if abi_type == "bool" else ADDRESSES


ARGUMENTS = st.lists(TYPES, max_size=6).flatmap(
    lambda types: st.tuples(st.just(types), st.tuples(*(value_of(t) for t in types)))
)
# values eth-abi refuses or converts, for any type
ODD_VALUES = st.one_of(
    st.integers(min_value=-(2**257), max_value=2**257),
    st.booleans(),
    st.floats(allow_nan=False),
    st.binary(max_size=40),
    st.text(max_size=44),
    st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()[:-1] + "G"),
    ADDRESSES.map(lambda a: a[:2] + a[2:].swapcase()),  # a broken checksum, mostly
    st.lists(st.integers(min_value=-1, max_value=2**64), max_size=3),
    st.none(),
)


def eth_abi_result(call: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", call(*args)
    except Exception:
        return "error", None


def ours(call: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", call(*args)
    except abi.AbiError:
        return "error", None


@settings(max_examples=300, deadline=None)
@given(ARGUMENTS)
def test_encoding_and_decoding_equal_eth_abi(arguments: tuple[list[str], tuple[Any, ...]]) -> None:
    types, values = arguments
    data = eth_abi.encode(types, list(values))
    assert encode_words(types, values, abi._checksum_lower) == data  # the fast path
    assert abi.encode(types, values) == data
    assert decode_words(types, data) == eth_abi.decode(types, data)
    assert abi.decode(types, data) == eth_abi.decode(types, data)


@settings(max_examples=400, deadline=None)
@given(st.lists(TYPES, min_size=1, max_size=3), st.data())
def test_values_eth_abi_refuses_are_refused(types: list[str], data: st.DataObject) -> None:
    values = [data.draw(st.one_of(value_of(t), ODD_VALUES)) for t in types]
    expected = eth_abi_result(eth_abi.encode, types, values)
    assert ours(abi.encode, types, values) == expected


def words(draw: st.DrawFn) -> bytes:
    """32-byte words near the edges: zero, small numbers, pointers, set high bits."""
    small = st.integers(min_value=0, max_value=300).map(lambda n: n.to_bytes(32, "big"))
    high = st.integers(min_value=0, max_value=255).map(lambda b: bytes([b]) + bytes(31))
    return draw(st.one_of(small, high, st.binary(min_size=32, max_size=32)))


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    body = b"".join(words(draw) for _ in range(draw(st.integers(0, 8))))
    return body[: len(body) - draw(st.integers(0, 40))] if body else body


@settings(max_examples=600, deadline=None)
@given(st.lists(TYPES, min_size=1, max_size=4), payloads())
def test_decoding_any_payload_agrees_with_eth_abi(types: list[str], data: bytes) -> None:
    expected = eth_abi_result(eth_abi.decode, types, data)
    assert ours(abi.decode, types, data) == expected


def test_types_outside_words_go_to_eth_abi() -> None:
    for abi_type in ("string", "bytes", "int8", "uint", "uint7", "uint08", "bytes33", "(uint8)"):
        assert kind_of(abi_type) is None
    assert abi.encode(["string", "uint8"], ["x", 1]) == eth_abi.encode(
        ["string", "uint8"], ["x", 1]
    )
    assert abi.decode(["int8"], eth_abi.encode(["int8"], [-3])) == (-3,)
    with pytest.raises(abi.AbiError):
        abi.encode(["uint8"], [256])


nested = st.recursive(
    st.one_of(st.binary(max_size=70), st.integers(min_value=0, max_value=2**300)),
    lambda children: st.lists(children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(nested)
def test_rlp_equals_the_rlp_library(item: Any) -> None:
    assert abi.rlp_encode(item) == rlp.encode(item)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), st.binary(min_size=32, max_size=32))
def test_keccak_and_addresses_equal_eth_utils_and_eth_keys(data: bytes, secret: bytes) -> None:
    assert abi.keccak256(data) == keccak(data)
    assert abi.selector("x(uint8)") == keccak(b"x(uint8)")[:4]
    if 0 < int.from_bytes(secret, "big") < abi.SECP256K1_N:
        assert abi.Key(secret).address == keys.PrivateKey(secret).public_key.to_checksum_address()
    lower = data[:20].rjust(20, b"\0").hex()
    assert abi._checksum_lower(lower) == to_checksum_address("0x" + lower)
