"""What the solver needs from the market contract, over the lean JSON-RPC client.

Reads: feeders(), nextFinalize(), candidate() (its remaining objective), and the
OfferPosted / TradeFinalized events of a block range (typed by agents.chain.events).
Writes: submitSolution(words) signed locally. The gas limit comes from
eth_estimateGas; when the estimate reverts (the solution would be rejected), the
transaction is still sent so that the contract, the judge, records the rejection on
chain where the recorder sees it, and the decoded revert is logged. Its gas limit is
then a bound on what accepting the solution could cost (REVERT_GAS_*), not the whole
block: a flood of rejected solutions must not take a block each.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agents.chain import events as ev
from agents.chain.artifact import abi
from agents.chain.encoding import encode_solution
from agents.chain.errors import ContractRevert, decode_revert
from agents.common.rpc import Contract, JsonRpc, RpcError, Signer, send_and_wait, succeeded
from market.types import Feeder, Offer, Solution, Trade

log = logging.getLogger("agents.solver")

GAS_MARGIN_NUM, GAS_MARGIN_DEN, GAS_MARGIN_ADD = 6, 5, 50_000
# submitSolution costs ~12k gas per trade for small solutions (contracts/README.md)
REVERT_GAS_BASE, REVERT_GAS_PER_TRADE = 300_000, 20_000
READ_EVENTS = ("OfferPosted", "TradeFinalized")


@dataclass(frozen=True)
class Submission:
    """A mined submitSolution transaction; `revert` is the decoded reason when the
    pre-flight estimate reverted (None if it passed)."""

    receipt: dict[str, Any]
    revert: ContractRevert | None

    @property
    def accepted(self) -> bool:
        return succeeded(self.receipt)

    @property
    def gas_used(self) -> int:
        return int(str(self.receipt.get("gasUsed", "0x0")), 16)


class SolverChain:
    """The market contract as one solver sees it."""

    def __init__(self, rpc: JsonRpc, contract_address: str, signer: Signer | None) -> None:
        self.rpc = rpc
        self.contract = Contract(contract_address, abi())
        self.signer = signer
        self._topics = [["0x" + self.contract.event_topics[n].hex() for n in READ_EVENTS]]

    @classmethod
    def connect(
        cls, rpc_url: str, contract_address: str, chain_id: int, private_key: str | None
    ) -> SolverChain:
        rpc = JsonRpc(rpc_url)
        signer = Signer(private_key, chain_id) if private_key else None
        if signer is not None:
            signer.sync_nonce(rpc)
        return cls(rpc, contract_address, signer)

    def close(self) -> None:
        self.rpc.close()

    # --- reads ------------------------------------------------------------------------
    def view(self, fn: str, *args: Any) -> tuple[Any, ...]:
        data = "0x" + self.contract.encode(fn, *args).hex()
        out = self.rpc.call("eth_call", [{"to": self.contract.address, "data": data}, "latest"])
        return self.contract.decode_output(fn, out)

    def block_number(self) -> int:
        return int(self.rpc.call("eth_blockNumber"), 16)

    def feeders(self) -> tuple[Feeder, ...]:
        ids, c_ext, c_int = self.view("feeders")
        return tuple(
            Feeder(int(i), int(e), int(n)) for i, e, n in zip(ids, c_ext, c_int, strict=True)
        )

    def next_finalize(self) -> int:
        return int(self.view("nextFinalize")[0])

    def candidate_remaining(self) -> int:
        """Wh of the candidate's trades in intervals not finalized yet."""
        return int(self.view("candidate")[1])

    def read_events(self, from_block: int, to_block: int) -> tuple[list[Offer], list[Trade]]:
        """Offers posted and trades finalized in blocks from_block..to_block."""
        logs = self.rpc.call(
            "eth_getLogs",
            [
                {
                    "address": self.contract.address,
                    "fromBlock": hex(from_block),
                    "toBlock": hex(to_block),
                    "topics": self._topics,
                }
            ],
        )
        offers: list[Offer] = []
        trades: list[Trade] = []
        for item in logs:
            event = ev.decode_log(item)
            if isinstance(event, ev.OfferPosted):
                offers.append(event.offer)
            elif isinstance(event, ev.TradeFinalized):
                trades.append(event.trade)
        return offers, trades

    # --- writes -----------------------------------------------------------------------
    def submit(self, solution: Solution) -> Submission:
        """Send submitSolution(solution) and wait for its receipt."""
        if self.signer is None:
            raise RpcError("submitSolution", {"message": "the solver has no private key"})
        data = self.contract.encode("submitSolution", encode_solution(solution))
        gas, revert = self._gas(data, len(solution.trades))
        raw = self.signer.sign(self.contract.address, data, gas)
        try:
            (receipt,) = send_and_wait(self.rpc, [raw])
        except RpcError:
            self.signer.sync_nonce(self.rpc)
            raise
        return Submission(receipt, revert)

    def _gas(self, data: bytes, trades: int) -> tuple[int, ContractRevert | None]:
        assert self.signer is not None
        tx = {"from": self.signer.address, "to": self.contract.address, "data": "0x" + data.hex()}
        try:
            estimate = int(self.rpc.call("eth_estimateGas", [tx]), 16)
        except RpcError as exc:
            revert = decode_revert(exc.revert_data, "submitSolution")
            bound = REVERT_GAS_BASE + REVERT_GAS_PER_TRADE * trades
            return min(bound, self._block_gas_limit()), revert
        gas = estimate * GAS_MARGIN_NUM // GAS_MARGIN_DEN + GAS_MARGIN_ADD
        return min(gas, self._block_gas_limit()), None

    def _block_gas_limit(self) -> int:
        block = self.rpc.call("eth_getBlockByNumber", ["latest", False])
        return int(block["gasLimit"], 16)


__all__: Sequence[str] = ("SolverChain", "Submission")
