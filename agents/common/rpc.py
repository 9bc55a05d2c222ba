"""A lean Ethereum JSON-RPC client for agents: no web3 import (prosumer hosts
must stay small: web3 alone costs ~60 MB RSS).

- `JsonRpc`: calls and JSON-RPC *batches* over one kept-alive HTTP connection,
  so a host sends a hundred signed transactions in one round trip.
- `Contract`: ABI encoding of calls, decoding of return data and logs
  (eth-abi, through `agents.common.abi`).
- `Signer`: a local key with a locally tracked nonce; signs legacy transactions
  at gas price 0 (the testbed chain runs with base fee 0).
- `send_and_wait`: send raw transactions in one batch, then poll their receipts
  in batches until all are mined.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from eth_typing import ABIEvent, ABIFunction
from eth_utils import (
    event_abi_to_log_topic,
    function_abi_to_4byte_selector,
    get_abi_input_types,
    get_abi_output_types,
)

from agents.common.abi import Key, decode_event
from agents.common.abi import decode as abi_decode
from agents.common.abi import encode as abi_encode
from agents.common.errors import AgentError

# receipt polling backs off from the first to the last delay (the node is shared)
RECEIPT_POLL_SECONDS = (0.005, 0.1)
RECEIPT_TIMEOUT_SECONDS = 60.0
# Transactions per eth_sendRawTransaction batch: anvil validates a batch's items
# concurrently, and a sender's nonces arriving out of order get slow to sort out
# (a batch of ~1,700 from one sender took over 30 s; 100 take milliseconds).
SEND_CHUNK = 100
log = logging.getLogger("agents.rpc")
# Recovering from two anvil behaviours seen under heavy concurrent load:
# - automine can miss transactions that become ready while it mines
#   (foundry-rs/foundry#10122): they sit in the pool until the next transaction
#   arrives. If no new block came for KICK_SECONDS on an automining node, we
#   mine one (`evm_mine`).
# - anvil sometimes accepted transactions and then lost them (neither in the
#   pool nor mined), leaving a nonce gap that blocks every later transaction of
#   the sender. After LOST_CHECK_SECONDS without progress, a transaction the
#   node no longer knows is sent again (same signed bytes: harmless if mined).
KICK_SECONDS = 0.25
LOST_CHECK_SECONDS = 2.0


class RpcError(AgentError):
    """The node answered with an error (message and data kept)."""

    def __init__(self, method: str, error: Mapping[str, Any]) -> None:
        self.method = method
        self.code = error.get("code")
        self.data = error.get("data")
        super().__init__(f"{method}: {error.get('message', error)}")

    @property
    def revert_data(self) -> str | None:
        """The 0x-hex revert payload when the call reverted (nodes put it in `data`,
        as a string or as {"data": ...}), else None."""
        data = self.data.get("data") if isinstance(self.data, dict) else self.data
        return data if isinstance(data, str) and data.startswith("0x") else None


class TransactionFailed(AgentError):
    """A mined transaction reverted."""


class JsonRpc:
    """JSON-RPC over HTTP/1.1 with keep-alive; reconnects once on a broken pipe."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._id = 0
        self._automine: bool | None = None

    def _post(self, body: Any) -> Any:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request("POST", self.path, data, headers)
                resp = self._conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self._conn.close()
                self._conn = None
                if attempt:
                    raise AgentError(f"JSON-RPC {self.url}: {exc}") from exc
                continue
            if resp.status != 200:
                raise AgentError(f"JSON-RPC {self.url}: HTTP {resp.status}: {raw[:200]!r}")
            return json.loads(raw)
        raise AssertionError("unreachable")

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        self._id += 1
        reply = self._post({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        if "error" in reply:
            raise RpcError(method, reply["error"])
        return reply["result"]

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Results in order; an item that failed is an RpcError instance (not raised)."""
        if not calls:
            return []
        base = self._id + 1
        self._id += len(calls)
        body = [
            {"jsonrpc": "2.0", "id": base + i, "method": m, "params": list(p)}
            for i, (m, p) in enumerate(calls)
        ]
        replies = self._post(body)
        if isinstance(replies, dict):  # the whole batch was refused
            raise RpcError("batch", replies.get("error", replies))
        by_id = {r["id"]: r for r in replies}
        out: list[Any] = []
        for i, (method, _) in enumerate(calls):
            r = by_id.get(base + i, {"error": {"message": "no reply in batch"}})
            out.append(RpcError(method, r["error"]) if "error" in r else r["result"])
        return out

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def automine(self) -> bool:
        """True if the node is anvil in automine mode (asked once)."""
        if self._automine is None:
            try:
                self._automine = bool(self.call("anvil_getAutomine"))
            except AgentError:
                self._automine = False
        return self._automine


@dataclass(frozen=True)
class _Fn:
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class _Event:
    name: str
    names: tuple[str, ...]
    types: tuple[str, ...]
    indexed: tuple[bool, ...]


class Contract:
    """Encode calls and decode results/logs of one contract from its ABI (eth-abi, with
    selectors and topics from eth-utils)."""

    def __init__(self, address: str, abi: Iterable[Mapping[str, Any]]) -> None:
        self.address = address
        self.functions: dict[str, _Fn] = {}
        self.events: dict[bytes, _Event] = {}
        self.event_topics: dict[str, bytes] = {}
        for item in abi:
            if item.get("type") == "function":
                fn = cast(ABIFunction, item)
                self.functions[item["name"]] = _Fn(
                    function_abi_to_4byte_selector(fn),
                    tuple(get_abi_input_types(fn)),
                    tuple(get_abi_output_types(fn)),
                )
            elif item.get("type") == "event":
                event = cast(ABIEvent, item)
                topic = event_abi_to_log_topic(event)
                self.events[topic] = _Event(
                    item["name"],
                    tuple(p["name"] for p in item["inputs"]),
                    tuple(get_abi_input_types(event)),
                    tuple(bool(p.get("indexed")) for p in item["inputs"]),
                )
                self.event_topics[item["name"]] = topic

    def encode(self, fn: str, *args: Any) -> bytes:
        f = self.functions[fn]
        return f.selector + abi_encode(f.inputs, args)

    def decode_output(self, fn: str, data: str | bytes) -> tuple[Any, ...]:
        raw = bytes.fromhex(data[2:]) if isinstance(data, str) else data
        return abi_decode(self.functions[fn].outputs, raw)

    def decode_log(self, log: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """(event name, arguments) of a log of this contract, or None."""
        topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
        ev = self.events.get(topics[0]) if topics else None
        if ev is None:
            return None
        data = bytes.fromhex(str(log["data"])[2:])
        values = decode_event(ev.types, ev.indexed, topics[1:], data)
        return ev.name, dict(zip(ev.names, values, strict=True))


class Signer:
    """A private key with a locally tracked nonce (one sender per Signer)."""

    def __init__(self, key: str | bytes, chain_id: int, nonce: int = 0) -> None:
        self.key = Key(key)
        self.address: str = self.key.address
        self.chain_id = chain_id
        self.nonce = nonce

    def sync_nonce(self, rpc: JsonRpc) -> None:
        self.nonce = int(rpc.call("eth_getTransactionCount", [self.address, "pending"]), 16)

    def sign(self, to: str, data: bytes, gas: int) -> bytes:
        raw = self.key.sign_transaction(
            nonce=self.nonce,
            gas_price=0,
            gas=gas,
            to=to,
            value=0,
            data=data,
            chain_id=self.chain_id,
        )
        self.nonce += 1
        return raw


def send_and_wait(
    rpc: JsonRpc,
    raws: Sequence[bytes],
    timeout: float = RECEIPT_TIMEOUT_SECONDS,
) -> list[dict[str, Any]]:
    """Send signed transactions in one batch and return their receipts in order.

    Raises RpcError if the node refuses one (nothing after it is waited for)
    and AgentError on timeout. Reverted receipts are returned (status 0x0):
    callers decide; see `require_success`.
    """
    if not raws:
        return []
    scanned = int(rpc.call("eth_blockNumber"), 16)  # our transactions land after this
    hashes: list[str] = []
    for start in range(0, len(raws), SEND_CHUNK):
        chunk = raws[start : start + SEND_CHUNK]
        sent = rpc.batch([("eth_sendRawTransaction", ["0x" + r.hex()]) for r in chunk])
        for item in sent:
            if isinstance(item, RpcError):
                raise item
        hashes.extend(str(h) for h in sent)
    raw_of = dict(zip(hashes, raws, strict=True))
    receipts: dict[str, dict[str, Any]] = {}
    now = time.monotonic()
    deadline = now + timeout
    kick_at, lost_check_at = now + KICK_SECONDS, now + LOST_CHECK_SECONDS
    delay = RECEIPT_POLL_SECONDS[0]
    while True:
        # new blocks' receipts in one batch: cheaper for the node than polling each hash
        head = int(rpc.call("eth_blockNumber"), 16)
        now = time.monotonic()
        if head > scanned:
            found = len(receipts)
            blocks = rpc.batch(
                [("eth_getBlockReceipts", [hex(n)]) for n in range(scanned + 1, head + 1)]
            )
            for block in blocks:
                if isinstance(block, RpcError):
                    raise block
                for r in block or ():
                    if r["transactionHash"] in raw_of:
                        receipts[r["transactionHash"]] = r
            scanned = head
            kick_at = now + KICK_SECONDS
            if len(receipts) > found:
                lost_check_at = now + LOST_CHECK_SECONDS
                delay = RECEIPT_POLL_SECONDS[0]
        if len(receipts) == len(hashes):
            return [receipts[h] for h in hashes]
        if now > deadline:
            raise AgentError(
                f"{len(hashes) - len(receipts)} transactions not mined in {timeout} s "
                f"(node pool: {_pool_status(rpc)})"
            )
        if now > kick_at:
            if rpc.automine():
                rpc.call("evm_mine")
            kick_at = now + KICK_SECONDS
        if now > lost_check_at:
            _resend_lost(rpc, [h for h in hashes if h not in receipts], raw_of)
            lost_check_at = now + LOST_CHECK_SECONDS
        time.sleep(delay)
        delay = min(delay * 2, RECEIPT_POLL_SECONDS[1])


def _resend_lost(rpc: JsonRpc, pending: list[str], raw_of: Mapping[str, bytes]) -> None:
    known = rpc.batch([("eth_getTransactionByHash", [h]) for h in pending])
    lost = [h for h, tx in zip(pending, known, strict=True) if tx is None]
    if lost:
        log.warning(
            "node lost %d of %d pending transactions; sending them again", len(lost), len(pending)
        )
        rpc.batch([("eth_sendRawTransaction", ["0x" + raw_of[h].hex()]) for h in lost])


def _pool_status(rpc: JsonRpc) -> object:
    try:
        return rpc.call("txpool_status")
    except AgentError as exc:
        return f"unknown ({exc})"


def succeeded(receipt: Mapping[str, Any]) -> bool:
    return int(str(receipt.get("status", "0x0")), 16) == 1


def require_success(receipts: Sequence[Mapping[str, Any]], what: str) -> None:
    failed = [r["transactionHash"] for r in receipts if not succeeded(r)]
    if failed:
        raise TransactionFailed(f"{what}: {len(failed)} transaction(s) reverted, first {failed[0]}")
