"""Gas by contract function, read from the chain itself at the end of a run
(every transaction of every block, before the node stops): exact, whoever
sent it, also when an agent died before reporting its own counters.

The reading is agents.recorder.gas: each block's receipts, and anvil's traces of
the blocks holding a contract call (for the function selectors), never full
blocks (the node recovers every transaction's sender to serve one). The
recorder counts the blocks it reads during the run into its gas.json;
`gas_of_run` adds the blocks after those, or reads every block when the
recorder left none. `gas_from_full_blocks` is the read before all this, kept as
the reference the tests and bench/gasread.py compare with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.chain.artifact import abi
from agents.common.rpc import JsonRpc, RpcError
from agents.recorder.gas import GasCounter, GasTally, function_selectors, read_gas

__all__ = ["GasTally", "function_selectors", "gas_by_function", "gas_of_run"]

BLOCKS_PER_BATCH = 200


def gas_of_run(rpc_url: str, contract: str, recorded: Path) -> dict[str, dict[str, float | int]]:
    """The run's gas: the recorder's tally (`recorded`, its gas.json) and the
    blocks after the last it read; every block when it left no tally."""
    found = read_gas(recorded, contract)
    first, tally = found if found is not None else (0, None)
    return gas_by_function(rpc_url, contract, first_block=first, tally=tally)


def gas_by_function(
    rpc_url: str,
    contract: str | None = None,
    *,
    first_block: int = 0,
    tally: GasTally | None = None,
) -> dict[str, dict[str, float | int]]:
    """{function: {count, total, mean, reverted}} over the transactions of blocks
    `first_block`.. (to `contract` when given; contract creation counts as
    "constructor"), added to `tally` (of the blocks before) when given."""
    rpc = JsonRpc(rpc_url, timeout=60.0)
    counter = GasCounter(rpc, function_selectors(abi()), contract)
    counter.tally = tally if tally is not None else counter.tally
    try:
        head = int(rpc.call("eth_blockNumber"), 16)
        for first in range(first_block, head + 1, BLOCKS_PER_BATCH):
            numbers = [hex(n) for n in range(first, min(head, first + BLOCKS_PER_BATCH - 1) + 1)]
            receipts = rpc.batch([("eth_getBlockReceipts", [n]) for n in numbers])
            for reply in receipts:
                if isinstance(reply, RpcError):
                    raise reply
            counter.add_blocks(receipts)
    finally:
        rpc.close()
    return counter.tally.as_dict()


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
