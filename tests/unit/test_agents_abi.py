"""The agents' minimal ABI codec and signer agree byte for byte with eth_abi / eth_account."""

from __future__ import annotations

import eth_abi
import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.common import abi

ADDRESS = "0x" + "ab" * 20
CASES = [
    (["uint256", "address", "bool"], [7, ADDRESS, True]),
    (["uint8", "int64", "uint32"], [1, -5, 2**32 - 1]),
    (["uint256[]", "int32"], [[1, 2, 3], -1]),
    (["bytes", "uint256", "string"], [b"\x01\x02", 9, "hello"]),
    (["uint64[3]", "uint256[]"], [[1, 2, 3], []]),
    (["bytes32", "address[]"], [b"\x11" * 32, [ADDRESS, ADDRESS]]),
]


@pytest.mark.parametrize(("types", "values"), CASES)
def test_encode_decode_match_eth_abi(types: list[str], values: list[object]) -> None:
    ours = abi.encode(types, values)
    assert ours == eth_abi.encode(types, values)
    decoded = abi.decode(types, ours)
    reference = eth_abi.decode(types, ours)
    for mine, ref in zip(decoded, reference, strict=True):
        if isinstance(ref, str) and ref.startswith("0x"):
            assert mine == ref.lower()
        elif isinstance(ref, tuple):
            assert list(ref) == [r.lower() if isinstance(r, str) else r for r in mine]
        else:
            assert mine == ref


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=8),
    st.integers(min_value=-(2**127), max_value=2**127 - 1),
    st.binary(max_size=80),
)
def test_random_values_match_eth_abi(words: list[int], signed: int, blob: bytes) -> None:
    types = ["uint64[]", "int128", "bytes"]
    values = [words, signed, blob]
    assert abi.encode(types, values) == eth_abi.encode(types, values)
    assert abi.decode(types, abi.encode(types, values)) == (words, signed, blob)


def test_out_of_range_is_refused() -> None:
    with pytest.raises(abi.AbiError):
        abi.encode(["uint8"], [256])
    with pytest.raises(abi.AbiError):
        abi.encode(["int8"], [-129])


@settings(max_examples=20, deadline=None)
@given(
    st.binary(min_size=32, max_size=32).filter(
        lambda b: 0 < int.from_bytes(b, "big") < abi.SECP256K1_N
    ),
    st.integers(min_value=0, max_value=2**40),
    st.binary(max_size=300),
    st.sampled_from([1, 31337, 1337]),
)
def test_signed_transaction_matches_eth_account(
    secret: bytes, nonce: int, data: bytes, chain_id: int
) -> None:
    key = abi.Key(secret)
    ref = Account.from_key(secret)
    assert key.address == ref.address
    to = abi.to_checksum(bytes.fromhex(ADDRESS[2:]))
    tx = {"nonce": nonce, "gasPrice": 0, "gas": 300_000, "to": to, "value": 0, "data": data}
    ours = key.sign_transaction(
        nonce=nonce, gas_price=0, gas=300_000, to=ADDRESS, value=0, data=data, chain_id=chain_id
    )
    theirs = ref.sign_transaction({**tx, "chainId": chain_id}).raw_transaction
    assert ours == bytes(theirs)
    assert Account.recover_transaction(ours) == ref.address


def test_selector_is_keccak_of_signature() -> None:
    assert abi.selector("transfer(address,uint256)").hex() == "a9059cbb"
