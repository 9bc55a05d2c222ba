"""A lean Ethereum JSON-RPC client for agents: no web3 import (prosumer hosts
must stay small: web3 alone costs ~60 MB RSS).

- `JsonRpc`: calls and JSON-RPC *batches* over one kept-alive HTTP connection,
  so a host sends a hundred signed transactions in one round trip.
- `Contract`: ABI encoding of calls, decoding of return data and logs
  (`agents.common.abi`).
- `Signer`: a local key with a locally tracked nonce; signs legacy transactions
  at gas price 0 (the testbed chain runs with base fee 0).
- `send_and_wait`: send raw transactions in bounded batches, at most
  MAX_IN_FLIGHT unmined at a time, polling receipts in batches until all are mined.

The codec and signing (`agents.common.abi`: coincurve and pycryptodome's Keccak, no
eth-abi, eth-utils or eth-keys for what a prosumer host does) are imported when first
used, not with this module: a host gets ready (metrics, chain reachable, DSO bootstrap)
without them and loads them at its first tick (bench/hoststart.py measures both).
"""

from __future__ import annotations

import http.client
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agents.common.errors import AgentError

if TYPE_CHECKING:
    from agents.common.abi import Key

# receipt polling backs off from the first to the last delay (the node is shared)
RECEIPT_POLL_SECONDS = (0.01, 0.1)
# send_and_wait gives up when no receipt came for this long (progress, not total:
# thousands of transactions may take minutes, paced to the node)
RECEIPT_TIMEOUT_SECONDS = 60.0
# Transactions per eth_sendRawTransaction batch: anvil validates a batch's items
# concurrently, and a sender's nonces arriving out of order get slow to sort out
# (a batch of ~1,700 from one sender took over 30 s; 100 take milliseconds).
SEND_CHUNK = 100
# Sent but not yet mined, per send_and_wait call. Thousands queued from one sender
# at once (the DSO's assets at 10x the paper) made anvil mine ~60 tx/s and lose
# and re-find them in its pool; a bounded window keeps it near its batch rate.
MAX_IN_FLIGHT = 300
# Items per read batch (block receipts, transaction lookups): a JSON-RPC batch of
# ~2,000 items drops the connection (shared/notes/anvil-throughput.md).
QUERY_CHUNK = 200
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
        """True if the node is anvil in automine mode now (asked every time: a
        lockstep clock turns it off and mines on demand, agents/miner.py); a node
        that does not know the call (not anvil) is asked only once."""
        if self._automine is False:
            return False
        try:
            return bool(self.call("anvil_getAutomine"))
        except RpcError:
            self._automine = False
        except AgentError:
            pass
        return False


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


def _canonical_type(param: Mapping[str, Any]) -> str:
    """A parameter's type in signatures and the codec: a tuple as "(t1,t2)" (and its
    array suffix), as eth-utils' get_abi_input_types gives it."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


class Contract:
    """Encode calls and decode results/logs of one contract from its ABI (selectors and
    topics: Keccak-256 of the canonical signatures). The tables are built at first use:
    a prosumer host connects (and gets ready) before it encodes anything."""

    def __init__(self, address: str, abi: Iterable[Mapping[str, Any]]) -> None:
        self.address = address
        self.abi = list(abi)

    @cached_property
    def functions(self) -> dict[str, _Fn]:
        from agents.common.abi import selector

        out = {}
        for item in self.abi:
            if item.get("type") == "function":
                inputs = tuple(_canonical_type(p) for p in item["inputs"])
                out[item["name"]] = _Fn(
                    selector(f"{item['name']}({','.join(inputs)})"),
                    inputs,
                    tuple(_canonical_type(p) for p in item.get("outputs", ())),
                )
        return out

    @cached_property
    def events(self) -> dict[bytes, _Event]:
        """Events by topic 0."""
        from agents.common.abi import keccak256

        out = {}
        for item in self.abi:
            if item.get("type") == "event":
                types = tuple(_canonical_type(p) for p in item["inputs"])
                out[keccak256(f"{item['name']}({','.join(types)})".encode())] = _Event(
                    item["name"],
                    tuple(p["name"] for p in item["inputs"]),
                    types,
                    tuple(bool(p.get("indexed")) for p in item["inputs"]),
                )
        return out

    @cached_property
    def event_topics(self) -> dict[str, bytes]:
        """Topic 0 by event name."""
        return {ev.name: topic for topic, ev in self.events.items()}

    def encode(self, fn: str, *args: Any) -> bytes:
        from agents.common.abi import encode as abi_encode

        f = self.functions[fn]
        return f.selector + abi_encode(f.inputs, args)

    def decode_output(self, fn: str, data: str | bytes) -> tuple[Any, ...]:
        from agents.common.abi import decode as abi_decode

        raw = bytes.fromhex(data[2:]) if isinstance(data, str) else data
        return abi_decode(self.functions[fn].outputs, raw)

    def decode_log(self, log: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """(event name, arguments) of a log of this contract, or None."""
        topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
        ev = self.events.get(topics[0]) if topics else None
        if ev is None:
            return None
        from agents.common.abi import decode_event

        data = bytes.fromhex(str(log["data"])[2:])
        values = decode_event(ev.types, ev.indexed, topics[1:], data)
        return ev.name, dict(zip(ev.names, values, strict=True))


class Signer:
    """A private key with a locally tracked nonce (one sender per Signer)."""

    def __init__(self, key: str | bytes, chain_id: int, nonce: int = 0) -> None:
        from agents.common.abi import Key

        self.key: Key = Key(key)
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
    in_flight: int = MAX_IN_FLIGHT,
) -> list[dict[str, Any]]:
    """Send signed transactions, paced to what the node mines, and return their
    receipts in order.

    At most `in_flight` of them are sent and not yet mined at any time, in
    JSON-RPC batches of at most SEND_CHUNK: the next batch goes out as receipts
    come back. Raises RpcError if the node refuses one (nothing after it is sent
    or waited for) and AgentError when no receipt came for `timeout` seconds.
    Reverted receipts are returned (status 0x0): callers decide; see
    `require_success`.
    """
    if not raws:
        return []
    from agents.common.abi import keccak256

    waiter = _Receipts(rpc, timeout)
    hashes: list[str] = []
    while True:
        room = in_flight - (len(hashes) - len(waiter.receipts))
        while len(hashes) < len(raws) and room > 0:
            chunk = raws[len(hashes) : len(hashes) + min(SEND_CHUNK, room)]
            sent = rpc.batch([("eth_sendRawTransaction", ["0x" + r.hex()]) for r in chunk])
            for item, raw in zip(sent, chunk, strict=True):
                if isinstance(item, RpcError) and not _already_known(item):
                    raise item
                h = "0x" + keccak256(raw).hex()
                waiter.expect(h, raw)
                hashes.append(h)
            room -= len(chunk)
        if len(waiter.receipts) == len(raws):
            return [waiter.receipts[h] for h in hashes]
        waiter.poll()


class _Receipts:
    """Receipts of the transactions sent so far: when the node has new blocks, the
    receipts of our unmined hashes in one batch (at most MAX_IN_FLIGHT). Not every
    new block's receipts: with dozens of hosts sending, each would read everyone's
    receipts (at 10x the paper, 30 hosts read 16,000 receipts each per tick).
    With anvil's stall and lost-transaction recovery (see KICK_SECONDS)."""

    def __init__(self, rpc: JsonRpc, timeout: float) -> None:
        self.rpc = rpc
        self.timeout = timeout
        self.scanned = int(rpc.call("eth_blockNumber"), 16)  # ours land after this
        self.raw_of: dict[str, bytes] = {}
        self.receipts: dict[str, dict[str, Any]] = {}
        now = time.monotonic()
        self.deadline = now + timeout
        self.kick_at, self.lost_check_at = now + KICK_SECONDS, now + LOST_CHECK_SECONDS
        self.delay = RECEIPT_POLL_SECONDS[0]

    def expect(self, tx_hash: str, raw: bytes) -> None:
        self.raw_of[tx_hash] = raw
        self.deadline = max(self.deadline, time.monotonic() + self.timeout)

    def poll(self) -> None:
        """Collect receipts from new blocks; if none came, recover and back off."""
        head = int(self.rpc.call("eth_blockNumber"), 16)
        now = time.monotonic()
        found = len(self.receipts)
        if head > self.scanned:
            pending = [h for h in self.raw_of if h not in self.receipts]
            for first in range(0, len(pending), QUERY_CHUNK):
                part = pending[first : first + QUERY_CHUNK]
                got = self.rpc.batch([("eth_getTransactionReceipt", [h]) for h in part])
                for h, r in zip(part, got, strict=True):
                    if isinstance(r, RpcError):
                        raise r
                    if r is not None:
                        self.receipts[h] = r
            self.scanned = head
        if len(self.receipts) > found:
            self.kick_at = now + KICK_SECONDS
            self.deadline = now + self.timeout
            self.lost_check_at = now + LOST_CHECK_SECONDS
            self.delay = RECEIPT_POLL_SECONDS[0]
            return
        pending = [h for h in self.raw_of if h not in self.receipts]
        if now > self.deadline:
            raise AgentError(
                f"{len(pending)} transactions not mined: no receipt for {self.timeout} s "
                f"(node pool: {_pool_status(self.rpc)})"
            )
        if now > self.kick_at:
            if self.rpc.automine():
                self.rpc.call("evm_mine")
            self.kick_at = now + KICK_SECONDS
        if now > self.lost_check_at:
            _resend_lost(self.rpc, pending, self.raw_of)
            self.lost_check_at = now + LOST_CHECK_SECONDS
        time.sleep(self.delay)
        self.delay = min(self.delay * 2, RECEIPT_POLL_SECONDS[1])


def _resend_lost(rpc: JsonRpc, pending: list[str], raw_of: Mapping[str, bytes]) -> None:
    lost: list[str] = []
    for first in range(0, len(pending), QUERY_CHUNK):
        part = pending[first : first + QUERY_CHUNK]
        known = rpc.batch([("eth_getTransactionByHash", [h]) for h in part])
        lost.extend(h for h, tx in zip(part, known, strict=True) if tx is None)
    if lost:
        log.warning(
            "node lost %d of %d pending transactions; sending them again", len(lost), len(pending)
        )
        for first in range(0, len(lost), SEND_CHUNK):
            part = lost[first : first + SEND_CHUNK]
            rpc.batch([("eth_sendRawTransaction", ["0x" + raw_of[h].hex()]) for h in part])


def _already_known(error: RpcError) -> bool:
    """The node has this transaction already (a batch sent again after a dropped
    connection: JsonRpc retries once)."""
    return "already" in str(error).lower()


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
