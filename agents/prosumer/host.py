"""A prosumer host: several prosumers in one process, driven by the clock's messages.

On tick(t): for every prosumer, the offers entering the prediction window are
grouped into anonymous addresses (plan.py); one `withdrawBatch` asks the DSO for
their assets; the granted offers are posted with `postOffer`, all signed locally
and sent in JSON-RPC batches; then `posted` goes to the clock.
An address's assets come as a grant the DSO signed off chain (posted with its first offer,
postSignedOffer) or issued by the DSO on chain.
After finalized(i), when idle: every address whose offers all end <= i closes those the
clock has not closed already (the clock's batched `closeOffers` also deposits an address's
permissions and money once none of its offers is open; `closeOffer`: untraded energy back
to the DSO, buy reservations released), returns unused permissions (`depositEnergy`) and
its money (`depositFinancial`) if anything is left, and gives back a signed grant it could
not use (`returnGrant`: its offer was refused).
After the last interval it reports `settled`.

Misbehaving prosumers (config `misbehaviour`, agents.prosumer.misbehave) post offers the
contract must refuse; each attempt and its revert go to behaviour.jsonl and to
`testbed_offers_refused_total{reason}`, and the host's other prosumers are served as
usual (their offers are in the same batches; a reverted transaction affects only itself).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from agents.chain.client import Call, MarketClient
from agents.chain.encoding import SignedGrant
from agents.chain.errors import decode_revert
from agents.common import metrics
from agents.common.actionlog import ActionLog
from agents.common.config import ProsumerHostConfig
from agents.common.errors import PeerTimeout, ProtocolError
from agents.common.protocol import (
    AssetsAdded,
    BatchResult,
    FailedWithdrawal,
    Message,
    Posted,
    Settled,
    WithdrawBatch,
)
from agents.common.rpc import RpcError, Signer, succeeded
from agents.prosumer import misbehave
from agents.prosumer.plan import AddressBatch, ProsumerPlan, anon_secret, offer_price

log = logging.getLogger("agents.prosumer")

TX_CHUNK = 256  # transactions per JSON-RPC batch
DROPPED_FILE = "dropped.jsonl"  # offers this host could not post (summary.json dropped_offers)


@dataclass
class AnonAddress:
    batch: AddressBatch
    signer: Signer
    offer_ids: list[int] = field(default_factory=list)
    closed: bool = False
    misbehaviour: str | None = None  # the prosumer's action at this tick, if any
    refused: str | None = None  # the DSO's failedWithdrawal reason
    grant: SignedGrant | None = None  # the DSO's signed grant, posted with the first offer


@dataclass(frozen=True)
class Attempt:
    """One postOffer to send: from `addr`, with `args` (distorted if misbehaving)."""

    addr: AnonAddress
    call: Call
    args: misbehave.PostArgs


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
        self.actions = ActionLog(config.out_dir, config.name)
        self.misbehaving: dict[int, str] = {}  # prosumer -> action at the last tick
        self.generation = next_generation(config.out_dir)
        self.key_secret = bytes.fromhex(config.key_secret)  # checked by the config
        if self.generation:
            log.warning(
                "restarted (start %d in this run): new anonymous addresses", self.generation + 1
            )

    # --- tick: withdraw, post ------------------------------------------------------
    def on_tick(self, t: int) -> int | None:
        """Handle tick t once (repeats are ignored); returns offers posted or None."""
        if self.last_tick is not None and t <= self.last_tick:
            return None
        self.last_tick = t
        self._switch(t)
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
            AnonAddress(
                b,
                Signer(
                    anon_secret(
                        self.config.seed, b.prosumer, b.counter, self.generation, self.key_secret
                    ),
                    chain_id,
                ),
                misbehaviour=self.misbehaving.get(b.prosumer),
            )
            for b in batches
        ]
        started = time.perf_counter()
        self._sync_nonces([a.signer for a in addresses])
        granted = self._withdraw(addresses)
        withdrawn = time.perf_counter()
        # a misbehaving prosumer tries on chain even without assets
        refused = [a for a in addresses if a.misbehaviour and a.refused is not None]
        posted = self._post(granted + refused, t)
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

    def _sync_nonces(self, signers: list[Signer]) -> None:
        """Each new address's nonce from the chain (one batch): addresses derive from
        the run's secret and seed, so a restarted host meets addresses it already used."""
        counts = self.chain.rpc.batch(
            [("eth_getTransactionCount", [s.address, "pending"]) for s in signers]
        )
        for signer, count in zip(signers, counts, strict=True):
            if isinstance(count, RpcError):
                raise count
            signer.nonce = int(count, 16)

    def _withdraw(self, addresses: list[AnonAddress]) -> list[AnonAddress]:
        if not addresses:
            return []
        prices = self.config.prices
        request = WithdrawBatch(
            tuple(a.batch.withdrawal(a.signer.address, prices) for a in addresses)
        )
        try:
            reply = self.dso.request(request)
        except PeerTimeout as exc:
            # the DSO is down or cut off: this tick's offers cannot get assets; the host
            # carries on (the next tick asks again on a fresh socket)
            for addr in addresses:
                addr.refused = "DSO unreachable"
            offers = sum(len(a.batch.offers) for a in addresses)
            self.refused_total += len(addresses)
            metrics.OFFERS_REFUSED_TOTAL.labels(reason="dsoUnreachable").inc(offers)
            log.error("%s: %d offers not posted", exc, offers)
            self._dropped("dsoUnreachable", offers, str(exc))
            return []
        if not isinstance(reply, BatchResult) or len(reply.results) != len(addresses):
            raise ProtocolError(f"DSO answered withdrawBatch with {reply}")
        granted = []
        for addr, result in zip(addresses, reply.results, strict=True):
            if isinstance(result, AssetsAdded):
                addr.grant = SignedGrant.from_hex(result.grant) if result.grant else None
                granted.append(addr)
            elif isinstance(result, FailedWithdrawal):
                self.refused_total += 1
                addr.refused = result.reason
                if not addr.misbehaviour:
                    metrics.OFFERS_REFUSED_TOTAL.labels(reason="failedWithdrawal").inc(
                        len(addr.batch.offers)
                    )
                log.warning(
                    "failedWithdrawal for prosumer %d (%d offers): %s",
                    addr.batch.prosumer,
                    len(addr.batch.offers),
                    result.reason,
                )
        return granted

    def _dropped(self, reason: str, offers: int, detail: str) -> None:
        with open(self.config.out_dir / DROPPED_FILE, "a") as out:  # one line, flushed
            line = {"time": round(time.time(), 3), "interval": self.last_tick, "reason": reason}
            out.write(json.dumps({**line, "offers": offers, "detail": detail}) + "\n")

    def _switch(self, t: int) -> None:
        """Record misbehaviours starting or ending at tick t."""
        now = misbehave.active(self.config.misbehaviour, t)
        for prosumer, action, change in misbehave.switches(self.misbehaving, now):
            self.actions.write(
                t,
                action,
                "switch",
                f"prosumer {prosumer}: {action} {change}",
                "switched",
                prosumer=prosumer,
            )
            log.warning("tick %d: prosumer %d %s %s", t, prosumer, change, action)
        self.misbehaving = now

    def _attempts(self, addresses: list[AnonAddress]) -> list[Attempt]:
        prices = self.config.prices
        next_finalize: int | None = None
        out = []
        for a in addresses:
            for i, o in enumerate(a.batch.offers):
                price = offer_price(o, prices)
                if a.misbehaviour is None:
                    args = misbehave.PostArgs(int(o.kind), o.energy, o.start, o.end, price)
                else:
                    if next_finalize is None:
                        next_finalize = int(self.chain.view("nextFinalize")[0])
                    args = misbehave.distort(a.misbehaviour, o, a.batch, price, next_finalize)
                post = (args.kind, args.energy, args.start, args.end, price)
                if i == 0 and a.grant is not None:  # the grant goes with the first offer
                    call = self.chain.post_signed_offer(*post, a.grant)
                else:
                    call = self.chain.post_offer(*post)
                out.append(Attempt(a, call, args))
        return out

    def _post(self, addresses: list[AnonAddress], t: int) -> int:
        attempts = self._attempts(addresses)
        reasons = self._expected_reverts([x for x in attempts if x.addr.misbehaviour])
        posted = 0
        for chunk in _chunks(attempts, TX_CHUNK):
            receipts = self.chain.transact([(x.addr.signer, x.call) for x in chunk])
            for x, receipt in zip(chunk, receipts, strict=True):
                events = self.chain.events(receipt, "OfferPosted") if succeeded(receipt) else []
                if events:
                    x.addr.offer_ids.append(int(events[0]["offerId"]))
                    posted += 1
                elif not x.addr.misbehaviour:
                    metrics.OFFERS_REFUSED_TOTAL.labels(reason="reverted").inc()
                    log.warning("postOffer from %s reverted", x.addr.signer.address)
                    self._dropped("reverted", 1, f"postOffer from {x.addr.signer.address}")
                if x.addr.misbehaviour:
                    self._record(x, t, bool(events), reasons.get(id(x), "reverted"))
        metrics.OFFERS_POSTED_TOTAL.inc(posted)
        return posted

    def _expected_reverts(self, attempts: list[Attempt]) -> dict[int, str]:
        """The custom error each misbehaving postOffer reverts with (an eth_call from its
        address just before sending; the transaction is then sent anyway)."""
        if not attempts:
            return {}
        calls = [
            (
                "eth_call",
                [
                    {
                        "from": x.addr.signer.address,
                        "to": self.chain.address,
                        "data": "0x" + x.call.data.hex(),
                    },
                    "latest",
                ],
            )
            for x in attempts
        ]
        out = {}
        for x, result in zip(attempts, self.chain.rpc.batch(calls), strict=True):
            if isinstance(result, RpcError):
                out[id(x)] = decode_revert(result.revert_data, "postOffer").name
        return out

    def _record(self, x: Attempt, t: int, accepted: bool, reason: str) -> None:
        action = x.addr.misbehaviour or ""
        metrics.ADVERSARIAL_ACTIONS_TOTAL.labels(behaviour=action).inc()
        prosumer = x.addr.batch.prosumer
        issued = misbehave.issued(x.addr.batch, x.args.kind) if x.addr.refused is None else 0
        detail = f"prosumer {prosumer}: postOffer {x.args.describe()}, {issued} Wh issued"
        if x.addr.refused is not None:
            detail += f" (failedWithdrawal: {x.addr.refused})"
        if accepted:
            log.error("tick %d: %s was NOT refused by the contract", t, detail)
            result = "accepted"
        else:
            metrics.OFFERS_REFUSED_TOTAL.labels(reason=reason).inc()
            log.warning("tick %d: %s refused: %s", t, detail, reason)
            result = f"reverted: {reason}"
        self.actions.write(t, action, "post_offer", detail, result, prosumer=prosumer)

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
        # the clock closes ended offers in batches (MarketClient.close_ended); close the rest
        owned = [(a, i) for a in due for i in a.offer_ids]
        done = self.chain.closed([i for _, i in owned]) if owned else []
        closes = [
            (a.signer, self.chain.close_offer(i))
            for (a, i), closed in zip(owned, done, strict=True)
            if not closed
        ]
        for chunk in _chunks(closes, TX_CHUNK):
            for receipt in self.chain.transact(chunk):
                if not succeeded(receipt):
                    log.warning("closeOffer reverted (%s)", receipt["transactionHash"])
        states = self.chain.accounts([a.signer.address for a in due])
        deposits: list[tuple[Signer, Call]] = []
        for addr, state in zip(due, states, strict=True):
            if addr.grant is not None and not state.linked:  # its signed grant was not used
                deposits.append((addr.signer, self.chain.return_grant(addr.grant)))
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


def next_generation(out_dir: Path) -> int:
    """How many times this host started before in this run (0 the first time),
    counted in `<out_dir>/starts`: a restarted host must not reuse the anonymous
    addresses of its earlier life, which would link their offers."""
    path = out_dir / "starts"
    try:
        before = int(path.read_text())
    except (OSError, ValueError):
        before = 0
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{before + 1}\n")
    return before


def _chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
