"""Misbehaving prosumers (issue 8) on a real anvil and the real compiled contract.

One prosumer host (in-process `ProsumerHost`) with four prosumers, the DSO service
in-process (its real checks, issuing assets on chain), the test as the clock (ticks,
finalize with virtual chain time). Prosumer 101 posts beyond its assets for the whole
run, 103 posts for past intervals at clock interval 1 only, 104 posts beyond its assets
after the DSO refused its withdrawal; 102 behaves. Checked on chain: every misbehaving
offer was sent as a transaction and refused with the expected custom error, 102's and
103's later offers are posted, the unused assets of the misbehaving addresses are
deposited back at the end; behaviour.jsonl and the metrics say the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from prometheus_client import REGISTRY

from agents.chain.client import MarketClient
from agents.chain.contract import deploy_market
from agents.chain.node import Anvil, latest_timestamp
from agents.chain.tx import Sender
from agents.common.abi import keccak256
from agents.common.actionlog import read
from agents.common.config import DsoConfig, ProsumerHostConfig, parse_config
from agents.common.errors import AgentError
from agents.common.market import MarketParams
from agents.common.protocol import Message
from agents.common.rpc import Signer
from agents.common.transport import Requester
from agents.common.typed import to_plain
from agents.dso.accounts import Accounts
from agents.dso.service import DsoService
from agents.prosumer.host import ProsumerHost
from agents.prosumer.plan import anon_secret
from market.types import Feeder
from tests.integration.test_contract_workflow import (  # the module's anvil
    anvil_log_on_failure,  # noqa: F401
    node,  # noqa: F401
)

FIRST, LAST, WINDOW, T_CLEAR, SECONDS, SEED = 1, 4, 2, 1, 3600, 5
FEEDERS = [{"id": 1, "c_ext": 5_000, "c_int": 5_000}, {"id": 2, "c_ext": 5_000, "c_int": 5_000}]
PROSUMERS: list[dict[str, Any]] = [
    {"id": 101, "feeder": 1, "offers": [
        {"start": 1, "end": 1, "energy_wh": 1_000}, {"start": 2, "end": 2, "energy_wh": 500}]},
    {"id": 102, "feeder": 1, "offers": [
        {"start": 1, "end": 2, "energy_wh": -600}, {"start": 3, "end": 3, "energy_wh": -500}]},
    {"id": 103, "feeder": 2, "offers": [
        {"start": 2, "end": 2, "energy_wh": 300}, {"start": 3, "end": 3, "energy_wh": 400}]},
    {"id": 104, "feeder": 2, "offers": [{"start": 3, "end": 3, "energy_wh": 300}]},
]  # fmt: skip
# the DSO's record of 104 allows 100 Wh only: its withdrawal is refused
DSO_PROSUMERS = [
    *PROSUMERS[:3],
    {**PROSUMERS[3], "offers": [{"start": 3, "end": 3, "energy_wh": 100}]},
]
MISBEHAVIOUR = [
    {"prosumer": 101, "action": "beyond_assets", "from_interval": 0, "until_interval": None},
    {"prosumer": 103, "action": "past_interval", "from_interval": 1, "until_interval": 2},
    {"prosumer": 104, "action": "beyond_assets", "from_interval": 0, "until_interval": None},
]


def _key(name: str) -> str:
    return "0x" + keccak256(f"test-adversary-prosumer/{name}".encode()).hex()


class InProcessDso:
    """The DSO service answering the host's requests directly (no sockets)."""

    def __init__(self, service: DsoService) -> None:
        self.dispatcher = service.dispatcher()

    def request(self, msg: Message) -> Message:
        reply = self.dispatcher.dispatch(msg)
        assert reply is not None
        return reply


class Reports(list[Message]):
    def send(self, msg: Message) -> None:
        self.append(msg)


Market = tuple[ProsumerHost, MarketClient, MarketParams, DsoService]


@contextmanager
def market_with_host(
    anvil: Anvil, out_dir: Path, run_id: str, key_prefix: str, *, signed: bool
) -> Iterator[Market]:
    """A fresh market on `anvil`, the DSO service and one host of PROSUMERS with
    MISBEHAVIOUR in-process, and a client for the test's clock (keys `_key(key_prefix
    + "dso")`, `+ "clock"`). `signed`: the DSO signs fresh addresses' grants off chain
    (test_contract_signed_hosts) instead of issuing them on chain."""
    w3 = anvil.web3()
    params = MarketParams(
        first_interval=FIRST, last_interval=LAST, prediction_window=WINDOW, t_clear=T_CLEAR,
        interval_seconds=SECONDS, epoch=latest_timestamp(w3),
    )  # fmt: skip
    dso_key = _key(f"{key_prefix}dso")
    address = deploy_market(
        w3,
        Sender(w3, Account.from_key(dso_key)),
        tuple(Feeder(f["id"], f["c_ext"], f["c_int"]) for f in FEEDERS),
        params,
    ).address
    common = {
        "run_id": run_id, "name": "x", "rpc_url": anvil.url, "contract_address": address,
        "chain_id": 31337, "out_dir": str(out_dir), "market": to_plain(params),
    }  # fmt: skip
    dso_cfg = parse_config(
        {**common, "role": "dso", "name": "dso", "private_key": dso_key, "feeders": FEEDERS,
         "prosumers": DSO_PROSUMERS,
         "initial_balance": {p["id"]: 10_000_000 for p in DSO_PROSUMERS}}
    )  # fmt: skip
    host_cfg = parse_config(
        {**common, "role": "prosumer", "name": "prosumers-01", "prosumers": PROSUMERS,
         "prices": {"sell": 10, "buy": 20}, "seed": SEED, "misbehaviour": MISBEHAVIOUR}
    )  # fmt: skip
    assert isinstance(dso_cfg, DsoConfig) and isinstance(host_cfg, ProsumerHostConfig)
    dso_chain = MarketClient.connect(dso_cfg, dso_cfg.private_key)
    assert dso_chain.main is not None
    service = DsoService(
        dso_cfg, Accounts.from_config(dso_cfg), dso_chain, dso_chain.main,
        grant_key=dso_key if signed else None,
    )  # fmt: skip
    host_chain = MarketClient.connect(host_cfg)
    clock = MarketClient.connect(host_cfg, _key(f"{key_prefix}clock"))
    host = ProsumerHost(host_cfg, host_chain, InProcessDso(service), Reports())
    try:
        yield host, clock, params, service
    finally:
        for chain in (dso_chain, host_chain, clock):
            chain.close()


@pytest.fixture
def setup(node: Anvil, tmp_path: Path) -> Iterator[tuple[ProsumerHost, MarketClient, MarketParams]]:  # noqa: F811
    with market_with_host(node, tmp_path, "adv", "", signed=False) as (host, clock, params, _):
        yield host, clock, params


def _refused(reason: str) -> float:
    return REGISTRY.get_sample_value("testbed_offers_refused_total", {"reason": reason}) or 0.0


def _address(prosumer: int, counter: int) -> str:
    return Signer(anon_secret(SEED, prosumer, counter), 31337).address


def test_misbehaving_prosumers_are_refused_and_the_others_served(
    setup: tuple[ProsumerHost, MarketClient, MarketParams], tmp_path: Path
) -> None:
    host, clock, params = setup
    before = {r: _refused(r) for r in ("InsufficientEnergyAsset", "RangeFinalized", "NotLinked")}
    posted = []
    for t in range(FIRST - T_CLEAR, LAST - T_CLEAR + 1):
        posted.append(host.on_tick(t))
        clock.finalize(timestamp=params.clock_end(t))
        host.on_finalized(t + T_CLEAR)
        host.deposit_due()
    host.settle()
    # tick 0: 102's buy; tick 1: nothing (101 beyond assets, 103 in the past);
    # tick 2: 102's and 103's offers (103 behaves again, 104 beyond assets and refused)
    assert posted == [1, 0, 2, 0]
    offers = clock.get_logs(["OfferPosted"], 0, clock.block_number())
    by_poster = {str(args["poster"]).lower() for _, args in offers}
    assert by_poster == {
        _address(102, 0).lower(),
        _address(102, 1).lower(),
        _address(103, 1).lower(),
    }

    records = read(tmp_path / "behaviour.jsonl")
    attempts = [(r["interval"], r["prosumer"], r["behaviour"], r["result"])
                for r in records if r["action"] == "post_offer"]  # fmt: skip
    assert attempts == [
        (0, 101, "beyond_assets", "reverted: InsufficientEnergyAsset"),
        (1, 101, "beyond_assets", "reverted: InsufficientEnergyAsset"),
        (1, 103, "past_interval", "reverted: RangeFinalized"),
        (2, 104, "beyond_assets", "reverted: NotLinked"),
    ]
    switches = [(r["interval"], r["prosumer"], r["detail"].split(": ")[1])
                for r in records if r["action"] == "switch"]  # fmt: skip
    assert switches == [
        (0, 101, "beyond_assets started"),
        (0, 104, "beyond_assets started"),
        (1, 103, "past_interval started"),
        (2, 103, "past_interval ended"),
    ]
    assert (
        "1000 Wh issued" in records[2]["detail"] and "SELL 2000 Wh [1, 1]" in records[2]["detail"]
    )
    assert "failedWithdrawal" in records[-1]["detail"]
    assert _refused("InsufficientEnergyAsset") == before["InsufficientEnergyAsset"] + 2
    assert _refused("RangeFinalized") == before["RangeFinalized"] + 1
    assert _refused("NotLinked") == before["NotLinked"] + 1

    # every refused offer was a real (reverted) transaction from its anonymous address,
    # and the assets the DSO issued to the misbehaving addresses went back at the end
    misbehaving = [_address(101, 0), _address(101, 1), _address(103, 0), _address(104, 0)]
    nonces = [
        int(clock.rpc.call("eth_getTransactionCount", [a, "latest"]), 16) for a in misbehaving
    ]
    assert nonces[:3] == [2, 2, 2]  # postOffer + depositEnergy
    assert nonces[3] == 1  # postOffer only: it never had assets
    for state in clock.accounts(misbehaving):
        assert state.sell_energy == state.buy_energy == state.balance == 0


def test_a_reverted_finalize_names_the_contracts_reason(
    setup: tuple[ProsumerHost, MarketClient, MarketParams],
) -> None:
    # chain time is the epoch: the first clock interval has an hour to go
    _, clock, params = setup
    with pytest.raises(
        AgentError, match=r"reverted with IntervalNotEnded\(interval=1, endsAt="
    ) as err:
        clock.finalize(timestamp=None)
    assert str(params.clock_end(FIRST - T_CLEAR)) in str(err.value)


def test_a_dso_that_does_not_answer_costs_a_tick_not_the_host(
    setup: tuple[ProsumerHost, MarketClient, MarketParams],
) -> None:
    host, clock, params = setup
    up = host.dso
    host.dso = Requester("tcp://127.0.0.1:9", timeout=0.2, retries=1)  # nobody listens
    before = _refused("dsoUnreachable")
    posted = []
    for t in range(FIRST - T_CLEAR, LAST - T_CLEAR + 1):
        posted.append(host.on_tick(t))
        host.dso = up  # back from tick 1 on
        clock.finalize(timestamp=params.clock_end(t))
        host.on_finalized(t + T_CLEAR)
        host.deposit_due()
    host.settle()
    # tick 0's offers got no assets (102's buy among them); the rest as with a DSO
    assert posted == [0, 0, 2, 0]
    assert _refused("dsoUnreachable") > before
    offers = clock.get_logs(["OfferPosted"], 0, clock.block_number())
    posters = {str(args["poster"]).lower() for _, args in offers}
    assert _address(102, 0).lower() not in posters
    assert _address(102, 1).lower() in posters
