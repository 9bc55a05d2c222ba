"""Follow the chain block by block and turn the market contract's events into rows.

Each `poll()` reads the blocks mined since the last one (at most MAX_BLOCKS_PER_POLL:
their headers and receipts), stamps them with the wall-clock time at which they were
first seen, and returns the rows of their events in chain order (block, transaction
index, log index):
- OfferPosted -> OfferRow; SolutionAccepted -> SolutionRow("accepted");
  TradeFinalized -> TradeRow; IntervalFinalized -> FinalizationRow;
- a mined but reverted submitSolution transaction -> SolutionRow("rejected"), its
  trades decoded from the transaction input (visible because solvers send with a
  fixed gas limit instead of dropping what eth_estimateGas refuses).
Everything comes from the chain alone: no agent tells the recorder anything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.chain import events as ev
from agents.chain.encoding import decode_trade
from agents.common.abi import decode as abi_decode
from agents.common.abi import selector
from agents.common.errors import AgentError
from agents.common.metrics import BLOCK_TRANSACTIONS
from agents.common.rpc import JsonRpc, RpcError
from agents.recorder.gas import GasCounter
from agents.recorder.records import (
    BlockStamp,
    FinalizationRow,
    OfferRow,
    Row,
    SolutionRow,
    TradeRow,
)

log = logging.getLogger("agents.recorder")

MAX_BLOCKS_PER_POLL = 500
SUBMIT_SELECTOR = selector("submitSolution(uint256[])")
KIND_NAMES = {0: "sell", 1: "buy"}


def _offer_ids(words: Iterable[int]) -> frozenset[int]:
    ids: set[int] = set()
    for w in words:
        t = decode_trade(int(w))
        ids.update((t.seller, t.buyer))
    return frozenset(ids)


def _hex(value: Any) -> int:
    return int(str(value), 16)


def _ours(log: Mapping[str, Any], address: str) -> bool:
    """A log emitted by the contract itself (not by a contract it called)."""
    return str(log.get("address") or "").lower() == address


@dataclass
class _Blocks:
    """What one poll read: block timestamps, the contract's logs, the receipts of
    transactions to the contract (by hash) and which of those reverted."""

    stamps: dict[int, int] = field(default_factory=dict)
    logs: list[Mapping[str, Any]] = field(default_factory=list)
    receipts: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    reverted: list[str] = field(default_factory=list)
    gas: list[tuple[str, int, bool]] = field(default_factory=list)  # (function, gas, ok)


class ChainFollower:
    """Reads new blocks and events of one contract; remembers offers (for trade feeders)."""

    def __init__(
        self,
        rpc: JsonRpc,
        contract_address: str,
        *,
        start_block: int = 0,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        gas: GasCounter | None = None,
    ) -> None:
        self.rpc = rpc
        self.contract_address = contract_address
        self.address = contract_address.lower()
        self.next_block = start_block
        self.clock_ms = clock_ms
        self.offer_feeders: dict[int, int] = {}
        self.gas = gas  # counts every block's transactions to the contract as it reads

    def poll(self) -> list[Row]:
        """Rows of the blocks mined since the previous poll (empty if none)."""
        head = _hex(self.rpc.call("eth_blockNumber"))
        if head < self.next_block:
            return []
        first, last = self.next_block, min(head, self.next_block + MAX_BLOCKS_PER_POLL - 1)
        seen_ms = self.clock_ms()
        blocks = self._read_blocks(first, last)
        keyed: list[tuple[tuple[int, int, int], Row]] = []
        for log in blocks.logs:
            row = self._row_from_log(log, blocks.stamps, blocks.receipts, seen_ms)
            if row is not None:
                key = (
                    _hex(log["blockNumber"]),
                    _hex(log["transactionIndex"]),
                    _hex(log["logIndex"]),
                )
                keyed.append((key, row))
        for tx in self._submissions(self._transactions(blocks.reverted)):
            block = _hex(tx["blockNumber"])
            key = (block, _hex(tx["transactionIndex"]), -1)
            receipt = blocks.receipts[str(tx["hash"])]
            keyed.append((key, self._rejected(tx, receipt, blocks.stamps[block], seen_ms)))
        keyed.sort(key=lambda item: item[0])
        if self.gas is not None:  # with next_block: a poll that fails counts nothing
            self.gas.add(blocks.gas)
        self.next_block = last + 1
        return [row for _, row in keyed]

    def _read_blocks(self, first: int, last: int) -> _Blocks:
        """Headers (with transaction hashes) and every receipt of blocks first..last.

        Never the full transactions: anvil recovers each one's sender to serve it
        (~0.2 ms of node CPU per transaction, a third of what mining a transfer
        costs and ten times what its receipt costs). Only a reverted call to the
        contract is read in full later, to see whether it was a submitSolution.
        """
        numbers = [hex(n) for n in range(first, last + 1)]
        replies = self.rpc.batch(
            [("eth_getBlockByNumber", [n, False]) for n in numbers]
            + [("eth_getBlockReceipts", [n]) for n in numbers]
        )
        out = _Blocks()
        for block, receipts in zip(replies[: len(numbers)], replies[len(numbers) :], strict=True):
            for item in (block, receipts):
                if isinstance(item, RpcError):
                    raise item
            if not isinstance(block, dict) or not isinstance(receipts, list):
                raise RpcError("eth_getBlockByNumber", {"message": "block not found"})
            out.stamps[_hex(block["number"])] = _hex(block["timestamp"])
            BLOCK_TRANSACTIONS.observe(len(block["transactions"]))
            for receipt in receipts:
                out.logs.extend(log for log in receipt["logs"] if _ours(log, self.address))
                if str(receipt.get("to") or "").lower() == self.address:
                    out.receipts[str(receipt["transactionHash"])] = receipt
                    if _hex(receipt.get("status", "0x1")) == 0:
                        out.reverted.append(str(receipt["transactionHash"]))
        if self.gas is not None:  # and their function selectors, from the blocks' traces
            try:
                out.gas = self.gas.transactions(replies[len(numbers) :])
            except RpcError as exc:  # the events matter more: the end reads the gas instead
                log.warning("no gas tally (%s): the orchestrator reads it at the end", exc)
                self.gas = None
        return out

    # --- helpers ---------------------------------------------------------------------
    def _transactions(self, hashes: Sequence[str]) -> list[Mapping[str, Any]]:
        replies = self.rpc.batch([("eth_getTransactionByHash", [h]) for h in hashes])
        for reply in replies:
            if isinstance(reply, RpcError):
                raise reply
        return [tx for tx in replies if isinstance(tx, dict)]

    def _submissions(self, txs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        out = []
        for tx in txs:
            to = str(tx.get("to") or "").lower()
            data = str(tx.get("input") or tx.get("data") or "")
            if to == self.address and data[2:10].lower() == SUBMIT_SELECTOR.hex():
                out.append(tx)
        return out

    def _stamp(self, log: Mapping[str, Any], stamps: Mapping[int, int], seen_ms: int) -> BlockStamp:
        block = _hex(log["blockNumber"])
        return BlockStamp(block, seen_ms, stamps.get(block, 0), str(log["transactionHash"]))

    def _row_from_log(
        self,
        log: Mapping[str, Any],
        stamps: Mapping[int, int],
        receipts: Mapping[str, Mapping[str, Any]],
        seen_ms: int,
    ) -> Row | None:
        event = ev.decode_log(log)
        if event is None:
            return None
        stamp = self._stamp(log, stamps, seen_ms)
        if isinstance(event, ev.OfferPosted):
            self.offer_feeders[event.offer_id] = event.feeder
            return OfferRow(
                offer_id=event.offer_id,
                feeder=event.feeder,
                kind=KIND_NAMES[int(event.kind)],
                energy_wh=event.energy,
                start=event.start,
                end=event.end,
                price=event.price,
                poster=event.poster,
                stamp=stamp,
            )
        if isinstance(event, ev.SolutionAccepted):
            receipt = receipts.get(stamp.tx_hash, {})
            return SolutionRow(
                result="accepted",
                candidate_id=event.candidate_id,
                submitter=event.submitter,
                objective_wh=event.objective,
                trades=event.trade_count,
                offers=_offer_ids(event.trades),
                gas_used=_hex(receipt.get("gasUsed", "0x0")),
                stamp=stamp,
            )
        if isinstance(event, ev.TradeFinalized):
            return TradeRow(
                interval=event.interval,
                seller=event.seller,
                buyer=event.buyer,
                energy_wh=event.energy,
                price=event.price,
                seller_feeder=self.offer_feeders.get(event.seller),
                buyer_feeder=self.offer_feeders.get(event.buyer),
                stamp=stamp,
            )
        if isinstance(event, ev.IntervalFinalized):
            return FinalizationRow(
                interval=event.interval,
                candidate_id=event.candidate_id,
                trades=event.trade_count,
                energy_wh=event.energy,
                stamp=stamp,
            )
        return None

    def _rejected(
        self,
        tx: Mapping[str, Any],
        receipt: Mapping[str, Any],
        block_timestamp: int,
        seen_ms: int,
    ) -> SolutionRow:
        data = bytes.fromhex(str(tx.get("input") or tx.get("data"))[2:])
        words: list[int] | None
        try:
            words = [int(w) for w in abi_decode(["uint256[]"], data[4:])[0]]
        except (AgentError, ValueError, IndexError):  # malformed calldata: still a rejection
            words = None
        stamp = BlockStamp(_hex(tx["blockNumber"]), seen_ms, block_timestamp, str(tx["hash"]))
        return SolutionRow(
            result="rejected",
            candidate_id=None,
            submitter=str(tx["from"]),
            objective_wh=None if words is None else sum(decode_trade(w).energy for w in words),
            trades=0 if words is None else len(words),
            offers=frozenset() if words is None else _offer_ids(words),
            gas_used=_hex(receipt.get("gasUsed", "0x0")),
            stamp=stamp,
        )
