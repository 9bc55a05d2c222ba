"""The agents' signer agrees byte for byte with eth-account; codec errors are AgentErrors;
the lean client's and the recorder's log decoders agree on the compiled ABI."""

from __future__ import annotations

import pytest
from eth_abi import encode as eth_abi_encode
from eth_account import Account
from eth_keys.constants import SECPK1_N
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.chain import events
from agents.chain.artifact import abi as market_abi
from agents.common import abi
from agents.common.errors import AgentError
from agents.common.rpc import Contract
from market.types import Kind

ADDRESS = "0x" + "ab" * 20


@settings(max_examples=40, deadline=None)
@given(
    st.binary(min_size=32, max_size=32).filter(lambda b: 0 < int.from_bytes(b, "big") < SECPK1_N),
    st.integers(min_value=0, max_value=2**40),
    st.integers(min_value=0, max_value=10**12),
    st.binary(max_size=300),
    st.sampled_from([1, 31337, 1337]),
)
def test_signed_transaction_matches_eth_account(
    secret: bytes, nonce: int, gas_price: int, data: bytes, chain_id: int
) -> None:
    key = abi.Key(secret)
    ref = Account.from_key(secret)
    assert key.address == ref.address
    to = to_checksum_address(ADDRESS)
    ours = key.sign_transaction(
        nonce=nonce, gas_price=gas_price, gas=300_000, to=to, value=0, data=data, chain_id=chain_id
    )
    tx = {"nonce": nonce, "gasPrice": gas_price, "gas": 300_000, "to": to, "value": 0}
    theirs = ref.sign_transaction({**tx, "data": data, "chainId": chain_id}).raw_transaction
    assert ours == bytes(theirs)
    assert Account.recover_transaction(ours) == ref.address


def test_key_from_hex_and_invalid_keys() -> None:
    secret = "0x" + "11" * 32
    assert abi.Key(secret).address == Account.from_key(secret).address
    for bad in (bytes(32), SECPK1_N.to_bytes(32, "big"), b"\x01" * 31):
        with pytest.raises(AgentError, match="invalid private key"):
            abi.Key(bad)


def test_codec_errors_are_agent_errors() -> None:
    with pytest.raises(abi.AbiError):
        abi.encode(["uint8"], [256])
    with pytest.raises(abi.AbiError):
        abi.encode(["int8"], [-129])
    with pytest.raises(abi.AbiError):
        abi.encode(["uint256", "address"], [1])
    with pytest.raises(abi.AbiError):
        abi.decode(["uint256[]"], b"\x00" * 31)
    assert abi.decode(["uint64[]", "bool"], abi.encode(["uint64[]", "bool"], [[1, 2], True])) == (
        (1, 2),
        True,
    )


def test_selector_is_keccak_of_signature() -> None:
    assert abi.selector("transfer(address,uint256)").hex() == "a9059cbb"
    assert abi.keccak256(b"").hex().startswith("c5d2460186f7233c")


def test_lean_client_and_recorder_decode_the_same_log() -> None:
    contract = Contract(ADDRESS, market_abi())
    topic = contract.event_topics["OfferPosted"]
    assert topic == events.topic_of(events.OfferPosted)
    poster = "0x" + "cd" * 20
    log = {
        "address": ADDRESS,
        "topics": [
            "0x" + topic.hex(),
            "0x" + (12).to_bytes(32, "big").hex(),
            "0x" + (3).to_bytes(32, "big").hex(),
            "0x" + bytes.fromhex(poster[2:]).rjust(32, b"\0").hex(),
        ],
        "data": "0x"
        + eth_abi_encode(
            ["uint8", "uint64", "uint16", "uint16", "uint64"], [1, 500, 4, 6, 9]
        ).hex(),
        "blockNumber": "0x5",
        "transactionHash": "0x" + "00" * 32,
        "logIndex": "0x1",
    }
    name, args = contract.decode_log(log) or ("", {})
    assert name == "OfferPosted"
    assert args == {
        "offerId": 12,
        "feeder": 3,
        "kind": 1,
        "energy": 500,
        "start": 4,
        "end": 6,
        "price": 9,
        "poster": poster,
    }
    typed = events.decode_log(log)
    assert isinstance(typed, events.OfferPosted)
    assert (typed.offer_id, typed.kind, typed.poster) == (12, Kind.BUY, to_checksum_address(poster))
    assert contract.decode_log({**log, "topics": ["0x" + "00" * 32]}) is None


def test_calldata_is_selector_and_arguments() -> None:
    contract = Contract(ADDRESS, market_abi())
    words = [1 << 200, (1 << 200) + 1]
    data = contract.encode("submitSolution", words)
    assert data[:4] == abi.selector("submitSolution(uint256[])")
    assert abi.decode(["uint256[]"], data[4:]) == (tuple(words),)
