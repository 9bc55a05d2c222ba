"""What a prosumer posts when, from which address: pure, no chain, no sockets.

Paper 6.5.1: an offer is posted when it enters the prediction window of L
intervals, the current one counted, so at clock interval t every offer with
start <= t + L - 1 that is not posted yet; an offer that ends before t + T_clear
can no longer be traded and is skipped. Offers are posted from anonymous
addresses generated from (the run's key secret, seed, prosumer id, counter): the
same secret repeats a run's addresses, and nobody without it (the secret is kept
out of the spec and the bundle) can derive a prosumer's keys;
`per_offer` uses a fresh address for every offer, `per_interval` one address per
prosumer and clock interval for all the offers it posts then.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field, replace

from agents.common.config import Prices, ProsumerSpec, TraceOffer
from agents.common.protocol import Asset, WithdrawAssets
from market.types import Kind


def anon_secret(
    seed: int, prosumer: int, counter: int, generation: int = 0, key_secret: bytes = b""
) -> bytes:
    """Deterministic private key of the prosumer's `counter`-th anonymous address, an
    HMAC keyed with the run's `key_secret` (the orchestrator's per-run secret; empty
    only in tests that build a host by hand); `generation` > 0 for a restarted host
    (its addresses must be new ones)."""
    from agents.common.abi import SECP256K1_N  # eth-keys: imported at the first tick

    salt = 0
    run = "" if generation == 0 else f"g{generation}/"
    while True:
        message = f"te-testbed/anon/{seed}/{prosumer}/{counter}/{run}{salt}".encode()
        secret = hmac.digest(key_secret, message, hashlib.sha256)
        if 0 < int.from_bytes(secret, "big") < SECP256K1_N:
            return secret
        salt += 1  # probability ~2^-128; kept for correctness


def clip(offer: TraceOffer, first: int, last: int) -> TraceOffer | None:
    """The offer with its range cut to the traded intervals first..last (None if
    nothing is left). A trace offer may reach beyond a run's window; the contract
    only issues permissions inside it, and the parts outside have no tradeable
    interval, so the market problem is unchanged (same free LP cells)."""
    start, end = max(offer.start, first), min(offer.end, last)
    if start > end:
        return None
    if (start, end) == (offer.start, offer.end):
        return offer
    return replace(offer, start=start, end=end)


def offer_price(offer: TraceOffer, prices: Prices) -> int:
    return prices.sell if offer.kind == Kind.SELL else prices.buy


def money_needed(offers: list[TraceOffer], prices: Prices) -> int:
    """What a buyer must be able to pay: energy (Wh) x price limit, per buy offer."""
    return sum(o.energy * prices.buy for o in offers if o.kind == Kind.BUY)


@dataclass
class AddressBatch:
    """Offers one anonymous address posts (its assets cover exactly these)."""

    prosumer: int
    feeder: int
    counter: int
    offers: list[TraceOffer]

    @property
    def last_interval(self) -> int:
        return max(o.end for o in self.offers)

    def withdrawal(self, anon: str, prices: Prices) -> WithdrawAssets:
        return WithdrawAssets(
            prosumer=self.prosumer,
            anon=anon,
            feeder=self.feeder,
            assets=tuple(Asset(int(o.kind), o.energy, o.start, o.end) for o in self.offers),
            amount=money_needed(self.offers, prices),
        )


@dataclass
class ProsumerPlan:
    """One prosumer's trace and which of its offers are done (posted or skipped)."""

    spec: ProsumerSpec
    handled: set[int] = field(default_factory=set)
    skipped: int = 0
    counter: int = 0  # next anonymous address number

    def due(self, t: int, window: int, t_clear: int, first: int, last: int) -> list[TraceOffer]:
        """Offers to post at clock interval t; marks them (and the skipped) handled.

        Visibility uses the trace's own start (as market.replay does); the posted
        range is clipped to the traded intervals first..last (`clip`).
        """
        out: list[TraceOffer] = []
        for i, offer in enumerate(self.spec.offers):
            if i in self.handled or offer.start > t + window - 1:
                continue
            self.handled.add(i)
            clipped = clip(offer, first, last)
            if clipped is None or offer.end < t + t_clear:
                self.skipped += 1
            else:
                out.append(clipped)
        return out

    def batches(self, offers: list[TraceOffer], rotation: str) -> list[AddressBatch]:
        """Group due offers into addresses according to the rotation setting."""
        if not offers:
            return []
        groups = [[o] for o in offers] if rotation == "per_offer" else [offers]
        out = []
        for group in groups:
            out.append(AddressBatch(self.spec.id, self.spec.feeder, self.counter, group))
            self.counter += 1
        return out

    @property
    def remaining(self) -> int:
        return len(self.spec.offers) - len(self.handled)
