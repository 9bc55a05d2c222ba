"""The lockstep clock's miner: one block for whatever the pool holds, only when it
holds something.

Automine mines a block per transaction (a JSON-RPC batch of 100 transactions often
becomes dozens of blocks) and the senders kick empty `evm_mine` blocks whenever
their receipts stall (anvil's automine misses transactions that become ready while
it mines, foundry-rs/foundry#10122). anvil 1.5.1 rebuilds the whole state trie for
every block, at a cost that grows with the contract's storage (bench/anvil_blocks.py:
16 ms per empty block at 10,000 accounts, 287 ms with 200,000 storage slots more), so
at 10x the paper the chain spent most of its CPU on blocks, not on transactions.

In a lockstep run chain time is virtual, so blocks need not follow transactions one
by one. `Miner` turns automine off and mines itself: it polls `txpool_status` and,
while transactions are ready, calls `evm_mine`, which takes every ready transaction
up to the block gas limit. A block is never empty, and it grows by itself when
blocks get expensive (what arrives while one is mined goes into the next).
`stop()` turns automine back on, so what is sent after the clock is done (the
prosumers' last deposits, the end-of-run reads) still gets mined.

It also freezes chain time within an interval (`anvil_setBlockTimestampInterval 0`:
every block has its parent's timestamp until the clock sets the next one), so the
contract's deadlines are the interval boundaries the clock sets, however long an
interval takes on a loaded machine.
"""

from __future__ import annotations

import logging
import os
import threading

from agents.common.errors import AgentError
from agents.common.rpc import JsonRpc

log = logging.getLogger("agents.miner")

# The pool is polled every IDLE_POLL_SECONDS[0] right after a block, backing off to
# the last value while it stays empty: the first delay is what a sender waits at
# most for its transactions to be mined in a busy phase.
IDLE_POLL_SECONDS = (0.005, 0.05)
# In lockstep the block gas limit only packs blocks: transactions reserve their whole
# gas limit (postOffer 400,000), so anvil's 30,000,000 took 75 offers a block.
BLOCK_GAS_LIMIT = 2_000_000_000
# Set to "automine" to leave the node automining in lockstep (bench/scale.py --mining,
# to measure one against the other).
MODE_ENV = "TESTBED_LOCKSTEP_MINING"
# After this many failed polls in a row (node paused or gone) the miner logs and
# keeps trying at the slowest poll; the clock's own timeouts decide about the run.
ERRORS_LOGGED_EVERY = 20


class Miner:
    """Mine the pool's ready transactions on `url` from a thread of its own (its own
    HTTP connection: http.client is not thread-safe)."""

    def __init__(self, url: str) -> None:
        self.rpc = JsonRpc(url)
        self.blocks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def configure(self) -> None:
        """Automine off, chain time frozen between the clock's timestamps, large blocks."""
        self.rpc.call("evm_setAutomine", [False])
        self.rpc.call("anvil_setBlockTimestampInterval", [0])
        self.rpc.call("evm_setBlockGasLimit", [hex(BLOCK_GAS_LIMIT)])

    def release(self) -> None:
        """The node's own time and automine back."""
        self.rpc.call("anvil_removeBlockTimestampInterval")
        self.rpc.call("evm_setAutomine", [True])

    def start(self) -> Miner:
        """Configure the node, then mine from a thread."""
        self.configure()
        self._thread = threading.Thread(target=self._run, name="miner", daemon=True)
        self._thread.start()
        log.info("mining on demand (automine off, chain time moved by the clock only)")
        return self

    def stop(self) -> None:
        """Stop mining and give the node back its automine (idempotent)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        try:
            self.release()
        except AgentError as exc:
            log.warning("giving the node its automine back failed: %s", exc)
        finally:
            self.rpc.close()
        log.info("mined %d blocks", self.blocks)

    def mine_ready(self) -> int:
        """One block if transactions are ready; how many it holds (0: none mined)."""
        ready = int(self.rpc.call("txpool_status")["pending"], 16)
        if not ready:
            return 0
        self.rpc.call("evm_mine")  # answers once the block is in
        self.blocks += 1
        return ready

    def _run(self) -> None:
        delay, errors = IDLE_POLL_SECONDS[0], 0
        while not self._stop.is_set():
            try:
                mined = self.mine_ready()
                errors = 0
            except AgentError as exc:
                errors += 1
                if errors % ERRORS_LOGGED_EVERY == 1:
                    log.warning("mining failed (%d in a row): %s", errors, exc)
                mined = 0
                delay = IDLE_POLL_SECONDS[1]
            if mined:
                delay = IDLE_POLL_SECONDS[0]
                continue
            self._stop.wait(delay)
            delay = min(delay * 2, IDLE_POLL_SECONDS[1])


def start_if_automining(url: str) -> Miner | None:
    """A started Miner if the node at `url` is anvil automining (block_time 0), else
    None (interval mining emulates a mining rate: left alone)."""
    if os.environ.get(MODE_ENV, "on-demand") == "automine":
        return None
    rpc = JsonRpc(url)
    try:
        automine = bool(rpc.call("anvil_getAutomine"))
    except AgentError:
        return None
    finally:
        rpc.close()
    return Miner(url).start() if automine else None
