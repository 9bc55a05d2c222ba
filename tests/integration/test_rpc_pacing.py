"""agents.common.rpc.send_and_wait against a real anvil: thousands of transactions
from one sender (the DSO's asset burst) and from many fresh senders at once (the
prosumer hosts' offers) are paced to the node: at most `in_flight` unmined at a
time, every receipt returned in order."""

from __future__ import annotations

import threading

from agents.chain.node import Anvil
from agents.common.rpc import JsonRpc, Signer, send_and_wait, succeeded

TO = "0x" + "22" * 20


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
