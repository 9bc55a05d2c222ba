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

from agents.chain.node import Anvil
from agents.common.actionlog import read
from tests.integration.test_adversary_prosumer import (
    FIRST,
    LAST,
    T_CLEAR,
    Market,
    _address,
    market_with_host,
)
from tests.integration.test_contract_workflow import (  # the module's anvil
    anvil_log_on_failure,  # noqa: F401
    node,  # noqa: F401
)


@pytest.fixture
def signed_setup(node: Anvil, tmp_path: Path) -> Iterator[Market]:  # noqa: F811
    with market_with_host(node, tmp_path, "signed", "signed-", signed=True) as market:
        yield market


def test_hosts_post_with_signed_grants_and_misbehaviour_is_refused_as_before(
    signed_setup: Market, tmp_path: Path
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
