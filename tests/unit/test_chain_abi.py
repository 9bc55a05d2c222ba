"""Revert decoding and event decoding against the committed ABI, without a node."""

from __future__ import annotations

import dataclasses

from eth_abi import encode
from eth_utils import to_checksum_address

from agents.chain.artifact import abi
from agents.chain.errors import MALFORMED_ERRORS, VIOLATION_BY_ERROR, decode_revert
from agents.chain.events import EVENT_TYPES, ChainEvent, OfferPosted, TradeFinalized, decode_log
from agents.common.abi import keccak256
from market.types import Kind, Offer, Trade
from market.verify import ViolationKind

ERRORS = {item["name"]: item for item in abi() if item["type"] == "error"}
EVENTS = {item["name"]: item for item in abi() if item["type"] == "event"}


def _selector(item: dict) -> bytes:
    types = ",".join(p["type"] for p in item["inputs"])
    return keccak256(f"{item['name']}({types})".encode())[:4]


def test_every_mapped_error_exists_and_every_chain_checkable_kind_is_mapped() -> None:
    assert set(VIOLATION_BY_ERROR) <= set(ERRORS)
    assert set(ERRORS) >= MALFORMED_ERRORS
    # Offers on chain always have a known feeder, and prices are unsigned in the encoding.
    off_chain = {ViolationKind.UNKNOWN_FEEDER, ViolationKind.NEGATIVE_PRICE}
    assert set(VIOLATION_BY_ERROR.values()) == set(ViolationKind) - off_chain


def test_custom_error_is_decoded_with_names_and_violation() -> None:
    item = ERRORS["FeederExtIn"]
    data = _selector(item) + encode(["uint32", "uint16", "uint256", "uint64"], [7, 12, 901, 900])
    err = decode_revert("0x" + data.hex(), "submitSolution")
    assert err.name == "FeederExtIn"
    assert err.params == {"feeder": 7, "interval": 12, "netIn": 901, "cExt": 900}
    assert err.violation is ViolationKind.FEEDER_EXT_IN
    assert not err.malformed
    assert "submitSolution: reverted with FeederExtIn(feeder=7" in str(err)


def test_malformed_and_other_errors_have_no_violation() -> None:
    err = decode_revert(_selector(ERRORS["UnsortedTrades"]) + encode(["uint256"], [3]))
    assert (err.name, err.params, err.violation, err.malformed) == (
        "UnsortedTrades",
        {"index": 3},
        None,
        True,
    )
    assert decode_revert(_selector(ERRORS["NotDso"])).name == "NotDso"


def test_panic_unknown_and_empty_revert_data() -> None:
    panic = decode_revert(keccak256(b"Panic(uint256)")[:4] + encode(["uint256"], [0x11]))
    assert (panic.name, panic.params["reason"]) == ("Panic", "arithmetic overflow or underflow")
    assert decode_revert("0xdeadbeef").name == "Unknown"
    assert decode_revert(None).name == "Unknown"


def test_every_event_has_a_typed_class_with_its_fields() -> None:
    assert set(EVENTS) == set(EVENT_TYPES)
    for name, item in EVENTS.items():
        fields = [f.name for f in dataclasses.fields(EVENT_TYPES[name])]
        meta = [f.name for f in dataclasses.fields(ChainEvent)]
        own = [f for f in fields if f not in meta]
        assert len(own) == len(item["inputs"]), name


def _log(name: str, values: list, *, hex_strings: bool) -> dict:
    item = EVENTS[name]
    types = [p["type"] for p in item["inputs"]]
    topic0 = keccak256(f"{name}({','.join(types)})".encode())
    topics = [topic0]
    plain_types, plain_values = [], []
    for p, v in zip(item["inputs"], values, strict=True):
        if p["indexed"]:
            topics.append(encode([p["type"]], [v]))
        else:
            plain_types.append(p["type"])
            plain_values.append(v)
    data = encode(plain_types, plain_values)
    conv = (lambda b: "0x" + b.hex()) if hex_strings else (lambda b: b)
    return {
        "topics": [conv(t) for t in topics],
        "data": conv(data),
        "blockNumber": "0x10" if hex_strings else 16,
        "transactionHash": conv(b"\x01" * 32),
        "logIndex": "0x2" if hex_strings else 2,
    }


def test_decode_log_from_plain_json_rpc_and_from_web3() -> None:
    poster = "0x" + "ab" * 20
    values = [9, 3, int(Kind.BUY), 500, 4, 6, 120, poster]
    for hex_strings in (True, False):
        ev = decode_log(_log("OfferPosted", values, hex_strings=hex_strings))
        assert isinstance(ev, OfferPosted)
        assert ev.offer == Offer(9, 3, Kind.BUY, 500, 4, 6, 120)
        assert ev.poster == to_checksum_address(poster)
        assert (ev.block_number, ev.log_index) == (16, 2)
        assert ev.transaction_hash == "0x" + "01" * 32
    fin = decode_log(_log("TradeFinalized", [5, 1, 2, 30, 7], hex_strings=True))
    assert isinstance(fin, TradeFinalized)
    assert fin.trade == Trade(seller=1, buyer=2, interval=5, energy=30, price=7)


def test_foreign_logs_are_ignored() -> None:
    assert decode_log({"topics": ["0x" + "00" * 32], "data": "0x"}) is None
    assert decode_log({"topics": [], "data": "0x"}) is None
