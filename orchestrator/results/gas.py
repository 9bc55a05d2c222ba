"""Gas by contract function, read from the chain itself at the end of a run
(every transaction of every block, before the node stops): exact, whoever
sent it, also when an agent died before reporting its own counters.

Two cheap reads instead of every full block: each block's receipts (gas used,
status, `to`), then, for the blocks holding a call to the contract, anvil's
`trace_block`, whose top-level call carries the calldata and so the function
selector. A full transaction makes anvil recover its sender from the signature
(~0.28 ms of node CPU each); a receipt costs ~0.015 ms and a trace ~0.005 ms, and
empty blocks (the clock's kicks) are never traced. `gas_from_full_blocks` is the
old read, kept as the reference the tests and bench/gasread.py compare with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agents.chain.artifact import abi
from agents.common.abi import selector
from agents.common.rpc import JsonRpc

BLOCKS_PER_BATCH = 200


def function_selectors(entries: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """{"0x12345678": "postOffer", ...} for every function of an ABI."""
    out: dict[str, str] = {}
    for entry in entries:
        if entry.get("type") != "function":
            continue
        types = ",".join(_type(p) for p in entry.get("inputs", ()))
        out["0x" + selector(f"{entry['name']}({types})").hex()] = str(entry["name"])
    return out


def _type(param: Mapping[str, Any]) -> str:
    typ = str(param["type"])
    if typ.startswith("tuple"):
        inner = ",".join(_type(c) for c in param.get("components", ()))
        return f"({inner}){typ[5:]}"
    return typ


class GasTally:
    def __init__(self) -> None:
        self.count: dict[str, int] = {}
        self.total: dict[str, int] = {}
        self.failed: dict[str, int] = {}

    def add(self, function: str, gas: int, ok: bool) -> None:
        self.count[function] = self.count.get(function, 0) + 1
        self.total[function] = self.total.get(function, 0) + gas
        if not ok:
            self.failed[function] = self.failed.get(function, 0) + 1

    def as_dict(self) -> dict[str, dict[str, float | int]]:
        return {
            f: {
                "count": n,
                "total": self.total[f],
                "mean": self.total[f] / n,
                "reverted": self.failed.get(f, 0),
            }
            for f, n in sorted(self.count.items())
        }


def gas_by_function(rpc_url: str, contract: str | None = None) -> dict[str, dict[str, float | int]]:
    """{function: {count, total, mean, reverted}} over all transactions on the
    chain (to `contract` when given; contract creation counts as "constructor")."""
    names = function_selectors(abi())
    tally = GasTally()
    target = contract.lower() if contract else None
    rpc = JsonRpc(rpc_url, timeout=60.0)
    try:
        head = int(rpc.call("eth_blockNumber"), 16)
        for first in range(0, head + 1, BLOCKS_PER_BATCH):
            numbers = [hex(n) for n in range(first, min(head, first + BLOCKS_PER_BATCH - 1) + 1)]
            for function, r in _functions(rpc, numbers, target, names):
                tally.add(function, int(r["gasUsed"], 16), int(r.get("status", "0x1"), 16) == 1)
    finally:
        rpc.close()
    return tally.as_dict()


def _functions(
    rpc: JsonRpc, numbers: list[str], target: str | None, names: Mapping[str, str]
) -> list[tuple[str, Mapping[str, Any]]]:
    """(function, receipt) of every counted transaction of the blocks `numbers`:
    their receipts, then the traces of the blocks that hold a counted call."""
    receipts = [
        r
        for block in _batch(rpc, "eth_getBlockReceipts", numbers)
        for r in block or ()
        if _counted(r, target)
    ]
    traced = sorted({str(r["blockNumber"]) for r in receipts if r.get("to")}, key=_int)
    inputs = {
        str(t["transactionHash"]): str(t["action"].get("input") or "")
        for block in _batch(rpc, "trace_block", traced)
        for t in block or ()
        if not t.get("traceAddress")  # the transaction's own call, not an inner one
    }
    return [
        (
            names.get(inputs.get(str(r["transactionHash"]), "")[:10], "unknown")
            if r.get("to")
            else "constructor",
            r,
        )
        for r in receipts
    ]


def _int(hex_number: str) -> int:
    return int(hex_number, 16)


def _counted(receipt: Mapping[str, Any], target: str | None) -> bool:
    """A contract creation, or a call to `target` (any call when None)."""
    to = receipt.get("to")
    return to is None or target is None or str(to).lower() == target


def _batch(rpc: JsonRpc, method: str, numbers: list[str]) -> list[Any]:
    replies = rpc.batch([(method, [n]) for n in numbers])
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def gas_from_full_blocks(
    rpc_url: str, contract: str | None = None
) -> dict[str, dict[str, float | int]]:
    """The reference: the same tally from every full block (sender recovered for
    every transaction by the node) and its receipts. Slow; for tests and bench."""
    names = function_selectors(abi())
    tally = GasTally()
    rpc = JsonRpc(rpc_url, timeout=60.0)
    try:
        head = int(rpc.call("eth_blockNumber"), 16)
        target = contract.lower() if contract else None
        for first in range(0, head + 1, BLOCKS_PER_BATCH):
            numbers = [hex(n) for n in range(first, min(head, first + BLOCKS_PER_BATCH - 1) + 1)]
            blocks = rpc.batch([("eth_getBlockByNumber", [n, True]) for n in numbers])
            receipts = rpc.batch([("eth_getBlockReceipts", [n]) for n in numbers])
            for block, block_receipts in zip(blocks, receipts, strict=True):
                for item in (block, block_receipts):
                    if isinstance(item, Exception):
                        raise item
                by_hash = {r["transactionHash"]: r for r in block_receipts or ()}
                for tx in (block or {}).get("transactions", ()):
                    receipt = by_hash.get(tx["hash"])
                    if receipt is None:
                        continue
                    to = tx.get("to")
                    if to is None:
                        function = "constructor"
                    elif target is not None and to.lower() != target:
                        continue
                    else:
                        function = names.get(str(tx.get("input", ""))[:10], "unknown")
                    ok = int(receipt.get("status", "0x1"), 16) == 1
                    tally.add(function, int(receipt["gasUsed"], 16), ok)
    finally:
        rpc.close()
    return tally.as_dict()
