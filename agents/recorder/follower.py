"""Follow the chain block by block and turn the market contract's events into rows.

Each `poll()` reads the blocks mined since the last one (at most MAX_BLOCKS_PER_POLL),
stamps them with the wall-clock time at which they were first seen, and returns the
rows of their events in chain order (block, transaction index, log index):
- OfferPosted -> OfferRow; SolutionAccepted -> SolutionRow("accepted");
  TradeFinalized -> TradeRow; IntervalFinalized -> FinalizationRow;
- a mined but reverted submitSolution transaction -> SolutionRow("rejected"), its
  trades decoded from the transaction input (visible because solvers send with a
  fixed gas limit instead of dropping what eth_estimateGas refuses).
Everything comes from the chain alone: no agent tells the recorder anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from agents.chain import events as ev
from agents.chain.encoding import decode_trade
from agents.common.abi import decode as abi_decode
from agents.common.abi import selector
from agents.common.errors import AgentError
from agents.common.metrics import BLOCK_TRANSACTIONS
from agents.common.rpc import JsonRpc, RpcError
from agents.recorder.records import (
    BlockStamp,
    FinalizationRow,
    OfferRow,
    Row,
    SolutionRow,
    TradeRow,
)

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


class ChainFollower:
    """Reads new blocks and events of one contract; remembers offers (for trade feeders)."""

    def __init__(
        self,
        rpc: JsonRpc,
        contract_address: str,
        *,
        start_block: int = 0,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.rpc = rpc
        self.contract_address = contract_address
        self.address = contract_address.lower()
        self.next_block = start_block
        self.clock_ms = clock_ms
        self.offer_feeders: dict[int, int] = {}

    def poll(self) -> list[Row]:
        """Rows of the blocks mined since the previous poll (empty if none)."""
        head = _hex(self.rpc.call("eth_blockNumber"))
        if head < self.next_block:
            return []
        first, last = self.next_block, min(head, self.next_block + MAX_BLOCKS_PER_POLL - 1)
        seen_ms = self.clock_ms()
        blocks = self.rpc.batch(
            [("eth_getBlockByNumber", [hex(n), True]) for n in range(first, last + 1)]
        )
        logs = self.rpc.call(
            "eth_getLogs",
            [{"address": self.contract_address, "fromBlock": hex(first), "toBlock": hex(last)}],
        )
        stamps: dict[int, int] = {}
        submissions: list[Mapping[str, Any]] = []
        for block in blocks:
            if isinstance(block, RpcError):
                raise block
            if not isinstance(block, dict):  # below the head, so it must exist
                raise RpcError("eth_getBlockByNumber", {"message": "block not found"})
            stamps[_hex(block["number"])] = _hex(block["timestamp"])
            BLOCK_TRANSACTIONS.observe(len(block["transactions"]))
            submissions.extend(self._submissions(block["transactions"]))
        receipts = self._receipts(submissions)
        keyed: list[tuple[tuple[int, int, int], Row]] = []
        for log in logs:
            row = self._row_from_log(log, stamps, receipts, seen_ms)
            if row is not None:
                key = (
                    _hex(log["blockNumber"]),
                    _hex(log["transactionIndex"]),
                    _hex(log["logIndex"]),
                )
                keyed.append((key, row))
        for tx in submissions:
            receipt = receipts.get(str(tx["hash"]))
            if receipt is not None and _hex(receipt.get("status", "0x1")) == 0:
                block = _hex(tx["blockNumber"])
                key = (block, _hex(tx["transactionIndex"]), -1)
                keyed.append((key, self._rejected(tx, receipt, stamps[block], seen_ms)))
        keyed.sort(key=lambda item: item[0])
        self.next_block = last + 1
        return [row for _, row in keyed]

    # --- helpers ---------------------------------------------------------------------
    def _submissions(self, txs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        out = []
        for tx in txs:
            to = str(tx.get("to") or "").lower()
            data = str(tx.get("input") or tx.get("data") or "")
            if to == self.address and data[2:10].lower() == SUBMIT_SELECTOR.hex():
                out.append(tx)
        return out

    def _receipts(self, txs: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
        replies = self.rpc.batch([("eth_getTransactionReceipt", [tx["hash"]]) for tx in txs])
        out: dict[str, Mapping[str, Any]] = {}
        for tx, receipt in zip(txs, replies, strict=True):
            if isinstance(receipt, dict):
                out[str(tx["hash"])] = receipt
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
