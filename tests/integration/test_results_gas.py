"""summary.json's gas by function (orchestrator.results.gas) on a real anvil with the
compiled market contract: the read from receipts and traces gives exactly what the
read of every full block gives (`gas_from_full_blocks`, the method before it).

The chain holds what a run's chain may: the contract's creation, calls that succeed
and calls that revert (mined: sent with a fixed gas limit), a selector the contract
does not have, calls to another address (not counted when the contract is given),
several transactions in one block, and empty blocks. The recorder's tally of the
blocks it read during the run, plus the blocks after them, is the same again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from agents.chain.artifact import abi
from agents.chain.contract import deploy_market
from agents.chain.node import Anvil, latest_timestamp
from agents.chain.tx import Sender
from agents.common.market import MarketParams
from agents.common.rpc import JsonRpc, Signer, send_and_wait
from agents.recorder.follower import ChainFollower
from agents.recorder.gas import GAS_FILE, GasCounter, write_gas
from market.types import Feeder
from orchestrator.results.gas import (
    function_selectors,
    gas_by_function,
    gas_from_full_blocks,
    gas_of_run,
)
from tests.conftest import require_tool

GAS = 300_000
UNKNOWN = bytes.fromhex("deadbeef")
OTHER = "0x" + "11" * 20


@pytest.fixture(scope="module")
def chain() -> Iterator[tuple[Anvil, str]]:
    require_tool("anvil")
    with Anvil() as node:
        w3 = node.web3()
        params = MarketParams(
            first_interval=1,
            last_interval=4,
            t_clear=1,
            interval_seconds=3600,
            epoch=latest_timestamp(w3) + 3600,
        )
        feeders = [Feeder(1, 5_000, 5_000)]
        market = deploy_market(w3, Sender(w3, Account.create()), feeders, params)
        yield node, market.address


def _calls(contract: str, signer: Signer, per_function: int) -> list[bytes]:
    """`per_function` calls of every function: those without arguments succeed (they
    are views), the others revert (their selector alone: no arguments to decode);
    and of a selector the contract lacks."""
    data = [bytes.fromhex(s[2:]) for s in function_selectors(abi())]
    return [signer.sign(contract, d, GAS) for d in [*data, UNKNOWN] for _ in range(per_function)]


def _fill(rpc: JsonRpc, contract: str, signer: Signer) -> list[bytes]:
    """Calls to the contract (a block each, then many in one block), calls to
    another address and empty blocks; the calls of the last block."""
    send_and_wait(rpc, _calls(contract, signer, 3))  # automine: a block each
    send_and_wait(rpc, [signer.sign(OTHER, b"\x01\x02\x03\x04", GAS) for _ in range(3)])
    rpc.call("evm_mine")  # empty blocks, as the clock's kicks
    rpc.call("evm_mine")
    rpc.call("evm_setAutomine", [False])  # then several transactions in one block
    try:
        raws = _calls(contract, signer, 2)
        for raw in raws:
            rpc.call("eth_sendRawTransaction", ["0x" + raw.hex()])
        rpc.call("evm_mine")
    finally:
        rpc.call("evm_setAutomine", [True])
    block = rpc.call("eth_getBlockByNumber", ["latest", False])
    assert len(block["transactions"]) == len(raws)
    return raws


def test_receipts_and_traces_count_what_every_full_block_counts(chain: tuple[Anvil, str]) -> None:
    node, contract = chain
    rpc = JsonRpc(node.url)
    signer = Signer(Account.create().key, node.chain_id)
    raws = _fill(rpc, contract, signer)

    gas = gas_by_function(node.url, contract)
    assert gas == gas_from_full_blocks(node.url, contract)
    assert gas_by_function(node.url) == gas_from_full_blocks(node.url)  # every call counted
    names = set(function_selectors(abi()).values())
    assert gas["constructor"]["count"] == 1 and gas["unknown"]["count"] == 5
    assert gas["unknown"]["reverted"] == 5  # the contract has no fallback
    assert {"constructor", "unknown"} | names >= set(gas)
    assert sum(g["count"] for g in gas.values()) == 1 + len(raws) // 2 * 5
    assert gas["offerCount"]["reverted"] == 0 and gas["postOffer"]["reverted"] == 5
    assert gas_by_function(node.url)["unknown"]["count"] == 5 + 3  # the other address too


def test_the_recorders_tally_and_the_blocks_after_it_are_the_whole_chain(
    chain: tuple[Anvil, str], tmp_path: Path
) -> None:
    node, contract = chain
    rpc = JsonRpc(node.url)
    signer = Signer(Account.create().key, node.chain_id)
    _fill(rpc, contract, signer)
    counter = GasCounter(rpc, function_selectors(abi()), contract)
    follower = ChainFollower(rpc, contract, gas=counter)
    while follower.next_block <= int(rpc.call("eth_blockNumber"), 16):
        follower.poll()
    assert counter.tally.as_dict() == gas_from_full_blocks(node.url, contract)
    recorded = tmp_path / GAS_FILE
    write_gas(recorded, contract, follower.next_block, counter.tally)
    _fill(rpc, contract, signer)  # after the recorder stopped: read at the end
    whole = gas_from_full_blocks(node.url, contract)
    assert whole != counter.tally.as_dict()
    assert gas_of_run(node.url, contract, recorded) == whole
    assert gas_of_run(node.url, contract, tmp_path / "none.json") == whole  # no tally
    write_gas(recorded, OTHER, follower.next_block, counter.tally)  # another run's
    assert gas_of_run(node.url, contract, recorded) == whole
