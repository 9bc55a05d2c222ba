"""Gas by contract function, counted from the chain: each transaction's receipt
(gas used, status, `to`) and, for calls, the function selector from the calldata
of its top-level call in anvil's `trace_block` (a full transaction would make the
node recover its sender from the signature: ~0.28 ms of node CPU each, against
~0.005 ms for a trace; a receipt costs ~0.015 ms).

The recorder already reads every receipt while the run goes (follower.py): it adds
them up as it reads (`GasTally`) and leaves `gas.json` in its out_dir, so the
orchestrator's end-of-run read (orchestrator.results.gas) only reads the blocks the
recorder did not.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agents.common.abi import selector
from agents.common.rpc import JsonRpc, RpcError

GAS_FILE = "gas.json"
TRACE_CHUNK = 200  # blocks per trace_block batch (a batch of ~2,000 items is dropped)


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
    """Count, total gas and reverted transactions per function."""

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

    @classmethod
    def from_dict(cls, doc: Mapping[str, Mapping[str, Any]]) -> GasTally:
        tally = cls()
        for f, g in doc.items():
            tally.count[f], tally.total[f] = int(g["count"]), int(g["total"])
            if int(g.get("reverted", 0)):
                tally.failed[f] = int(g["reverted"])
        return tally


class GasCounter:
    """Adds the counted transactions of blocks' receipts to a tally: creations, and
    calls to `contract` (every call when None)."""

    def __init__(self, rpc: JsonRpc, names: Mapping[str, str], contract: str | None) -> None:
        self.rpc = rpc
        self.names = names
        self.target = contract.lower() if contract else None
        self.tally = GasTally()

    def add_blocks(self, blocks: Iterable[Sequence[Mapping[str, Any]] | None]) -> None:
        """`blocks`: each block's receipts (eth_getBlockReceipts), in any order."""
        self.add(self.transactions(blocks))

    def add(self, transactions: Iterable[tuple[str, int, bool]]) -> None:
        for function, gas, ok in transactions:
            self.tally.add(function, gas, ok)

    def transactions(
        self, blocks: Iterable[Sequence[Mapping[str, Any]] | None]
    ) -> list[tuple[str, int, bool]]:
        """(function, gas used, succeeded) of each counted transaction of `blocks`
        (their receipts); the tally is left as it is (`add` adds them)."""
        receipts = [r for block in blocks for r in block or () if self._counted(r)]
        calls = sorted({int(str(r["blockNumber"]), 16) for r in receipts if r.get("to")})
        inputs: dict[str, str] = {}
        for i in range(0, len(calls), TRACE_CHUNK):
            for block in _batch(self.rpc, "trace_block", calls[i : i + TRACE_CHUNK]):
                for t in block or ():
                    if not t.get("traceAddress"):  # the transaction's own call
                        inputs[str(t["transactionHash"])] = str(t["action"].get("input") or "")
        out = []
        for r in receipts:
            if r.get("to"):
                function = self.names.get(inputs.get(str(r["transactionHash"]), "")[:10], "unknown")
            else:
                function = "constructor"
            out.append((function, int(r["gasUsed"], 16), int(r.get("status", "0x1"), 16) == 1))
        return out

    def _counted(self, receipt: Mapping[str, Any]) -> bool:
        to = receipt.get("to")
        return to is None or self.target is None or str(to).lower() == self.target


def _batch(rpc: JsonRpc, method: str, blocks: Sequence[int]) -> list[Any]:
    replies = rpc.batch([(method, [hex(n)]) for n in blocks])
    for reply in replies:
        if isinstance(reply, RpcError):
            raise reply
    return replies


def write_gas(path: Path, contract: str, blocks_read: int, tally: GasTally) -> None:
    """gas.json: the tally of blocks 0 .. blocks_read - 1 (calls to `contract`)."""
    doc = {"contract": contract.lower(), "blocks_read": blocks_read, "gas": tally.as_dict()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def read_gas(path: Path, contract: str) -> tuple[int, GasTally] | None:
    """(blocks read, their tally) from a gas.json of `contract`; None when there
    is none (a recorder killed before it wrote one) or it is of another contract."""
    try:
        doc = json.loads(path.read_text())
        if str(doc["contract"]) != contract.lower():
            return None
        return int(doc["blocks_read"]), GasTally.from_dict(doc["gas"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
