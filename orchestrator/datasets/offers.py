"""From traces to the market's offers.

Offer ids are assigned deterministically: prosumers by ascending id, each
prosumer's rows in file order, numbered from 1, counting only the offers kept
(those with non-zero energy that intersect [first_interval, last_interval]).
A kept offer keeps its energy; its interval range is cut to the window, as the
prosumer agents post it (the contract only issues assets inside the traded
intervals), so `testbed replay` and a lockstep run solve the very same LPs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from market.types import Kind, Offer
from orchestrator.datasets.model import Dataset


@dataclass(frozen=True, slots=True)
class OwnedOffer:
    """A market offer and the prosumer that posts it."""

    prosumer: int
    offer: Offer


def owned_offers(
    dataset: Dataset, sell_price: int, buy_price: int, first_interval: int, last_interval: int
) -> list[OwnedOffer]:
    """Every market offer of the window with its owner, in id order."""
    return list(_numbered(dataset, sell_price, buy_price, first_interval, last_interval))


def to_market_offers(
    dataset: Dataset, sell_price: int, buy_price: int, first_interval: int, last_interval: int
) -> list[Offer]:
    """The market offers of the window, ids 1..n (see the module docstring).
    Selling offers get reservation price `sell_price`, buying ones `buy_price`."""
    return [
        o.offer for o in _numbered(dataset, sell_price, buy_price, first_interval, last_interval)
    ]


def offers_by_prosumer(
    dataset: Dataset, sell_price: int, buy_price: int, first_interval: int, last_interval: int
) -> dict[int, list[Offer]]:
    """The same offers as `to_market_offers`, grouped by prosumer id (every
    prosumer of the dataset has an entry, possibly empty)."""
    grouped: dict[int, list[Offer]] = {p.id: [] for p in dataset.prosumers}
    for owned in _numbered(dataset, sell_price, buy_price, first_interval, last_interval):
        grouped[owned.prosumer].append(owned.offer)
    return grouped


def _numbered(
    dataset: Dataset, sell_price: int, buy_price: int, first_interval: int, last_interval: int
) -> Iterator[OwnedOffer]:
    next_id = 1
    for prosumer in sorted(dataset.prosumers, key=lambda p: p.id):
        for row in prosumer.offers:
            if row.energy_wh == 0 or not row.intersects(first_interval, last_interval):
                continue
            kind = Kind.SELL if row.energy_wh > 0 else Kind.BUY
            offer = Offer(
                id=next_id,
                feeder=prosumer.feeder,
                kind=kind,
                energy=abs(row.energy_wh),
                # cut to the traded window, exactly as the prosumer agents post them
                start=max(row.start, first_interval),
                end=min(row.end, last_interval),
                price=sell_price if kind is Kind.SELL else buy_price,
            )
            yield OwnedOffer(prosumer.id, offer)
            next_id += 1
