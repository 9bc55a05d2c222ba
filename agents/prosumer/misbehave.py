"""Misbehaving prosumers (issue 8): offers the contract must refuse. Pure, no I/O.

A host's config may name prosumers that misbehave for a span of clock intervals
(`misbehaviour`: prosumer, action, from_interval, until_interval):
- "beyond_assets": the prosumer withdraws its assets honestly, then posts each offer
  with more energy than the DSO issued to the address (its permission of that kind plus
  the offer's own energy): postOffer must revert InsufficientEnergyAsset;
- "past_interval": the offer is posted for intervals already finalized (shifted to end
  at nextFinalize - 1): postOffer must revert RangeFinalized.
If the DSO refuses the withdrawal, the offer is still attempted on chain (from an
address without assets: NotLinked, unless the range check refuses it first).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agents.common.adversaries import Misbehaviour
from agents.common.config import TraceOffer
from agents.prosumer.plan import AddressBatch


def active(misbehaviours: Iterable[Misbehaviour], t: int) -> dict[int, str]:
    """prosumer id -> action of every misbehaviour covering clock interval t."""
    return {m.prosumer: m.action for m in misbehaviours if m.covers(t)}


def switches(before: Mapping[int, str], after: Mapping[int, str]) -> list[tuple[int, str, str]]:
    """(prosumer, action, "started" | "ended") for what changed between two ticks."""
    out = [(p, a, "ended") for p, a in sorted(before.items()) if after.get(p) != a]
    out += [(p, a, "started") for p, a in sorted(after.items()) if before.get(p) != a]
    return out


@dataclass(frozen=True)
class PostArgs:
    """What postOffer is called with."""

    kind: int
    energy: int
    start: int
    end: int
    price: int

    def describe(self) -> str:
        name = "SELL" if self.kind == 0 else "BUY"
        return f"{name} {self.energy} Wh [{self.start}, {self.end}] at {self.price}"


def issued(batch: AddressBatch, kind: int) -> int:
    """Energy of `kind` the DSO issues to the batch's address (its permission)."""
    return sum(o.energy for o in batch.offers if int(o.kind) == kind)


def distort(
    action: str, offer: TraceOffer, batch: AddressBatch, price: int, next_finalize: int
) -> PostArgs:
    """The offer as the misbehaving prosumer posts it."""
    kind = int(offer.kind)
    if action == "beyond_assets":
        return PostArgs(kind, issued(batch, kind) + offer.energy, offer.start, offer.end, price)
    if action == "past_interval":
        end = max(0, next_finalize - 1)
        start = max(0, end - (offer.end - offer.start))
        return PostArgs(kind, offer.energy, start, end, price)
    raise ValueError(f"unknown misbehaviour {action!r}")
