"""Typed events of the market contract, decoded from raw logs.

`decode_log` accepts a log as web3 returns it (HexBytes topics) or as plain JSON-RPC
(0x-hex strings), so lean agents can use it with their own client; eth-abi decodes the
values, eth-utils gives the topics and checksums the addresses (as web3 prints them).
Every event carries where it happened (block_number, transaction_hash, log_index) so a
recorder can order and deduplicate them. Fields follow the ABI order, in snake_case.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from eth_utils import event_abi_to_log_topic, get_abi_input_types, to_checksum_address

from agents.chain.artifact import load_artifact
from agents.chain.encoding import decode_solution
from agents.common.abi import decode_event
from market.types import Kind, Offer, Solution, Trade


@dataclass(frozen=True, kw_only=True)
class ChainEvent:
    block_number: int = field(default=0, compare=False)
    transaction_hash: str = field(default="", compare=False)
    log_index: int = field(default=0, compare=False)


@dataclass(frozen=True)
class AssetAdded(ChainEvent):
    anon: str
    feeder: int
    kind: Kind
    energy: int
    start: int
    end: int


@dataclass(frozen=True)
class FinancialAdded(ChainEvent):
    anon: str
    amount: int


@dataclass(frozen=True)
class OfferPosted(ChainEvent):
    offer_id: int
    feeder: int
    kind: Kind
    energy: int
    start: int
    end: int
    price: int
    poster: str

    @property
    def offer(self) -> Offer:
        return Offer(
            self.offer_id, self.feeder, self.kind, self.energy, self.start, self.end, self.price
        )


@dataclass(frozen=True)
class SolutionAccepted(ChainEvent):
    candidate_id: int
    submitter: str
    objective: int
    trade_count: int
    trades: tuple[int, ...]

    @property
    def solution(self) -> Solution:
        return decode_solution(self.trades)


@dataclass(frozen=True)
class TradeFinalized(ChainEvent):
    interval: int
    seller: int
    buyer: int
    energy: int
    price: int

    @property
    def trade(self) -> Trade:
        return Trade(self.seller, self.buyer, self.interval, self.energy, self.price)


@dataclass(frozen=True)
class IntervalFinalized(ChainEvent):
    interval: int
    candidate_id: int
    trade_count: int
    energy: int


@dataclass(frozen=True)
class EnergyDeposited(ChainEvent):
    anon: str
    kind: Kind
    energy: int
    start: int
    end: int


@dataclass(frozen=True)
class FinancialDeposited(ChainEvent):
    anon: str
    amount: int


@dataclass(frozen=True)
class OfferClosed(ChainEvent):
    offer_id: int
    energy_deposited: int
    refund: int


EVENT_TYPES: dict[str, type[ChainEvent]] = {
    cls.__name__: cls
    for cls in (
        AssetAdded,
        FinancialAdded,
        OfferPosted,
        SolutionAccepted,
        TradeFinalized,
        IntervalFinalized,
        EnergyDeposited,
        FinancialDeposited,
        OfferClosed,
    )
}


@dataclass(frozen=True)
class _EventAbi:
    cls: type[ChainEvent]
    types: tuple[str, ...]
    indexed: tuple[bool, ...]
    kinds: tuple[bool, ...]  # enum Kind parameters


@cache
def _events_by_topic() -> dict[bytes, _EventAbi]:
    table: dict[bytes, _EventAbi] = {}
    for item in load_artifact()["abi"]:
        if item.get("type") != "event":
            continue
        params = item["inputs"]
        table[event_abi_to_log_topic(item)] = _EventAbi(
            EVENT_TYPES[item["name"]],
            tuple(get_abi_input_types(item)),
            tuple(bool(p["indexed"]) for p in params),
            tuple(str(p.get("internalType", "")).startswith("enum") for p in params),
        )
    return table


def topic_of(cls: type[ChainEvent]) -> bytes:
    """topic0 of an event class."""
    for topic, ev in _events_by_topic().items():
        if ev.cls is cls:
            return topic
    raise KeyError(cls.__name__)


def _bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return bytes(value)


def _hex(value: Any) -> str:
    return value if isinstance(value, str) else "0x" + bytes(value).hex()


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def decode_log(log: Mapping[str, Any]) -> ChainEvent | None:
    """The typed event of one log of the market contract, None for another contract's."""
    topics = [_bytes(t) for t in log["topics"]]
    ev = _events_by_topic().get(topics[0]) if topics else None
    if ev is None:
        return None
    raw = decode_event(ev.types, ev.indexed, topics[1:], _bytes(log["data"]))
    values = [
        Kind(v) if is_kind else to_checksum_address(v) if typ == "address" else v
        for v, typ, is_kind in zip(raw, ev.types, ev.kinds, strict=True)
    ]
    return ev.cls(
        *values,
        block_number=_int(log["blockNumber"]),
        transaction_hash=_hex(log["transactionHash"]),
        log_index=_int(log["logIndex"]),
    )
