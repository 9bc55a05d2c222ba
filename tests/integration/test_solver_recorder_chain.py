"""Solver and recorder agents against a real anvil and the real market contract.

The test plays DSO, prosumers and clock itself: it deploys the contract, issues assets
and posts offers through agents.chain's wrappers, then drives lockstep intervals over
ZeroMQ (`solve`, wait for `solved`, jump chain time, finalize). The solver and the
recorder run as real `python -m agents ...` processes. Checked: the solver's
submissions are accepted, what is finalized equals `market.replay` of the same offers,
and the recorder's CSVs hold exactly the finalized trades (and a rejected submission).
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from agents.chain.contract import MarketContract, deploy_market
from agents.chain.events import SolutionAccepted, TradeFinalized
from agents.chain.node import Anvil, latest_timestamp, set_next_block_timestamp
from agents.chain.tx import Sender
from agents.common.abi import keccak256
from agents.common.market import MarketParams
from agents.common.protocol import Done, Solve, Solved
from agents.common.transport import Collector, Publisher
from market.replay import replay
from market.types import Feeder, Kind, Offer, Trade
from tests.conftest import REPO, require_tool

FEEDERS = (Feeder(1, c_ext=3_000, c_int=5_000), Feeder(2, c_ext=3_000, c_int=5_000))
FIRST, LAST, T_CLEAR, HOUR = 2, 4, 1, 3600
PRICE_SELL, PRICE_BUY = 100, 300
# (feeder, kind, energy, start, end): a battery-like sell offer over 2..4 and spot offers.
OFFERS = (
    (1, Kind.SELL, 4_000, 2, 4),
    (1, Kind.SELL, 1_500, 2, 2),
    (2, Kind.SELL, 1_000, 3, 3),
    (1, Kind.BUY, 1_200, 2, 2),
    (2, Kind.BUY, 2_500, 2, 2),
    (2, Kind.BUY, 2_000, 3, 3),
    (1, Kind.BUY, 900, 4, 4),
    (2, Kind.BUY, 3_500, 4, 4),
)
REPORT_TIMEOUT = 60.0


def _key(name: str) -> str:
    return "0x" + keccak256(f"test-solver-recorder/{name}".encode()).hex()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def node() -> Iterator[Anvil]:
    require_tool("anvil")
    anvil = Anvil().start()
    try:
        yield anvil
    except BaseException:
        print(anvil.log()[-3000:])
        raise
    finally:
        anvil.stop()


def _config(role: str, name: str, node: Anvil, market: MarketContract, **extra: Any) -> dict:
    return {
        "run_id": "test",
        "role": role,
        "name": name,
        "rpc_url": node.url,
        "contract_address": market.address,
        "chain_id": 31337,
        "metrics_port": 0,
        "log_level": "INFO",
        "market": {
            "first_interval": FIRST,
            "last_interval": LAST,
            "prediction_window": 10,
            "t_clear": T_CLEAR,
            "interval_seconds": HOUR,
            "epoch": extra.pop("epoch"),
            "clock": "lockstep",
        },
        **extra,
    }


def _spawn(role: str, config: dict, path: Path) -> subprocess.Popen[bytes]:
    path.write_text(json.dumps(config))
    log = (path.parent / f"{role}.log").open("wb")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "agents", role, "--config", str(path)],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )


def _solve(pub: Publisher, pull: Collector, interval: int) -> Solved:
    """Publish solve(interval) until the solver answers (PUB drops early messages)."""
    deadline = time.monotonic() + REPORT_TIMEOUT
    while time.monotonic() < deadline:
        pub.send(Solve(interval))
        msg = pull.recv(0.5)
        if isinstance(msg, Solved) and msg.interval == interval:
            return msg
    raise AssertionError(f"no solved report for interval {interval}")


def _stop(proc: subprocess.Popen[bytes], pub: Publisher, log: Path) -> int:
    deadline = time.monotonic() + REPORT_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        pub.send(Done())
        time.sleep(0.2)
    if proc.poll() is None:
        proc.terminate()
        proc.wait(10)
        raise AssertionError(f"agent did not exit after done:\n{log.read_text()[-3000:]}")
    return proc.returncode


def _post_offers(w3: Any, market: MarketContract, dso: Sender) -> list[Offer]:
    posted: list[Offer] = []
    for n, (feeder, kind, energy, start, end) in enumerate(OFFERS):
        anon = Sender(w3, Account.from_key(_key(f"anon-{n}")))
        price = PRICE_SELL if kind == Kind.SELL else PRICE_BUY
        market.add_energy(dso, anon.address, feeder, kind, energy, start, end).wait()
        if kind == Kind.BUY:
            market.add_financial_balance(dso, anon.address, energy * price).wait()
        receipt = market.post_offer(anon, kind, energy, start, end, price).wait()
        offer_id = market.offer_count()
        assert receipt["status"] == 1
        posted.append(Offer(offer_id, feeder, kind, energy, start, end, price))
    return posted


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_solver_submits_contract_accepts_recorder_logs_finalized_trades(
    node: Anvil, tmp_path: Path
) -> None:
    w3 = node.web3()
    dso = Sender(w3, Account.from_key(_key("dso")))
    epoch = latest_timestamp(w3) + 10
    params = MarketParams(
        first_interval=FIRST,
        last_interval=LAST,
        t_clear=T_CLEAR,
        interval_seconds=HOUR,
        epoch=epoch,
    )
    market = deploy_market(w3, dso, FEEDERS, params)
    offers = _post_offers(w3, market, dso)

    pub_ep, pull_ep = f"tcp://127.0.0.1:{_free_port()}", f"tcp://127.0.0.1:{_free_port()}"
    pub, pull = Publisher(pub_ep), Collector(pull_ep)
    events_dir = tmp_path / "events"
    endpoints = {"clock_pub_endpoint": pub_ep, "clock_pull_endpoint": pull_ep, "epoch": epoch}
    recorder = _spawn(
        "recorder",
        _config("recorder", "recorder", node, market, out_dir=str(events_dir), **endpoints),
        tmp_path / "recorder.json",
    )
    solver_cfg = _config(
        "solver",
        "solver-1",
        node,
        market,
        out_dir=str(tmp_path / "solver"),
        private_key=_key("solver"),
        engine="highs",
        behaviour="honest",
        **endpoints,
    )
    solver = _spawn("solver", solver_cfg, tmp_path / "solver.json")
    try:
        reports = []
        for clock in range(FIRST - T_CLEAR, LAST - T_CLEAR + 1):
            reports.append(_solve(pub, pull, clock))
            set_next_block_timestamp(w3, params.clock_end(clock))
            market.finalize(dso, gas=5_000_000).wait()  # no estimate: time jumps
        # A malformed-by-content solution, sent with a fixed gas limit so that it is mined
        # and reverts on chain: the recorder must log it as rejected.
        bogus = [Trade(offers[0].id, offers[0].id, LAST, 10, PRICE_SELL)]
        bad = market.submit_solution(dso, bogus, gas=1_000_000)
        with pytest.raises(Exception, match="NotMatchableKind"):
            bad.wait()
        time.sleep(0.5)  # let the recorder's poll see the last block before `done`
        assert _stop(solver, pub, tmp_path / "solver.log") == 0
        assert _stop(recorder, pub, tmp_path / "recorder.log") == 0
    finally:
        for proc in (solver, recorder):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        pub.close()
        pull.close()

    # The solver answered every interval; its first solution traded everything it could.
    assert [r.interval for r in reports] == [1, 2, 3]
    assert reports[0].submitted and reports[0].objective > 0

    finalized = market.events(0, "latest", [TradeFinalized])
    chain_trades = sorted(e.trade for e in finalized if isinstance(e, TradeFinalized))
    accepted = [
        e for e in market.events(0, "latest", [SolutionAccepted]) if isinstance(e, SolutionAccepted)
    ]
    assert accepted and chain_trades

    # Same offers, same parameters: replay finalizes the same energy (every offer visible).
    expected = replay(
        FEEDERS, offers, first_interval=FIRST, last_interval=LAST, prediction_window=10
    )
    assert sorted(expected.trades) == chain_trades

    # The recorder's trades.csv holds exactly the finalized trades, with feeders.
    feeder_of = {o.id: o.feeder for o in offers}
    trade_rows = _rows(events_dir / "trades.csv")
    assert (
        sorted(
            Trade(
                int(r["seller"]),
                int(r["buyer"]),
                int(r["interval"]),
                int(r["energy_wh"]),
                int(r["price"]),
            )
            for r in trade_rows
        )
        == chain_trades
    )
    for r in trade_rows:
        assert int(r["seller_feeder"]) == feeder_of[int(r["seller"])]
        assert int(r["buyer_feeder"]) == feeder_of[int(r["buyer"])]

    offer_rows = _rows(events_dir / "offers.csv")
    assert [int(r["offer_id"]) for r in offer_rows] == [o.id for o in offers]
    solution_rows = _rows(events_dir / "solutions.csv")
    assert [r["result"] for r in solution_rows] == ["accepted"] * len(accepted) + ["rejected"]
    assert int(solution_rows[0]["objective_wh"]) == accepted[0].objective
    assert solution_rows[-1]["submitter"].lower() == dso.address.lower()
    assert int(solution_rows[0]["gas_used"]) > 0

    summary = json.loads((events_dir / "recorder.json").read_text())
    assert summary["total_energy_traded_wh"] == expected.total_wh
    assert summary["per_interval_kwh"] == {
        str(t): wh / 1000 for t, wh in expected.per_interval_wh.items()
    }
    traded_offers = {t.seller for t in chain_trades} | {t.buyer for t in chain_trades}
    assert summary["offer_to_trade_seconds"]["count"] == len(traded_offers)
    assert summary["offer_to_finalization_seconds"]["count"] == len(traded_offers)
    assert summary["offer_to_trade_seconds"]["max"] >= 0
    assert summary["solutions"] == {"accepted": len(accepted), "rejected": 1}
    assert len(_rows(events_dir / "latencies.csv")) == len(offers)
    finalizations = _rows(events_dir / "finalizations.csv")
    assert [int(r["interval"]) for r in finalizations] == [2, 3, 4]


def _wait_candidate(
    market: MarketContract, candidate_id: int, proc: subprocess.Popen[bytes]
) -> int:
    deadline = time.monotonic() + REPORT_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        state = market.candidate()
        if state.candidate_id >= candidate_id:
            return state.remaining_objective
        time.sleep(0.1)
    raise AssertionError(f"no candidate {candidate_id} (solver exit code {proc.poll()})")


def test_wallclock_solver_resolves_on_its_timer_as_offers_arrive(
    node: Anvil, tmp_path: Path
) -> None:
    w3 = node.web3()
    dso = Sender(w3, Account.from_key(_key("dso")))
    epoch = latest_timestamp(w3)
    params = MarketParams(
        first_interval=FIRST,
        last_interval=LAST,
        t_clear=T_CLEAR,
        interval_seconds=HOUR,
        epoch=epoch,
    )
    market = deploy_market(w3, dso, FEEDERS, params)
    _post_offers(w3, market, dso)
    pub_ep = f"tcp://127.0.0.1:{_free_port()}"
    pub = Publisher(pub_ep)
    cfg = _config(
        "solver",
        "solver-wall",
        node,
        market,
        out_dir=str(tmp_path / "solver"),
        private_key=_key("solver"),
        engine="glpk",
        behaviour="honest",
        clock_pub_endpoint=pub_ep,
        epoch=epoch,
    )
    cfg["market"] |= {"clock": "wallclock", "solver_period_seconds": 0.3}
    solver = _spawn("solver", cfg, tmp_path / "solver.json")
    try:
        first = _wait_candidate(market, 1, solver)
        # A new seller in feeder 2 lets interval 4's feeder-2 buyer get more: the
        # solver must pick the new offer up from the next blocks and improve.
        anon = Sender(w3, Account.from_key(_key("late-seller")))
        market.add_energy(dso, anon.address, 2, Kind.SELL, 2_000, 4, 4).wait()
        market.post_offer(anon, Kind.SELL, 2_000, 4, 4, PRICE_SELL).wait()
        second = _wait_candidate(market, 2, solver)
        assert second > first
        assert _stop(solver, pub, tmp_path / "solver.log") == 0
    finally:
        if solver.poll() is None:
            solver.terminate()
            solver.wait(10)
        pub.close()
    log = (tmp_path / "solver.log").read_text()
    assert "wallclock mode" in log
