"""The anvil launcher, the dev-chain RPCs and the sending machinery, on real anvil processes."""

from __future__ import annotations

import os
import time

import pytest
from eth_account import Account

from agents.chain.contract import deploy_market
from agents.chain.errors import ContractRevert, NodeError, TxTimeout
from agents.chain.node import (
    Anvil,
    latest_timestamp,
    mine,
    revert,
    set_automine,
    set_next_block_timestamp,
    snapshot,
)
from agents.chain.tx import Sender
from agents.common.market import MarketParams
from market.types import Feeder, Kind
from tests.conftest import require_tool
from tests.integration.test_contract_workflow import anvil_log_on_failure, node  # noqa: F401


def test_missing_binary_is_a_node_error() -> None:
    with pytest.raises(NodeError, match="cannot start"):
        Anvil(binary="/nonexistent/anvil").start()


def test_a_node_that_exits_at_once_reports_its_log() -> None:
    require_tool("anvil")
    with pytest.raises(NodeError, match="exited"):
        Anvil(extra_args=("--no-such-flag",)).start()


def test_start_answers_and_stop_ends_the_process() -> None:
    require_tool("anvil")
    anvil = Anvil(block_time=1)
    with anvil:
        pid = anvil.pid
        assert pid is not None
        w3 = anvil.web3()
        assert w3.eth.chain_id == 31337
        assert w3.eth.get_block("latest")["gasLimit"] == 30_000_000
        first = w3.eth.block_number
        deadline = time.monotonic() + 10
        while w3.eth.block_number == first and time.monotonic() < deadline:
            time.sleep(0.1)  # interval mining: blocks come without transactions
        assert w3.eth.block_number > first
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "Listening on 127.0.0.1:" in anvil.log()  # kept after stop
    with pytest.raises(NodeError):
        _ = anvil.url


def test_time_snapshots_and_pipelined_nonces(node: Anvil) -> None:  # noqa: F811
    w3 = node.web3()
    dso = Sender(w3, Account.create())
    now = latest_timestamp(w3)
    params = MarketParams(
        first_interval=2, last_interval=9, t_clear=1, interval_seconds=60, epoch=now + 100
    )
    market = deploy_market(w3, dso, (Feeder(1, 100, 100),), params)

    set_next_block_timestamp(w3, now + 1_000)
    mine(w3)
    assert latest_timestamp(w3) == now + 1_000
    mine(w3, now + 2_000)
    assert market.current_interval() == 1 + (2_000 - 100) // 60

    snap = snapshot(w3)
    anons = [Account.create().address for _ in range(5)]
    pending = [market.add_energy(dso, a, 1, Kind.SELL, 10, 2, 9, gas=200_000) for a in anons]
    assert [p.nonce for p in pending] == list(range(pending[0].nonce, pending[0].nonce + 5))
    assert all(p.wait()["status"] == 1 for p in pending)
    assert all(market.account(a).linked for a in anons)
    revert(w3, snap)
    assert not any(market.account(a).linked for a in anons)
    dso.sync_nonce()  # the reverted transactions' nonces are free again
    market.add_energy(dso, anons[0], 1, Kind.SELL, 10, 2, 9).wait()

    set_automine(w3, False)
    try:
        queued = market.add_energy(dso, anons[1], 1, Kind.SELL, 10, 2, 9, gas=200_000)
        with pytest.raises(TxTimeout):
            queued.wait(timeout=0.5)
        mine(w3)
        assert queued.wait()["status"] == 1
    finally:
        set_automine(w3, True)


def test_mined_revert_is_decoded_from_the_chain(node: Anvil) -> None:  # noqa: F811
    w3 = node.web3()
    dso = Sender(w3, Account.create())
    params = MarketParams(
        first_interval=2,
        last_interval=9,
        t_clear=1,
        interval_seconds=60,
        epoch=latest_timestamp(w3),
    )
    market = deploy_market(w3, dso, (Feeder(1, 100, 100),), params)
    intruder = Sender(w3, Account.create())
    sent = market.add_financial_balance(intruder, intruder.address, 5, gas=100_000)
    with pytest.raises(ContractRevert) as info:
        sent.wait()
    assert info.value.name == "NotDso" and info.value.function == "addFinancialBalance"
    with pytest.raises(ContractRevert) as estimated:  # same, caught before sending
        market.add_financial_balance(intruder, intruder.address, 5)
    assert estimated.value.name == "NotDso"
