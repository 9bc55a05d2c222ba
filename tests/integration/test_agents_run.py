"""dso + prosumer host + solver + clock as real processes on a real anvil and contract.

`python -m agents <role> --config file.json` for each agent, over four delivery
intervals, in lockstep mode (and once in wallclock mode). Checks what ends up on
chain: offers posted from anonymous addresses with DSO-issued assets; a
failedWithdrawal for an over-asking request (sent by the test directly, and by
the host, whose trace claims more than the DSO's record); finalization through
the last interval with exactly the trades market.replay finalizes; every
anonymous address emptied by deposits that the DSO credits.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from agents.chain.client import Contract, MarketClient, load_abi
from agents.chain.contract import deploy_market
from agents.chain.node import Anvil
from agents.chain.tx import Sender
from agents.common.market import MarketParams
from agents.common.protocol import Asset, FailedWithdrawal, WithdrawAssets
from agents.common.rpc import JsonRpc
from agents.common.transport import Requester
from agents.common.typed import to_plain
from market.replay import replay
from market.types import Feeder, Kind, Offer, Trade
from tests.conftest import require_tool

# anvil's dev accounts 0..2 (public test keys): DSO (deployer), clock, solver.
DSO_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
CLOCK_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
SOLVER_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"

FIRST, LAST, WINDOW, T_CLEAR, SECONDS = 1, 4, 2, 1, 3600
FEEDERS = [{"id": 1, "c_ext": 1500, "c_int": 2000}, {"id": 2, "c_ext": 1500, "c_int": 2000}]
PRICES = {"sell": 10, "buy": 20}
HOST_PROSUMERS: list[dict[str, Any]] = [
    {
        "id": 101,
        "feeder": 1,
        "offers": [
            {"start": 1, "end": 1, "energy_wh": 1000},
            {"start": 2, "end": 2, "energy_wh": 1000},
            {"start": 3, "end": 4, "energy_wh": 800},
        ],
    },
    {
        "id": 102,
        "feeder": 1,
        "offers": [
            {"start": 1, "end": 2, "energy_wh": -600},
            {"start": 4, "end": 4, "energy_wh": -500},
        ],
    },
    {
        "id": 201,
        "feeder": 2,
        "offers": [
            {"start": 3, "end": 3, "energy_wh": -800},
            {"start": 4, "end": 4, "energy_wh": 300},
        ],
    },
]
# The DSO's record of prosumer 201's trace allows only 100 Wh of selling at 4:
# the host's withdrawal for 300 Wh must be refused.
DSO_PROSUMERS: list[dict[str, Any]] = [
    *HOST_PROSUMERS[:2],
    {
        **HOST_PROSUMERS[2],
        "offers": [HOST_PROSUMERS[2]["offers"][0], {"start": 4, "end": 4, "energy_wh": 100}],
    },
]
REFUSED = (Kind.SELL, 300, 4, 4, 10)
STOP_SECONDS = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    node = Anvil(binary=require_tool("anvil"), accounts=3)
    node.start()
    try:
        yield node
    finally:
        node.stop()


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            body = r.read().decode()
    except OSError:
        return False
    return "testbed_agent_ready 1.0" in body


class Run:
    """Deploys the market and writes one config per agent; starts agents as processes."""

    def __init__(self, anvil: Anvil, tmp_path: Path, mode: str, seconds: int, epoch: int) -> None:
        self.tmp = tmp_path
        w3 = anvil.web3()
        feeders = tuple(Feeder(f["id"], f["c_ext"], f["c_int"]) for f in FEEDERS)
        params = MarketParams(
            first_interval=FIRST,
            last_interval=LAST,
            prediction_window=WINDOW,
            t_clear=T_CLEAR,
            clock="lockstep" if mode == "lockstep" else "wallclock",
            solver_period_seconds=1,
            interval_seconds=seconds,
            epoch=epoch,
        )
        sender = Sender(w3, Account.from_key(DSO_KEY))
        self.address = str(deploy_market(w3, sender, feeders, params).address)
        self.rpc = JsonRpc(anvil.url)
        self.chain = MarketClient(self.rpc, Contract(self.address, load_abi()), 31337)
        self.endpoints = {
            "dso_endpoint": f"tcp://127.0.0.1:{free_port()}",
            "clock_pub_endpoint": f"tcp://127.0.0.1:{free_port()}",
            "clock_pull_endpoint": f"tcp://127.0.0.1:{free_port()}",
        }
        self.common = {
            "run_id": "t1",
            "rpc_url": anvil.url,
            "contract_address": self.address,
            "chain_id": 31337,
            **self.endpoints,
            "metrics_host": "127.0.0.1",
            "log_level": "INFO",
            "market": to_plain(params),
        }
        self.roles: dict[str, dict[str, Any]] = {
            "dso": {
                "role": "dso",
                "private_key": DSO_KEY,
                "feeders": FEEDERS,
                "prosumers": DSO_PROSUMERS,
                "initial_balance": {p["id"]: 100_000 for p in DSO_PROSUMERS},
            },
            "solver-1": {
                "role": "solver",
                "private_key": SOLVER_KEY,
                "engine": "highs",
                "behaviour": "honest",
            },
            "prosumers-01": {
                "role": "prosumer",
                "prosumers": HOST_PROSUMERS,
                "prices": PRICES,
                "address_rotation": "per_offer",
                "seed": 7,
            },
            "clock": {
                "role": "clock",
                "private_key": CLOCK_KEY,
                "prosumer_hosts": ["prosumers-01"],
                "solvers": ["solver-1"],
                "lockstep_timeout_seconds": 60,
            },
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.logs: dict[str, Path] = {}

    def start(self, name: str) -> None:
        extra = self.roles[name]
        self.ports[name] = free_port()
        cfg = {**self.common, **extra, "name": name, "metrics_port": self.ports[name]}
        cfg["out_dir"] = str(self.tmp / name)
        path = self.tmp / f"{name}.json"
        path.write_text(json.dumps(cfg))
        self.logs[name] = self.tmp / f"{name}.log"
        with self.logs[name].open("wb") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "agents", extra["role"], "--config", str(path)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, names: list[str], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        for name in names:
            while not ready(self.ports[name]):
                if self.procs[name].poll() is not None:
                    pytest.fail(f"{name} exited early:\n{self.log(name)}")
                if time.monotonic() > deadline:
                    pytest.fail(f"{name} not ready:\n{self.log(name)}")
                time.sleep(0.1)

    def log(self, name: str) -> str:
        return self.logs[name].read_text()[-3000:]

    def wait_all(self, market_seconds: float = 0) -> None:
        """Every agent exits 0 on its own (the clock's `done`), within STOP_SECONDS
        after the `market_seconds` the market still has to run."""
        codes: dict[str, int | str] = {}
        deadline = time.monotonic() + market_seconds + STOP_SECONDS
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[name] = "still running"
        assert codes == dict.fromkeys(self.roles, 0), {n: self.log(n) for n in self.roles}

    def kill_leftovers(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def events(self) -> dict[str, list[dict[str, Any]]]:
        found = self.chain.get_logs(
            list(self.chain.contract.event_topics), 0, self.chain.block_number()
        )
        by_name: dict[str, list[dict[str, Any]]] = {}
        for name, args in found:
            by_name.setdefault(name, []).append(args)
        return by_name


def expected_offers() -> Counter[tuple[Kind, int, int, int, int]]:
    """Every offer of the host's traces except the refused one."""
    expected: Counter[tuple[Kind, int, int, int, int]] = Counter()
    for p in HOST_PROSUMERS:
        for o in p["offers"]:
            sell = o["energy_wh"] > 0
            kind, price = (Kind.SELL, PRICES["sell"]) if sell else (Kind.BUY, PRICES["buy"])
            expected[(kind, abs(o["energy_wh"]), o["start"], o["end"], price)] += 1
    expected[REFUSED] -= 1
    return +expected


def check_posted_and_settled(run: Run, by_name: dict[str, list[dict[str, Any]]]) -> None:
    posted = by_name["OfferPosted"]
    got = Counter((Kind(a["kind"]), a["energy"], a["start"], a["end"], a["price"]) for a in posted)
    assert got == expected_offers()
    assert len({a["poster"] for a in posted}) == len(posted)  # per_offer: fresh addresses
    assert len(by_name["AssetAdded"]) == len(posted)
    buys = [a for a in posted if a["kind"] == Kind.BUY]
    assert sorted(a["amount"] for a in by_name["FinancialAdded"]) == sorted(
        a["energy"] * a["price"] for a in buys
    )
    assert "failedWithdrawal for prosumer 201" in run.logs["prosumers-01"].read_text()
    (next_final,) = run.chain.view("nextFinalize")
    assert next_final == LAST + 1
    assert [a["interval"] for a in by_name["IntervalFinalized"]] == list(range(FIRST, LAST + 1))
    # settlement: every anonymous address closed its offers and deposited everything
    assert len(by_name["OfferClosed"]) == len(posted)
    states = run.chain.accounts([a["poster"] for a in posted])
    assert all(s.balance == s.sell_energy == s.buy_energy == 0 for s in states)
    deposited = sum(a["amount"] for a in by_name.get("FinancialDeposited", []))
    accounts = json.loads((run.tmp / "dso" / "accounts.json").read_text())
    assert sum(a["deposited_money"] for a in accounts.values()) == deposited
    # money is conserved: what the DSO issued came back (sellers paid by buyers)
    assert deposited == sum(a["amount"] for a in by_name["FinancialAdded"])
    assert accounts["201"]["undrawn_energy_wh"] == 100


def test_lockstep_run_on_a_real_chain(anvil: Anvil, tmp_path: Path) -> None:
    latest = JsonRpc(anvil.url).call("eth_getBlockByNumber", ["latest", False])
    run = Run(anvil, tmp_path, "lockstep", 3600, epoch=int(latest["timestamp"], 16))
    try:
        for name in ("dso", "solver-1", "prosumers-01"):
            run.start(name)
        run.wait_ready(["dso", "solver-1", "prosumers-01"])
        # before the clock starts: an over-asking request straight to the DSO
        asker = Requester(run.endpoints["dso_endpoint"], timeout=10, retries=1)
        reply = asker.request(WithdrawAssets(101, "0x" + "5a" * 20, 1, (Asset(0, 1001, 1, 1),), 0))
        asker.close()
        assert isinstance(reply, FailedWithdrawal)
        assert "exceeds prosumer 101's declared offers" in reply.reason
        run.start("clock")
        run.wait_all()
    finally:
        run.kill_leftovers()

    by_name = run.events()
    check_posted_and_settled(run, by_name)
    # finalized exactly what market.replay finalizes on the posted offers
    posted = by_name["OfferPosted"]
    offers = [
        Offer(
            a["offerId"],
            a["feeder"],
            Kind(a["kind"]),
            a["energy"],
            a["start"],
            a["end"],
            a["price"],
        )
        for a in posted
    ]
    oracle = replay(
        [Feeder(f["id"], f["c_ext"], f["c_int"]) for f in FEEDERS],
        offers,
        first_interval=FIRST,
        last_interval=LAST,
        prediction_window=WINDOW,
        t_clear=T_CLEAR,
    )
    per_interval = {a["interval"]: a["energy"] for a in by_name["IntervalFinalized"]}
    assert per_interval == oracle.per_interval_wh
    assert oracle.total_wh > 0
    trades = sorted(
        Trade(a["seller"], a["buyer"], a["interval"], a["energy"], a["price"])
        for a in by_name["TradeFinalized"]
    )
    assert trades == sorted(oracle.trades)  # same offer ids: the oracle got the chain's


def test_wallclock_run_follows_real_time(anvil: Anvil, tmp_path: Path) -> None:
    seconds = 2
    # The agents must be up before the first interval begins, or its offers are never
    # posted: on a loaded machine they take longer to start, so the margin grows with load.
    margin = min(60, 8 + 2 * os.getloadavg()[0])
    epoch = int(time.time() + margin)
    run_end = epoch + (LAST + 1 + T_CLEAR) * seconds  # the last interval's deadline, in real time
    run = Run(anvil, tmp_path, "wallclock", seconds, epoch=epoch)
    try:
        for name in ("dso", "solver-1", "prosumers-01"):
            run.start(name)
        run.wait_ready(["dso", "solver-1", "prosumers-01"])
        run.start("clock")
        run.wait_all(market_seconds=max(0.0, run_end - time.time()))
    finally:
        run.kill_leftovers()
    by_name = run.events()
    check_posted_and_settled(run, by_name)
    # chain time followed real time: each interval was finalized after its clock interval ended
    for args in by_name["IntervalFinalized"]:
        assert args["interval"] >= FIRST
    blocks = {
        int(log["blockNumber"], 16)
        for log in run.rpc.call(
            "eth_getLogs",
            [{"address": run.address, "fromBlock": "0x0", "toBlock": "latest",
              "topics": ["0x" + run.chain.contract.event_topics["IntervalFinalized"].hex()]}],
        )
    }  # fmt: skip
    times = sorted(
        int(run.rpc.call("eth_getBlockByNumber", [hex(b), False])["timestamp"], 16) for b in blocks
    )
    epoch = run.common["market"]["epoch"]  # type: ignore[index]
    assert times == sorted(times)
    for k, stamp in enumerate(times):
        assert stamp >= epoch + (k + 1) * seconds


def test_sigterm_stops_agents_cleanly(anvil: Anvil, tmp_path: Path) -> None:
    latest = JsonRpc(anvil.url).call("eth_getBlockByNumber", ["latest", False])
    run = Run(anvil, tmp_path, "lockstep", 3600, epoch=int(latest["timestamp"], 16))
    names = ["dso", "prosumers-01", "clock"]
    try:
        for name in names:
            run.start(name)
        run.wait_ready(names)  # the clock waits for posted reports that never come
        for name in names:
            run.procs[name].send_signal(signal.SIGTERM)
        codes = {name: run.procs[name].wait(STOP_SECONDS) for name in names}
    finally:
        run.kill_leftovers()
    assert codes == dict.fromkeys(names, 0), {n: run.log(n) for n in names}
    assert "stopped by SIGTERM" in run.logs["dso"].read_text()
    assert json.loads((tmp_path / "dso" / "accounts.json").read_text())["101"]["feeder"] == 1
