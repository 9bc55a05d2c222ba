"""The DSO issues a batch's asset transactions in an order drawn from its own random
source (issue 14: the order must not link one prosumer's addresses), and still
answers each request from its own receipts. Real anvil and the compiled contract."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from eth_account import Account

from agents.chain.client import MarketClient
from agents.chain.contract import deploy_market
from agents.chain.node import Anvil, latest_timestamp
from agents.chain.tx import Sender
from agents.common.abi import keccak256
from agents.common.config import DsoConfig, parse_config
from agents.common.market import MarketParams
from agents.common.protocol import Asset, AssetsAdded, WithdrawAssets
from agents.common.rpc import Signer
from agents.common.typed import to_plain
from agents.dso.accounts import Accounts
from agents.dso.service import DsoService
from market.types import Feeder
from tests.integration.test_contract_workflow import (  # the module's anvil
    anvil_log_on_failure,  # noqa: F401
    node,  # noqa: F401
)

FEEDERS = [{"id": 1, "c_ext": 5_000, "c_int": 5_000}]
PROSUMERS: list[dict[str, Any]] = [
    {"id": 100 + i, "feeder": 1, "offers": [
        {"start": 2, "end": 3, "energy_wh": 1_000 + i}, {"start": 2, "end": 3, "energy_wh": -500}]}
    for i in range(12)
]  # fmt: skip


def _key(name: str) -> str:
    return "0x" + keccak256(f"test-dso-shuffle/{name}".encode()).hex()


def test_asset_calls_are_shuffled_and_each_request_gets_its_own_assets(
    node: Anvil,  # noqa: F811
    tmp_path: Path,
) -> None:
    w3 = node.web3()
    params = MarketParams(
        first_interval=1, last_interval=4, prediction_window=2, t_clear=1,
        interval_seconds=3600, epoch=latest_timestamp(w3),
    )  # fmt: skip
    dso_key = _key("dso")
    address = deploy_market(
        w3, Sender(w3, Account.from_key(dso_key)), (Feeder(1, 5_000, 5_000),), params
    ).address
    config = parse_config(
        {"run_id": "shuffle", "name": "dso", "role": "dso", "rpc_url": node.url,
         "contract_address": address, "chain_id": 31337, "out_dir": str(tmp_path),
         "market": to_plain(params), "private_key": dso_key, "feeders": FEEDERS,
         "prosumers": PROSUMERS, "initial_balance": {p["id"]: 10_000_000 for p in PROSUMERS}}
    )  # fmt: skip
    assert isinstance(config, DsoConfig)
    chain = MarketClient.connect(config, dso_key)
    assert chain.main is not None
    service = DsoService(config, Accounts.from_config(config), chain, chain.main, random.Random(7))
    anons = [Signer(_key(f"anon{i}"), 31337).address for i in range(len(PROSUMERS))]
    requests = [
        WithdrawAssets(
            p["id"], anon, 1, (Asset(0, 1_000 + i, 2, 3), Asset(1, 500, 2, 3)), amount=500 * 20
        )
        for i, (p, anon) in enumerate(zip(PROSUMERS, anons, strict=True))
    ]
    first = chain.block_number() + 1
    try:
        results = service.withdraw_all(requests)
        assert results == [AssetsAdded(a) for a in anons]
        # each address holds exactly what its own request asked for
        for i, state in enumerate(chain.accounts(anons)):
            assert (state.linked, state.sell_energy, state.buy_energy) == (True, 1_000 + i, 500)
            assert state.balance >= 500 * 20
        # the transactions reached the chain in another order than the requests'
        events = chain.get_logs(["AssetAdded", "FinancialAdded"], first, chain.block_number())
        assert len(events) == 3 * len(anons)
        order = [str(args["anon"]).lower() for _, args in events]
        grouped = [a.lower() for a in anons for _ in range(3)]
        assert order != grouped
        assert sorted(order) == sorted(grouped)
    finally:
        chain.close()
