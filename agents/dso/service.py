"""The DSO's request handling: bootstrap, withdrawals (checked, then issued on chain
together, paced to the node by send_and_wait, in an order shuffled with the
DSO's own random source), and crediting deposits from chain events."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

from agents.chain.client import Call, MarketClient
from agents.common import metrics
from agents.common.config import DsoConfig
from agents.common.errors import ProtocolError
from agents.common.protocol import (
    AssetsAdded,
    BatchResult,
    Bootstrap,
    BootstrapInfo,
    Dispatcher,
    ErrorReply,
    FailedWithdrawal,
    Message,
    WithdrawAssets,
    WithdrawBatch,
    decode,
    encode,
)
from agents.common.rpc import Signer, succeeded
from agents.dso.accounts import Accounts, Grant, Refused

log = logging.getLogger("agents.dso")


@dataclass
class _Pending:
    index: int
    grant: Grant
    calls: list[Call]

    @property
    def request(self) -> WithdrawAssets:
        return self.grant.request


class DsoService:
    """Answers DSO requests: checks with `accounts`, issues with `chain` signed by `signer`."""

    def __init__(
        self,
        config: DsoConfig,
        accounts: Accounts,
        chain: MarketClient,
        signer: Signer,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        # the DSO's own random source: the order of a batch's asset transactions
        # must not tell which anonymous addresses belong to one prosumer (issue 14)
        self.rng = rng if rng is not None else random.SystemRandom()
        self.accounts = accounts
        self.chain = chain
        self.signer = signer
        self.next_block = 0  # first block not yet scanned for deposits
        self.granted = 0
        self.refused = 0

    def dispatcher(self) -> Dispatcher:
        d = Dispatcher()
        d.on(Bootstrap, self.bootstrap)
        d.on(WithdrawAssets, self.withdraw_one)
        d.on(WithdrawBatch, self.withdraw_batch)
        return d

    def bootstrap(self, _msg: Bootstrap) -> BootstrapInfo:
        return BootstrapInfo(
            contract_address=self.config.contract_address,
            chain_id=self.config.chain_id,
            market=self.config.market,
        )

    def withdraw_one(self, msg: WithdrawAssets) -> Message:
        results = self.withdraw_all([msg])
        return results if isinstance(results, ErrorReply) else results[0]

    def withdraw_batch(self, msg: WithdrawBatch) -> Message:
        results = self.withdraw_all(list(msg.requests))
        return results if isinstance(results, ErrorReply) else BatchResult(tuple(results))

    def handle_many(self, frames: list[bytes], dispatcher: Dispatcher) -> list[bytes]:
        """Answer several requests at once (one per frame, in order). All their
        withdrawals are checked in order and their transactions issued together
        (one paced send, order shuffled): hosts asking at the same time wait for
        one round of receipts, not one round each."""
        msgs: list[Message] = []
        for frame in frames:
            try:
                msgs.append(decode(frame))
            except ProtocolError as exc:
                msgs.append(ErrorReply(str(exc)))
        flat = [r for m in msgs for r in _withdrawals(m)]
        combined = self.withdraw_all(flat) if flat else []
        replies: list[Message] = []
        pos = 0
        for m in msgs:
            if isinstance(m, WithdrawAssets | WithdrawBatch):
                n = len(_withdrawals(m))
                if isinstance(combined, ErrorReply):
                    replies.append(combined)
                elif isinstance(m, WithdrawBatch):
                    replies.append(BatchResult(tuple(combined[pos : pos + n])))
                else:
                    replies.append(combined[pos])
                pos += n
            elif isinstance(m, ErrorReply):
                replies.append(m)
            else:
                replies.append(dispatcher.dispatch(m) or ErrorReply("no reply"))
        return [encode(r) for r in replies]

    def withdraw_all(
        self, requests: list[WithdrawAssets]
    ) -> list[AssetsAdded | FailedWithdrawal] | ErrorReply:
        """Check each request in order; issue the granted ones' assets on chain in one
        batch; a request whose transactions reverted is undone and refused."""
        results: list[AssetsAdded | FailedWithdrawal | None] = [None] * len(requests)
        pending: list[_Pending] = []
        for i, req in enumerate(requests):
            if self.accounts.is_duplicate(req):
                results[i] = AssetsAdded(req.anon)
                continue
            try:
                grant = self.accounts.withdraw(req)
            except Refused as exc:
                results[i] = self._refuse(req, str(exc))
                continue
            calls = [
                self.chain.add_energy(req.anon, req.feeder, kind, energy, start, end)
                for kind, energy, start, end in permissions(req)
            ]
            if req.amount:
                calls.append(self.chain.add_financial(req.anon, req.amount))
            pending.append(_Pending(i, grant, calls))
        started = time.perf_counter()
        order = [(i, j) for i, p in enumerate(pending) for j in range(len(p.calls))]
        self.rng.shuffle(order)
        try:
            sent = self.chain.transact([(self.signer, pending[i].calls[j]) for i, j in order])
        except Exception as exc:
            for p in reversed(pending):
                self.accounts.undo(p.grant)
            log.error("issuing assets failed: %s", exc)
            return ErrorReply(f"DSO could not issue assets: {exc}")
        by_call = dict(zip(order, sent, strict=True))
        receipts = [by_call[i, j] for i, p in enumerate(pending) for j in range(len(p.calls))]
        pos = 0
        for p in pending:
            mine = receipts[pos : pos + len(p.calls)]
            pos += len(p.calls)
            if all(succeeded(r) for r in mine):
                metrics.WITHDRAWALS_TOTAL.inc()
                self.granted += 1
                results[p.index] = AssetsAdded(p.request.anon)
            else:
                self.accounts.undo(p.grant)
                failed = next(
                    c.function for c, r in zip(p.calls, mine, strict=True) if not succeeded(r)
                )
                results[p.index] = self._refuse(p.request, f"{failed} reverted on chain")
        log.debug(
            "withdrawals: %d requests, %d transactions in %.2f s",
            len(requests),
            len(receipts),
            time.perf_counter() - started,
        )
        return [r for r in results if r is not None]

    def _refuse(self, req: WithdrawAssets, reason: str) -> FailedWithdrawal:
        metrics.FAILED_WITHDRAWALS_TOTAL.inc()
        self.refused += 1
        log.warning("failedWithdrawal for prosumer %d to %s: %s", req.prosumer, req.anon, reason)
        return FailedWithdrawal(req.anon, reason)

    def poll_deposits(self) -> int:
        """Credit EnergyDeposited/FinancialDeposited events since the last poll."""
        head = self.chain.block_number()
        if head < self.next_block:
            return 0
        events = self.chain.get_logs(
            ["EnergyDeposited", "FinancialDeposited"], self.next_block, head
        )
        self.next_block = head + 1
        credited = 0
        for name, args in events:
            anon = str(args["anon"])
            if name == "EnergyDeposited":
                ok = self.accounts.deposit_energy(
                    anon,
                    int(args["energy"]),
                    int(args["kind"]),
                    int(args["start"]),
                    int(args["end"]),
                )
            else:
                ok = self.accounts.deposit_money(anon, int(args["amount"]))
            if ok:
                credited += 1
            else:
                log.warning("%s from unknown address %s ignored", name, anon)
        return credited


def permissions(req: WithdrawAssets) -> list[tuple[int, int, int, int]]:
    """The on-chain permissions for a checked request: (kind, energy, start, end).

    The contract holds one permission per kind and address, with one range, so
    the assets of one kind are issued together: their total energy over the
    range spanning them (each asset was checked against the trace on its own).
    """
    out = []
    for kind in (0, 1):
        mine = [a for a in req.assets if a.kind == kind]
        if mine:
            out.append(
                (
                    kind,
                    sum(a.energy_wh for a in mine),
                    min(a.start for a in mine),
                    max(a.end for a in mine),
                )
            )
    return out


def _withdrawals(msg: Message) -> tuple[WithdrawAssets, ...]:
    if isinstance(msg, WithdrawBatch):
        return msg.requests
    if isinstance(msg, WithdrawAssets):
        return (msg,)
    return ()
