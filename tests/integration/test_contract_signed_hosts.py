"""Prosumer hosts on the DSO's signed grants (real anvil, the compiled contract, the DSO
service and a host in-process), with the misbehaving prosumers of
test_adversary_prosumer: the DSO sends no transaction at all, every honest offer is posted
with its grant, every misbehaving offer is refused with the same custom error as with
assets issued on chain, and a grant that could not be used goes back to the DSO
(returnGrant: one transaction, as the depositEnergy it replaces).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from agents.chain.client import MarketClient
from agents.chain.contract import deploy_market
from agents.chain.node import Anvil, latest_timestamp
from agents.chain.tx import Sender
from agents.common.actionlog import read
from agents.common.config import DsoConfig, ProsumerHostConfig, parse_config
from agents.common.market import MarketParams
from agents.common.typed import to_plain
from agents.dso.accounts import Accounts
from agents.dso.service import DsoService
from agents.prosumer.host import ProsumerHost
from market.types import Feeder
from tests.integration.test_adversary_prosumer import (
    DSO_PROSUMERS,
    FEEDERS,
    FIRST,
    LAST,
    MISBEHAVIOUR,
    PROSUMERS,
    SECONDS,
    SEED,
    T_CLEAR,
    WINDOW,
    InProcessDso,
    Reports,
    _address,
    _key,
)
from tests.integration.test_contract_workflow import (  # the module's anvil
    anvil_log_on_failure,  # noqa: F401
    node,  # noqa: F401
)

Setup = tuple[ProsumerHost, MarketClient, MarketParams, DsoService]


@pytest.fixture
def signed_setup(node: Anvil, tmp_path: Path) -> Iterator[Setup]:  # noqa: F811
    w3 = node.web3()
    params = MarketParams(
        first_interval=FIRST, last_interval=LAST, prediction_window=WINDOW, t_clear=T_CLEAR,
        interval_seconds=SECONDS, epoch=latest_timestamp(w3),
    )  # fmt: skip
    dso_key = _key("signed-dso")
    address = deploy_market(
        w3,
        Sender(w3, Account.from_key(dso_key)),
        tuple(Feeder(f["id"], f["c_ext"], f["c_int"]) for f in FEEDERS),
        params,
    ).address
    common = {
        "run_id": "signed", "name": "x", "rpc_url": node.url, "contract_address": address,
        "chain_id": 31337, "out_dir": str(tmp_path), "market": to_plain(params),
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
        dso_cfg, Accounts.from_config(dso_cfg), dso_chain, dso_chain.main, grant_key=dso_key
    )
    host_chain = MarketClient.connect(host_cfg)
    clock = MarketClient.connect(host_cfg, _key("signed-clock"))
    host = ProsumerHost(host_cfg, host_chain, InProcessDso(service), Reports())
    try:
        yield host, clock, params, service
    finally:
        for chain in (dso_chain, host_chain, clock):
            chain.close()


def test_hosts_post_with_signed_grants_and_misbehaviour_is_refused_as_before(
    signed_setup: Setup, tmp_path: Path
) -> None:
    host, clock, params, service = signed_setup
    dso = service.signer.address
    dso_nonce = int(clock.rpc.call("eth_getTransactionCount", [dso, "latest"]), 16)
    posted = []
    for t in range(FIRST - T_CLEAR, LAST - T_CLEAR + 1):
        posted.append(host.on_tick(t))
        clock.finalize(timestamp=params.clock_end(t))
        host.on_finalized(t + T_CLEAR)
        host.deposit_due()
    host.settle()
    assert posted == [1, 0, 2, 0]
    # the DSO signed every grant off chain: not one DSO transaction
    assert int(clock.rpc.call("eth_getTransactionCount", [dso, "latest"]), 16) == dso_nonce
    assert service.granted == 6 and len(service.signed) == 6  # 101, 102, 103: two each
    records = read(tmp_path / "behaviour.jsonl")
    attempts = [(r["interval"], r["prosumer"], r["result"])
                for r in records if r["action"] == "post_offer"]  # fmt: skip
    assert attempts == [
        (0, 101, "reverted: InsufficientEnergyAsset"),
        (1, 101, "reverted: InsufficientEnergyAsset"),
        (1, 103, "reverted: RangeFinalized"),
        (2, 104, "reverted: NotLinked"),
    ]
    misbehaving = [_address(101, 0), _address(101, 1), _address(103, 0), _address(104, 0)]
    nonces = [
        int(clock.rpc.call("eth_getTransactionCount", [a, "latest"]), 16) for a in misbehaving
    ]
    assert nonces == [2, 2, 2, 1]  # postSignedOffer (reverted) + returnGrant; 104: no grant
    for state in clock.accounts(misbehaving[:3]):
        assert state.linked and state.sell_energy == state.buy_energy == state.balance == 0
    # what the DSO granted came back: each prosumer's undrawn energy is its whole trace
    # minus what its posted offers used
    assert service.poll_deposits() > 0
    summary = service.accounts.summary()
    assert summary["101"]["undrawn_energy_wh"] == 1_500
    assert summary["103"]["undrawn_energy_wh"] >= 300
