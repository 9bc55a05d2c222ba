"""A prosumer host: several prosumers in one process, driven by the clock's messages.

On tick(t): for every prosumer, the offers entering the prediction window are
grouped into anonymous addresses (plan.py); one `withdrawBatch` asks the DSO for
their assets; the granted offers are posted with `postOffer`, all signed locally
and sent in JSON-RPC batches; then `posted` goes to the clock.
After finalized(i), when idle: every address whose offers all end <= i closes them
(`closeOffer`: untraded energy back to the DSO, buy reservations released),
returns unused permissions (`depositEnergy`) and its money (`depositFinancial`).
After the last interval it reports `settled`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from agents.common import metrics
from agents.common.chainclient import Call, MarketClient
from agents.common.config import ProsumerHostConfig
from agents.common.errors import ProtocolError
from agents.common.protocol import (
    AssetsAdded,
    BatchResult,
    FailedWithdrawal,
    Message,
    Posted,
    Settled,
    WithdrawBatch,
)
from agents.common.rpc import Signer, succeeded
from agents.prosumer.plan import AddressBatch, ProsumerPlan, anon_secret, offer_price

log = logging.getLogger("agents.prosumer")

TX_CHUNK = 256  # transactions per JSON-RPC batch


@dataclass
class AnonAddress:
    batch: AddressBatch
    signer: Signer
    offer_ids: list[int] = field(default_factory=list)
    closed: bool = False


class Requests(Protocol):
    def request(self, msg: Message) -> Message: ...


class Sends(Protocol):
    def send(self, msg: Message) -> None: ...


class ProsumerHost:
    """State and reactions of one host; sockets are passed in (tests use real ones)."""

    def __init__(
        self,
        config: ProsumerHostConfig,
        chain: MarketClient,
        dso: Requests,
        report: Sends,
    ) -> None:
        self.config = config
        self.market = config.market
        self.chain = chain
        self.dso = dso
        self.report = report
        self.plans = [ProsumerPlan(spec) for spec in config.prosumers]
        self.live: list[AnonAddress] = []
        self.last_tick: int | None = None
        self.last_finalized = self.market.first_interval - 1
        self.settled = False
        self.posted_total = 0
        self.refused_total = 0

    # --- tick: withdraw, post ------------------------------------------------------
    def on_tick(self, t: int) -> int | None:
        """Handle tick t once (repeats are ignored); returns offers posted or None."""
        if self.last_tick is not None and t <= self.last_tick:
            return None
        self.last_tick = t
        m = self.market
        chain_id = self.chain.chain_id
        batches = [
            b
            for plan in self.plans
            for b in plan.batches(
                plan.due(t, m.prediction_window, m.t_clear, m.first_interval, m.last_interval),
                self.config.address_rotation,
            )
        ]
        addresses = [
            AnonAddress(b, Signer(anon_secret(self.config.seed, b.prosumer, b.counter), chain_id))
            for b in batches
        ]
        started = time.perf_counter()
        granted = self._withdraw(addresses)
        withdrawn = time.perf_counter()
        posted = self._post(granted)
        self.live.extend(granted)
        self.posted_total += posted
        self.report.send(Posted(t, self.config.name, posted))
        log.info(
            "tick %d: %d offers posted from %d addresses (%d refused); "
            "withdraw %.2f s, post %.2f s",
            t,
            posted,
            len(granted),
            len(addresses) - len(granted),
            withdrawn - started,
            time.perf_counter() - withdrawn,
        )
        return posted

    def _withdraw(self, addresses: list[AnonAddress]) -> list[AnonAddress]:
        if not addresses:
            return []
        prices = self.config.prices
        request = WithdrawBatch(
            tuple(a.batch.withdrawal(a.signer.address, prices) for a in addresses)
        )
        reply = self.dso.request(request)
        if not isinstance(reply, BatchResult) or len(reply.results) != len(addresses):
            raise ProtocolError(f"DSO answered withdrawBatch with {reply}")
        granted = []
        for addr, result in zip(addresses, reply.results, strict=True):
            if isinstance(result, AssetsAdded):
                granted.append(addr)
            elif isinstance(result, FailedWithdrawal):
                self.refused_total += 1
                log.warning(
                    "failedWithdrawal for prosumer %d (%d offers): %s",
                    addr.batch.prosumer,
                    len(addr.batch.offers),
                    result.reason,
                )
        return granted

    def _post(self, granted: list[AnonAddress]) -> int:
        prices = self.config.prices
        calls: list[tuple[AnonAddress, Call]] = [
            (
                a,
                self.chain.post_offer(
                    int(o.kind), o.energy, o.start, o.end, offer_price(o, prices)
                ),
            )
            for a in granted
            for o in a.batch.offers
        ]
        posted = 0
        for chunk in _chunks(calls, TX_CHUNK):
            receipts = self.chain.transact([(a.signer, c) for a, c in chunk])
            for (addr, _), receipt in zip(chunk, receipts, strict=True):
                events = self.chain.events(receipt, "OfferPosted") if succeeded(receipt) else []
                if not events:
                    log.warning("postOffer from %s reverted", addr.signer.address)
                    continue
                addr.offer_ids.append(int(events[0]["offerId"]))
                posted += 1
        metrics.OFFERS_POSTED_TOTAL.inc(posted)
        return posted

    # --- finalized: close and deposit --------------------------------------------
    def on_finalized(self, interval: int) -> None:
        """Note that delivery interval `interval` is final (deposits come later)."""
        self.last_finalized = max(self.last_finalized, interval)

    def deposits_due(self) -> list[AnonAddress]:
        return [
            a for a in self.live if not a.closed and a.batch.last_interval <= self.last_finalized
        ]

    def deposit_due(self) -> int:
        """Close and deposit every address whose offers all end <= the last finalized
        interval. Called when idle: the next tick's offers go first, deposits
        then overlap with the solvers' work."""
        due = self.deposits_due()
        if due:
            self._close_and_deposit(due)
        return len(due)

    def _close_and_deposit(self, due: list[AnonAddress]) -> None:
        closes = [(a.signer, self.chain.close_offer(i)) for a in due for i in a.offer_ids]
        for chunk in _chunks(closes, TX_CHUNK):
            for receipt in self.chain.transact(chunk):
                if not succeeded(receipt):
                    log.warning("closeOffer reverted (%s)", receipt["transactionHash"])
        states = self.chain.accounts([a.signer.address for a in due])
        deposits: list[tuple[Signer, Call]] = []
        for addr, state in zip(due, states, strict=True):
            if state.sell_energy:
                deposits.append((addr.signer, self.chain.deposit_energy(0, state.sell_energy)))
            if state.buy_energy:
                deposits.append((addr.signer, self.chain.deposit_energy(1, state.buy_energy)))
            if state.balance:
                deposits.append((addr.signer, self.chain.deposit_financial(state.balance)))
            addr.closed = True
        for chunk in _chunks(deposits, TX_CHUNK):
            for receipt in self.chain.transact(chunk):
                if not succeeded(receipt):
                    log.warning("deposit reverted (%s)", receipt["transactionHash"])
        self.live = [a for a in self.live if not a.closed]

    def settle(self) -> None:
        """After the last interval: deposit everything left, report `settled` once."""
        if self.settled:
            return
        rest = [a for a in self.live if not a.closed]
        if rest:
            self._close_and_deposit(rest)
        self.settled = True
        self.report.send(Settled(self.config.name))
        log.info(
            "settled: %d offers posted, %d withdrawals refused",
            self.posted_total,
            self.refused_total,
        )


T = TypeVar("T")


def _chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
