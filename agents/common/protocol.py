"""The ZeroMQ wire protocol between agents: message types, encode/decode, dispatch.

Pure: no sockets here (see `agents.common.transport`). A message is one JSON
object per zmq frame with a `"type"` key. Every message type is a frozen
dataclass below; `encode(msg) -> bytes`, `decode(bytes) -> Message`.

Clock PUB (to prosumer hosts, solvers, dso, recorder):
    tick{interval}, solve{interval}, finalized{interval}, done{}
Clock PULL (reports to the clock):
    posted{interval, host, offers}, solved{interval, solver, submitted, objective},
    settled{host}  (a prosumer host deposited everything after the last finalization)
Orchestrator -> clock PULL (fault injection, orchestrator/faults/):
    expect{peer, present}  (stop / resume waiting for a prosumer host's or solver's reports)
    hold{interval}, release{interval}  (lockstep: start `interval` only once released)
DSO REQ/REP:
    bootstrap{} -> bootstrapInfo{contract_address, chain_id, market{...}}
    withdrawAssets{prosumer, anon, feeder, assets[], amount}
        -> assetsAdded{anon, grant} | failedWithdrawal{anon, reason}
    withdrawBatch{requests[withdrawAssets]} -> batchResult{results[...]}
    any malformed request -> error{reason}

`Dispatcher` maps message classes to handlers and turns request bytes into
reply bytes; it is what the DSO's REP loop runs, and is tested without network.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from agents.common.errors import ConfigError, ProtocolError
from agents.common.market import MarketParams
from agents.common.typed import from_plain


@dataclass(frozen=True)
class Message:
    TYPE: ClassVar[str] = ""


# --- clock PUB --------------------------------------------------------------
@dataclass(frozen=True)
class Tick(Message):
    TYPE: ClassVar[str] = "tick"
    interval: int


@dataclass(frozen=True)
class Solve(Message):
    TYPE: ClassVar[str] = "solve"
    interval: int


@dataclass(frozen=True)
class Finalized(Message):
    """Delivery interval `interval` (= clock interval + t_clear) is final."""

    TYPE: ClassVar[str] = "finalized"
    interval: int


@dataclass(frozen=True)
class Done(Message):
    TYPE: ClassVar[str] = "done"


# --- reports to the clock (PUSH -> PULL) ------------------------------------
@dataclass(frozen=True)
class Posted(Message):
    TYPE: ClassVar[str] = "posted"
    interval: int
    host: str
    offers: int


@dataclass(frozen=True)
class Solved(Message):
    TYPE: ClassVar[str] = "solved"
    interval: int
    solver: str
    submitted: bool
    objective: int


@dataclass(frozen=True)
class Settled(Message):
    TYPE: ClassVar[str] = "settled"
    host: str


# --- control: orchestrator -> clock PULL (fault injection) -------------------
@dataclass(frozen=True)
class Expect(Message):
    """Wait for `peer`'s reports (present) or stop waiting for them (a fault
    took the prosumer host or solver down)."""

    TYPE: ClassVar[str] = "expect"
    peer: str
    present: bool


@dataclass(frozen=True)
class Hold(Message):
    """lockstep: do not start clock interval `interval` until `release(interval)`."""

    TYPE: ClassVar[str] = "hold"
    interval: int


@dataclass(frozen=True)
class Release(Message):
    TYPE: ClassVar[str] = "release"
    interval: int


# --- DSO REQ/REP ------------------------------------------------------------
@dataclass(frozen=True)
class Bootstrap(Message):
    TYPE: ClassVar[str] = "bootstrap"


@dataclass(frozen=True)
class BootstrapInfo(Message):
    TYPE: ClassVar[str] = "bootstrapInfo"
    contract_address: str
    chain_id: int
    market: MarketParams


@dataclass(frozen=True)
class Asset:
    """Permission to sell (kind 0) or buy (kind 1) `energy_wh` in start..end."""

    kind: int
    energy_wh: int
    start: int
    end: int


@dataclass(frozen=True)
class WithdrawAssets(Message):
    """Prosumer -> DSO: move assets from my account to anonymous address `anon`."""

    TYPE: ClassVar[str] = "withdrawAssets"
    prosumer: int
    anon: str
    feeder: int
    assets: tuple[Asset, ...]
    amount: int


@dataclass(frozen=True)
class AssetsAdded(Message):
    """The withdrawal was granted: issued on chain (`grant` empty) or signed off chain for
    the address (`grant`: agents.chain.encoding.SignedGrant.hex(), for postSignedOffer)."""

    TYPE: ClassVar[str] = "assetsAdded"
    anon: str
    grant: str = ""


@dataclass(frozen=True)
class FailedWithdrawal(Message):
    TYPE: ClassVar[str] = "failedWithdrawal"
    anon: str
    reason: str


@dataclass(frozen=True)
class WithdrawBatch(Message):
    """Several withdrawals in one round trip; answered in order by a batchResult."""

    TYPE: ClassVar[str] = "withdrawBatch"
    requests: tuple[WithdrawAssets, ...]


@dataclass(frozen=True)
class BatchResult(Message):
    TYPE: ClassVar[str] = "batchResult"
    results: tuple[AssetsAdded | FailedWithdrawal, ...]


@dataclass(frozen=True)
class ErrorReply(Message):
    TYPE: ClassVar[str] = "error"
    reason: str


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Tick,
        Solve,
        Finalized,
        Done,
        Posted,
        Solved,
        Settled,
        Expect,
        Hold,
        Release,
        Bootstrap,
        BootstrapInfo,
        WithdrawAssets,
        AssetsAdded,
        FailedWithdrawal,
        WithdrawBatch,
        BatchResult,
        ErrorReply,
    )
}


def to_dict(msg: Message) -> dict[str, Any]:
    """The JSON object of a message (nested dataclasses become objects)."""
    body: dict[str, Any] = {"type": msg.TYPE}
    for f in dataclasses.fields(msg):
        body[f.name] = _plain(getattr(msg, f.name))
    return body


def _plain(value: Any) -> Any:
    if isinstance(value, Message):
        return to_dict(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def encode(msg: Message) -> bytes:
    return json.dumps(to_dict(msg), separators=(",", ":")).encode()


def decode(data: bytes | str) -> Message:
    """Parse one frame; raise ProtocolError on bad JSON, unknown type or bad fields."""
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {exc}") from exc
    return from_dict(body)


def from_dict(body: Any) -> Message:
    if not isinstance(body, dict):
        raise ProtocolError("message must be a JSON object")
    name = body.get("type")
    cls = MESSAGE_TYPES.get(name) if isinstance(name, str) else None
    if cls is None or not isinstance(name, str):
        raise ProtocolError(f"unknown message type {name!r}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in body:
            raise ProtocolError(f"{name}: missing field {f.name!r}")
        kwargs[f.name] = _field(name, f.name, body[f.name])
    return cls(**kwargs)


def _field(msg_type: str, name: str, value: Any) -> Any:
    where = f"{msg_type}.{name}"
    if name == "assets":
        return tuple(_asset(a, where) for a in _list(value, where))
    if name == "requests":
        reqs = tuple(from_dict(r) for r in _list(value, where))
        if not all(isinstance(r, WithdrawAssets) for r in reqs):
            raise ProtocolError(f"{where}: every request must be withdrawAssets")
        return reqs
    if name == "results":
        res = tuple(from_dict(r) for r in _list(value, where))
        if not all(isinstance(r, AssetsAdded | FailedWithdrawal) for r in res):
            raise ProtocolError(f"{where}: results must be assetsAdded or failedWithdrawal")
        return res
    if name == "market":
        try:
            return from_plain(MarketParams, value, where)
        except ConfigError as exc:
            raise ProtocolError(str(exc)) from exc
    if name in ("submitted", "present"):
        if not isinstance(value, bool):
            raise ProtocolError(f"{where}: expected bool")
        return value
    if name in _STR_FIELDS:
        if not isinstance(value, str):
            raise ProtocolError(f"{where}: expected string")
        return value
    return _int(value, where)


_STR_FIELDS = frozenset({"host", "solver", "anon", "reason", "contract_address", "peer", "grant"})


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProtocolError(f"{where}: expected list")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{where}: expected integer")
    return value


def _asset(value: Any, where: str) -> Asset:
    if not isinstance(value, dict):
        raise ProtocolError(f"{where}: expected object")
    try:
        return Asset(
            **{k: _int(value[k], f"{where}.{k}") for k in ("kind", "energy_wh", "start", "end")}
        )
    except KeyError as exc:
        raise ProtocolError(f"{where}: missing {exc}") from exc


M = TypeVar("M", bound=Message)
Handler = Callable[[Any], Message | None]


class Dispatcher:
    """Routes decoded messages to handlers by class. No I/O.

    >>> d = Dispatcher(); d.on(Bootstrap, lambda m: ErrorReply("closed"))
    >>> d.handle_bytes(b'{"type":"bootstrap"}')
    b'{"type":"error","reason":"closed"}'
    """

    def __init__(self) -> None:
        self._handlers: dict[type[Message], Handler] = {}

    def on(self, cls: type[M], handler: Callable[[M], Message | None]) -> None:
        self._handlers[cls] = handler

    def dispatch(self, msg: Message) -> Message | None:
        handler = self._handlers.get(type(msg))
        if handler is None:
            return ErrorReply(f"unexpected message type {msg.TYPE!r}")
        return handler(msg)

    def handle_bytes(self, data: bytes) -> bytes | None:
        """Decode, dispatch, encode. Malformed input gets an `error` reply."""
        try:
            msg = decode(data)
        except ProtocolError as exc:
            return encode(ErrorReply(str(exc)))
        reply = self.dispatch(msg)
        return None if reply is None else encode(reply)
