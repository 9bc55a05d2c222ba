"""An anvil node as a context manager, and the dev-chain RPCs experiments need.

    with Anvil(block_time=None) as node:          # automine
        w3 = node.web3()
        ...
    print(node.log())                             # kept after stop, for failing tests

Anvil listens on a free loopback port (it is started with --port 0 and the port is read
from its log, so there is no race for the port), answers JSON-RPC before `start()` returns
(NodeError after START_TIMEOUT seconds, with the log tail), and `stop()` terminates the
process it started by pid, then kills it if it does not exit in STOP_TIMEOUT seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint

from agents.chain.errors import NodeError

START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
POLL_SECONDS = 0.05
DEFAULT_GAS_LIMIT = 30_000_000
_LISTENING = re.compile(r"Listening on ([0-9.]+):(\d+)")


def anvil_binary() -> str:
    """$ANVIL, else the pinned npm binary of the repository, else `anvil` on PATH."""
    env = os.environ.get("ANVIL")
    if env:
        return env
    local = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "anvil"
    if local.exists():
        return str(local)
    found = shutil.which("anvil")
    if found is None:
        raise NodeError("anvil not found: set $ANVIL or run scripts/setup.sh")
    return found


# States (each a full copy of the chain's state: 64 kept took +516 MB over 80 blocks
# with 100,000 storage slots, 8 kept +15 MB) that anvil keeps for calls at past blocks.
# The agents read at "latest", except the clock naming why its own finalize reverted
# (at that receipt's block, right after it came back; client.revert_reason). With the
# lockstep clock mining on demand (agents/miner.py) a 10x interval is a few blocks, so
# 8 states cover minutes; 256 (the earlier figure) took anvil past 8 GB by interval 30.
STATES_KEPT = 8


class Anvil:
    """One anvil process. `block_time` None = automine (a block per transaction), else
    interval mining every `block_time` seconds. `base_fee` 0 (the default) makes gas free,
    so fresh anonymous addresses can transact unfunded; gas used is still measured."""

    def __init__(
        self,
        *,
        binary: str | None = None,
        host: str = "127.0.0.1",
        block_time: float | None = None,
        gas_limit: int = DEFAULT_GAS_LIMIT,
        base_fee: int | None = 0,
        chain_id: int = 31337,
        accounts: int = 2,
        timestamp: int | None = None,
        extra_args: tuple[str, ...] = (),
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.binary = binary or anvil_binary()
        self.host = host
        self.block_time = block_time
        self.gas_limit = gas_limit
        self.base_fee = base_fee
        self.chain_id = chain_id
        self.accounts = accounts
        self.timestamp = timestamp
        self.extra_args = extra_args
        self.start_timeout = start_timeout
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._logdir: tempfile.TemporaryDirectory[str] | None = None
        self._log_text = ""

    def command(self) -> list[str]:
        cmd = [self.binary, "--host", self.host, "--port", "0", "--chain-id", str(self.chain_id)]
        cmd += ["--gas-limit", str(self.gas_limit), "--accounts", str(self.accounts)]
        # Keep only recent states, in memory: by default anvil writes every older state
        # to ~/.foundry/anvil/tmp (tens of GB for a paper-scale day, never removed
        # when anvil is killed). Blocks, receipts and logs are kept in full.
        cmd += ["--prune-history", str(STATES_KEPT)]
        if self.block_time is not None:
            cmd += ["--block-time", f"{self.block_time:g}"]
        if self.base_fee is not None:
            cmd += ["--block-base-fee-per-gas", str(self.base_fee), "--gas-price", "0"]
            cmd += ["--disable-min-priority-fee"]
        if self.timestamp is not None:
            cmd += ["--timestamp", str(self.timestamp)]
        return cmd + list(self.extra_args)

    @property
    def url(self) -> str:
        if self.port is None:
            raise NodeError("anvil is not running")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _log_path(self) -> Path:
        assert self._logdir is not None
        return Path(self._logdir.name) / "anvil.log"

    def log(self) -> str:
        """Everything anvil printed (also after stop())."""
        if self._logdir is not None and self._log_path().exists():
            return self._log_path().read_text(errors="replace")
        return self._log_text

    def start(self) -> Anvil:
        if self._proc is not None:
            raise NodeError("anvil already started")
        self._logdir = tempfile.TemporaryDirectory(prefix="anvil-")
        with self._log_path().open("wb") as log:
            try:
                self._proc = subprocess.Popen(
                    self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            except OSError as exc:
                raise NodeError(f"cannot start {self.binary}: {exc}") from exc
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise NodeError(f"anvil exited with {self._proc.returncode}:\n{self._tail()}")
            if self.port is None:
                m = _LISTENING.search(self.log())
                if m:
                    self.port = int(m.group(2))
            if self.port is not None and _answers(self.url):
                return
            time.sleep(POLL_SECONDS)
        raise NodeError(f"anvil did not answer within {self.start_timeout} s:\n{self._tail()}")

    def _tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self) -> None:
        """Terminate the process (then kill it); idempotent. The log stays readable."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT)
        if self._logdir is not None:
            self._log_text = self.log()
            self._logdir.cleanup()
            self._logdir = None
        self.port = None

    def web3(self, timeout: float = 60.0) -> Web3:
        return connect(self.url, timeout)

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def connect(url: str, timeout: float = 60.0) -> Web3:
    """A Web3 on `url` over HTTP that asks for the chain id only once (web3 would ask
    before every call and transaction)."""
    provider = HTTPProvider(
        url,
        request_kwargs={"timeout": timeout},
        cache_allowed_requests=True,
        cacheable_requests={RPCEndpoint("eth_chainId")},
    )
    return Web3(provider)


def _answers(url: str) -> bool:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    req = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return "result" in json.loads(resp.read())
    except (OSError, urllib.error.URLError, ValueError):
        return False


# ------------------------------------------------------------------ dev-chain RPCs
def rpc(w3: Web3, method: str, *params: Any) -> Any:
    """A raw JSON-RPC call; NodeError if the node answers with an error."""
    reply = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    if "error" in reply:
        raise NodeError(f"{method}: {reply['error']}")
    return reply.get("result")


def set_next_block_timestamp(w3: Web3, timestamp: int) -> None:
    """The next block gets this timestamp (must be later than the latest block's)."""
    rpc(w3, "evm_setNextBlockTimestamp", int(timestamp))


def mine(w3: Web3, timestamp: int | None = None) -> None:
    """Mine one block now (at `timestamp` if given)."""
    if timestamp is None:
        rpc(w3, "evm_mine")
    else:
        rpc(w3, "evm_mine", int(timestamp))


def set_automine(w3: Web3, enabled: bool) -> None:
    rpc(w3, "evm_setAutomine", enabled)


def set_interval_mining(w3: Web3, seconds: int) -> None:
    """Mine a block every `seconds` (0 disables interval mining)."""
    rpc(w3, "evm_setIntervalMining", int(seconds))


def snapshot(w3: Web3) -> str:
    return str(rpc(w3, "evm_snapshot"))


def revert(w3: Web3, snapshot_id: str) -> None:
    """Restore a snapshot (it is consumed: take a new one to return there again).
    Nonces go back too: call `Sender.sync_nonce()` on senders that sent since."""
    if not rpc(w3, "evm_revert", snapshot_id):
        raise NodeError(f"evm_revert: unknown snapshot {snapshot_id}")


def set_balance(w3: Web3, address: str, wei: int) -> None:
    rpc(w3, "anvil_setBalance", address, hex(wei))


def latest_timestamp(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])
