"""The DSO's request handling: bootstrap, withdrawals, and crediting deposits from chain
events.

A checked withdrawal to an address the DSO has not granted anything before is answered
with a grant signed off chain (agents.chain.encoding.SignedGrant, EIP-712, when the
service has the DSO's key `grant_key`): no DSO transaction at all; the address posts its
first offer with it (postSignedOffer), which applies it on chain once. Any other
withdrawal is issued on chain in batched `issue` calls of up to ISSUE_REQUESTS requests,
paced to the node by send_and_wait, requests and grants in an order shuffled with the
DSO's own random source."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

from agents.chain.client import Call, MarketClient
from agents.chain.encoding import MONEY, SignedGrant
from agents.chain.encoding import Grant as ChainGrant
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


# Requests per issue() call: one transaction for many addresses (one 21k base, and the
# node mines a few large transactions instead of thousands), well inside a block.
ISSUE_REQUESTS = 100


@dataclass
class _Pending:
    index: int
    grant: Grant
    grants: list[ChainGrant]

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
        grant_key: str | None = None,
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
        self.grant_key = grant_key  # None: every withdrawal is issued on chain
        self.signed: dict[WithdrawAssets, str] = {}  # request -> its signed grant (hex)

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
                results[i] = AssetsAdded(req.anon, self.signed.get(req, ""))
                continue
            fresh = req.anon.lower() not in self.accounts.owner
            try:
                grant = self.accounts.withdraw(req)
            except Refused as exc:
                results[i] = self._refuse(req, str(exc))
                continue
            if fresh and self.grant_key is not None:
                results[i] = self._sign(req)
            else:
                pending.append(_Pending(i, grant, chain_grants(req)))
        started = time.perf_counter()
        try:
            failed, sent = self._issue(pending)
        except Exception as exc:
            for p in reversed(pending):
                self.accounts.undo(p.grant)
            log.error("issuing assets failed: %s", exc)
            return ErrorReply(f"DSO could not issue assets: {exc}")
        for p in pending:
            if id(p) not in failed:
                metrics.WITHDRAWALS_TOTAL.inc()
                self.granted += 1
                results[p.index] = AssetsAdded(p.request.anon)
            else:
                self.accounts.undo(p.grant)
                results[p.index] = self._refuse(p.request, "issue reverted on chain")
        log.debug(
            "withdrawals: %d requests, %d transactions in %.2f s",
            len(requests),
            sent,
            time.perf_counter() - started,
        )
        return [r for r in results if r is not None]

    def _sign(self, req: WithdrawAssets) -> AssetsAdded:
        """The checked request's assets as a grant signed for its address, off chain."""
        assert self.grant_key is not None
        perms = {kind: (energy, start, end) for kind, energy, start, end in permissions(req)}
        grant = SignedGrant(
            req.anon, req.feeder, perms.get(0, (0, 0, 0)), perms.get(1, (0, 0, 0)), req.amount
        ).signed(self.grant_key, self.config.chain_id, self.config.contract_address)
        self.signed[req] = grant.hex()
        metrics.WITHDRAWALS_TOTAL.inc()
        self.granted += 1
        return AssetsAdded(req.anon, self.signed[req])

    def _issue(self, pending: list[_Pending]) -> tuple[set[int], int]:
        """Issue every request's grants in batched calls; a call that reverts (any grant in
        it refused) is retried one request per call, so only the refused requests fail.
        Returns the ids of the failed _Pending and the number of transactions sent."""
        order = list(pending)
        self.rng.shuffle(order)
        chunks = [order[i : i + ISSUE_REQUESTS] for i in range(0, len(order), ISSUE_REQUESTS)]
        receipts = self.chain.transact([(self.signer, self._call(c)) for c in chunks])
        retry = [p for c, r in zip(chunks, receipts, strict=True) if not succeeded(r) for p in c]
        if not retry:
            return set(), len(chunks)
        log.warning("an issue() batch reverted: issuing its %d requests one by one", len(retry))
        alone = self.chain.transact([(self.signer, self._call([p])) for p in retry])
        failed = {id(p) for p, r in zip(retry, alone, strict=True) if not succeeded(r)}
        return failed, len(chunks) + len(retry)

    def _call(self, chunk: list[_Pending]) -> Call:
        grants = [g for p in chunk for g in p.grants]
        self.rng.shuffle(grants)
        return self.chain.issue(grants)

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


def chain_grants(req: WithdrawAssets) -> list[ChainGrant]:
    """The issue() grants of a checked request: its permissions and its money."""
    grants = [
        ChainGrant(req.anon, kind, energy, req.feeder, start, end)
        for kind, energy, start, end in permissions(req)
    ]
    if req.amount:
        grants.append(ChainGrant(req.anon, MONEY, req.amount))
    return grants


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
