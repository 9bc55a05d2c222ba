"""agents.common.rpc.send_and_wait against a real anvil: thousands of transactions
from one sender (the DSO's asset burst) and from many fresh senders at once (the
prosumer hosts' offers) are paced to the node: at most `in_flight` unmined at a
time, every receipt returned in order."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from agents.chain.node import Anvil
from agents.common.errors import AgentError
from agents.common.rpc import JsonRpc, Signer, send_and_wait, succeeded
from tests.conftest import require_tool

TO = "0x" + "22" * 20


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    require_tool("anvil")
    node = Anvil().start()
    try:
        yield node
    finally:
        node.stop()


def test_one_sender_burst_is_paced_and_receipts_come_in_order(anvil: Anvil) -> None:
    rpc = JsonRpc(anvil.url)
    signer = Signer("0x" + "07" * 32, 31337)
    raws = [signer.sign(TO, b"", 21_000) for _ in range(1_500)]
    receipts = send_and_wait(rpc, raws, in_flight=100)
    assert len(receipts) == 1_500 and all(succeeded(r) for r in receipts)
    nonces = [
        int(rpc.call("eth_getTransactionByHash", [r["transactionHash"]])["nonce"], 16)
        for r in receipts[::150]
    ]
    assert nonces == list(range(0, 1_500, 150))
    assert int(rpc.call("eth_getTransactionCount", [signer.address, "latest"]), 16) == 1_500
    assert rpc.call("txpool_status") == {"pending": "0x0", "queued": "0x0"}


def test_a_deep_sender_and_many_fresh_senders_at_once_all_get_mined(anvil: Anvil) -> None:
    """The load that stalled anvil at 10x (ready transactions left in the pool while
    other senders' blocks came): every client's receipts arrive."""
    results: dict[str, int] = {}
    errors: list[BaseException] = []

    def deep() -> None:
        signer = Signer("0x" + "08" * 32, 31337)
        raws = [signer.sign(TO, b"", 21_000) for _ in range(1_200)]
        results["deep"] = len(send_and_wait(JsonRpc(anvil.url), raws, in_flight=150))

    def fresh(i: int) -> None:
        raws = [
            Signer(bytes([i + 1]) + k.to_bytes(31, "big"), 31337).sign(TO, b"", 21_000)
            for k in range(1, 121)
        ]
        results[f"host{i}"] = len(send_and_wait(JsonRpc(anvil.url), raws))

    def guard(target: object, *args: int) -> None:
        try:
            target(*args)  # type: ignore[operator]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=guard, args=(deep,))]
    threads += [threading.Thread(target=guard, args=(fresh, i)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert results == {"deep": 1_200, **{f"host{i}": 120 for i in range(8)}}


class CountingRpc(JsonRpc):
    """A real client that counts the calls made through it, by method."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.calls: dict[str, int] = {}

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        self.calls[method] = self.calls.get(method, 0) + 1
        return super().call(method, params)


def _gapped(rpc: JsonRpc) -> list[bytes]:
    """A transaction that stays in the pool: its sender's nonce 0 never comes."""
    signer = Signer("0x" + "09" * 32, 31337, nonce=1)
    return [signer.sign(TO, b"", 21_000)]


def test_a_stalled_node_is_kicked_with_empty_blocks(anvil: Anvil) -> None:
    rpc = CountingRpc(anvil.url)
    with pytest.raises(AgentError, match="not mined"):
        send_and_wait(rpc, _gapped(rpc), timeout=1.5)
    assert rpc.calls.get("evm_mine", 0) >= 2


def test_no_kick_while_the_node_mines_other_blocks(anvil: Anvil) -> None:
    """Empty blocks cost the node time that grows with its state: while other
    senders' blocks come, a waiting sender must not add its own."""
    stop = threading.Event()

    def others() -> None:
        miner = JsonRpc(anvil.url)
        signer = Signer("0x" + "0a" * 32, 31337)
        while not stop.wait(0.05):
            send_and_wait(miner, [signer.sign(TO, b"", 21_000)])

    thread = threading.Thread(target=others)
    thread.start()
    try:
        rpc = CountingRpc(anvil.url)
        with pytest.raises(AgentError, match="not mined"):
            send_and_wait(rpc, _gapped(rpc), timeout=3.0)
    finally:
        stop.set()
        thread.join()
    # a kick every KICK_SECONDS (12 in 3 s) before; a busy machine may stall the
    # other sender for a moment
    assert rpc.calls.get("evm_mine", 0) <= 2
