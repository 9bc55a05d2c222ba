"""agents.miner against a real anvil: the lockstep clock's on-demand mining. Blocks
come only when transactions wait, hold everything that waited, keep the time the
clock set, and the node automines again when the miner stops."""

from __future__ import annotations

import time

import pytest

from agents import miner
from agents.chain.node import Anvil
from agents.common.rpc import JsonRpc, Signer, send_and_wait, succeeded
from tests.conftest import require_tool

TO = "0x" + "33" * 20
DEADLINE_SECONDS = 60.0


def _head(rpc: JsonRpc) -> int:
    return int(rpc.call("eth_blockNumber"), 16)


def _timestamp(rpc: JsonRpc, block: int) -> int:
    return int(rpc.call("eth_getBlockByNumber", [hex(block), False])["timestamp"], 16)


def test_one_block_holds_everything_that_waited(anvil: Anvil) -> None:
    """300 postOffer-sized gas reservations (120M gas: four blocks of anvil's default
    30M) go into one block."""
    rpc = JsonRpc(anvil.url)
    m = miner.Miner(anvil.url)
    m.configure()
    assert rpc.call("anvil_getAutomine") is False
    head = _head(rpc)
    assert m.mine_ready() == 0 and _head(rpc) == head  # nothing waits: no block
    signers = [Signer(bytes([9]) + k.to_bytes(31, "big"), 31337) for k in range(1, 301)]
    raws = ["0x" + s.sign(TO, b"", 400_000).hex() for s in signers]
    for first in range(0, len(raws), 100):
        rpc.batch([("eth_sendRawTransaction", [r]) for r in raws[first : first + 100]])
    deadline = time.monotonic() + DEADLINE_SECONDS
    while int(rpc.call("txpool_status")["pending"], 16) < 300:
        assert time.monotonic() < deadline, rpc.call("txpool_status")
        time.sleep(0.05)
    assert m.mine_ready() == 300
    block = rpc.call("eth_getBlockByNumber", ["latest", False])
    assert int(block["number"], 16) == head + 1 and len(block["transactions"]) == 300
    m.release()
    assert rpc.call("anvil_getAutomine") is True


def test_mining_thread_mines_no_empty_block_and_gives_automine_back(anvil: Anvil) -> None:
    rpc = JsonRpc(anvil.url)
    started = miner.start_if_automining(anvil.url)
    assert started is not None
    try:
        head = _head(rpc)
        signers = [Signer(bytes([8]) + k.to_bytes(31, "big"), 31337) for k in range(1, 301)]
        receipts = send_and_wait(rpc, [s.sign(TO, b"", 400_000) for s in signers])
        assert all(succeeded(r) for r in receipts)
        blocks = {int(r["blockNumber"], 16) for r in receipts}
        assert _head(rpc) - head == len(blocks)  # every block holds some of ours
    finally:
        started.stop()
    assert rpc.call("anvil_getAutomine") is True
    (receipt,) = send_and_wait(rpc, [Signer("0x" + "0a" * 32, 31337).sign(TO, b"", 21_000)])
    assert succeeded(receipt)


def test_chain_time_moves_only_when_the_clock_sets_it(anvil: Anvil) -> None:
    rpc = JsonRpc(anvil.url)
    started = miner.Miner(anvil.url).start()
    signer = Signer("0x" + "0b" * 32, 31337)
    try:
        (first,) = send_and_wait(rpc, [signer.sign(TO, b"", 21_000)])
        frozen = _timestamp(rpc, int(first["blockNumber"], 16))
        deadline = time.monotonic() + DEADLINE_SECONDS
        while int(time.time()) <= frozen + 1 and time.monotonic() < deadline:
            time.sleep(0.1)  # a wall-clock second passes
        (second,) = send_and_wait(rpc, [signer.sign(TO, b"", 21_000)])
        assert _timestamp(rpc, int(second["blockNumber"], 16)) == frozen
        rpc.call("evm_setNextBlockTimestamp", [frozen + 3600])  # the clock's next interval
        (third,) = send_and_wait(rpc, [signer.sign(TO, b"", 21_000)])
        (fourth,) = send_and_wait(rpc, [signer.sign(TO, b"", 21_000)])
        assert _timestamp(rpc, int(third["blockNumber"], 16)) == frozen + 3600
        assert _timestamp(rpc, int(fourth["blockNumber"], 16)) == frozen + 3600
    finally:
        started.stop()


def test_an_interval_mining_node_is_left_alone() -> None:
    require_tool("anvil")
    with Anvil(block_time=1) as node:
        assert miner.start_if_automining(node.url) is None
        assert JsonRpc(node.url).call("anvil_getAutomine") is False


def test_the_automine_mode_is_kept_when_asked(
    anvil: Anvil, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(miner.MODE_ENV, "automine")
    assert miner.start_if_automining(anvil.url) is None
    assert JsonRpc(anvil.url).call("anvil_getAutomine") is True
