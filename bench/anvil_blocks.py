"""What one block costs anvil as its state grows; prints JSON.

anvil 1.5.1 rebuilds the whole state trie for every mined block, so an empty block
costs CPU in proportion to the accounts and storage slots on chain. This starts
anvil (the repository's pin, or $ANVIL / --anvil for another version), puts
`--accounts` funded accounts and `--slots` storage slots of one contract on it
(anvil_setBalance / anvil_setStorageAt, no blocks), then times `--blocks` empty
`evm_mine` calls: anvil's CPU seconds (from /proc) and wall seconds per block.

    .venv/bin/python bench/anvil_blocks.py --accounts 10000 --accounts 30000
    .venv/bin/python bench/anvil_blocks.py --accounts 10000 --slots 200000
    .venv/bin/python bench/anvil_blocks.py --anvil /path/to/anvil-1.7.1 --accounts 30000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from agents.chain.node import Anvil
from agents.common.rpc import JsonRpc
from bench.cpu import proc_cpu

CHUNK = 500  # state writes per JSON-RPC batch
CONTRACT = "0x" + "ab" * 20


def fill(rpc: JsonRpc, accounts: int, slots: int) -> None:
    for first in range(0, accounts, CHUNK):
        rpc.batch(
            [
                ("anvil_setBalance", [f"0x{0x1000 + i:040x}", "0x1"])
                for i in range(first, min(accounts, first + CHUNK))
            ]
        )
    rpc.call("anvil_setCode", [CONTRACT, "0x00"])
    for first in range(0, slots, CHUNK):
        rpc.batch(
            [
                ("anvil_setStorageAt", [CONTRACT, f"0x{i:064x}", f"0x{i + 1:064x}"])
                for i in range(first, min(slots, first + CHUNK))
            ]
        )


def measure(binary: str | None, accounts: int, slots: int, blocks: int) -> dict[str, Any]:
    with Anvil(binary=binary) as node:
        assert node.pid is not None
        rpc = JsonRpc(node.url, timeout=600)
        fill(rpc, accounts, slots)
        rpc.call("evm_mine")  # the first block after the writes
        before, started = proc_cpu(node.pid), time.monotonic()
        for _ in range(blocks):
            rpc.call("evm_mine")
        after, wall = proc_cpu(node.pid), time.monotonic() - started
        assert before is not None and after is not None
        version = subprocess.run(
            [node.binary, "--version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()
        return {
            "anvil": version[0] if version else node.binary,
            "accounts": accounts,
            "slots": slots,
            "blocks": blocks,
            "cpu_ms_per_block": round((after[0] - before[0]) / blocks * 1000, 1),
            "wall_ms_per_block": round(wall / blocks * 1000, 1),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anvil", help="anvil binary (default: $ANVIL, else the pin)")
    parser.add_argument("--accounts", type=int, action="append", help="repeatable")
    parser.add_argument("--slots", type=int, default=0)
    parser.add_argument("--blocks", type=int, default=20)
    args = parser.parse_args(argv)
    for accounts in args.accounts or [10_000, 30_000]:
        print(json.dumps(measure(args.anvil, accounts, args.slots, args.blocks)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
