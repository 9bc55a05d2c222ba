"""The solver's view of the market, rebuilt from contract events (pure, no I/O).

`OrderBook` accumulates decoded OfferPosted offers and finalized trades as the
solver reads them block range by block range; `extended_problem` turns them
into the extended problem of paper section 4.3 for clock interval t:
the offers posted so far with their ORIGINAL energy, fixed = the finalized
trades, free_from = t + t_clear (pruned exactly as `market.replay` does).
The horizon (intervals <= last_interval) is not part of `market.Problem`: it
is passed to `market.solve(..., last_interval=...)`, as replay does.

`market.solve` is a deterministic function of the problem's content (offers in
any order give the same trades), so the same offers and finalized trades give
the same solution here as in replay.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agents.common.errors import AgentError
from market.errors import MarketError
from market.replay import extended_problem as market_extended_problem
from market.types import Feeder, Kind, Offer, Problem, Trade


class BookError(AgentError):
    """The events read from the chain are inconsistent (e.g. a trade of an unknown offer)."""


def extended_problem(
    feeders: Iterable[Feeder],
    offers: Iterable[Offer],
    finalized: Iterable[Trade],
    free_from: int,
) -> Problem:
    """`market.replay.extended_problem`, with inconsistent chain events as `BookError`."""
    try:
        return market_extended_problem(feeders, offers, finalized, free_from)
    except MarketError as exc:
        raise BookError(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class Horizon:
    """Which delivery intervals a solve at clock interval t may trade."""

    t_clear: int
    last_interval: int

    def free_from(self, clock_interval: int) -> int:
        """First delivery interval not finalized at the end of clock interval t."""
        return clock_interval + self.t_clear


class OrderBook:
    """Offers and finalized trades seen so far, plus the next block to read.

    Events are idempotent: reading the same block twice (e.g. after a retried
    range) neither duplicates an offer (keyed by id) nor a finalized trade
    (keyed by seller, buyer, interval).
    """

    def __init__(self) -> None:
        self._offers: dict[int, Offer] = {}
        self._finalized: dict[tuple[int, int, int], Trade] = {}
        self.next_block = 0

    def add_offers(self, offers: Iterable[Offer]) -> int:
        """Record offers; returns how many were new."""
        new = 0
        for offer in offers:
            if offer.id not in self._offers:
                new += 1
            self._offers[offer.id] = offer
        return new

    def add_finalized(self, trades: Iterable[Trade]) -> int:
        """Record finalized trades; returns how many were new."""
        new = 0
        for trade in trades:
            key = (trade.seller, trade.buyer, trade.interval)
            if key not in self._finalized:
                new += 1
            self._finalized[key] = trade
        return new

    @property
    def offers(self) -> tuple[Offer, ...]:
        return tuple(self._offers.values())

    @property
    def finalized(self) -> tuple[Trade, ...]:
        return tuple(self._finalized.values())

    @property
    def finalized_energy(self) -> int:
        return sum(t.energy for t in self._finalized.values())

    def problem(self, feeders: Iterable[Feeder], free_from: int) -> Problem:
        return extended_problem(feeders, self.offers, self.finalized, free_from)


def offer_from_event(args: Mapping[str, Any]) -> Offer:
    """An Offer from decoded OfferPosted arguments (offerId, feeder, kind,
    energy, start, end, price): the ORIGINAL energy as posted."""
    return Offer(
        id=int(args["offerId"]),
        feeder=int(args["feeder"]),
        kind=Kind(int(args["kind"])),
        energy=int(args["energy"]),
        start=int(args["start"]),
        end=int(args["end"]),
        price=int(args["price"]),
    )


def trade_from_event(args: Mapping[str, Any]) -> Trade:
    """A Trade from decoded TradeFinalized arguments (interval, seller, buyer, energy, price)."""
    return Trade(
        seller=int(args["seller"]),
        buyer=int(args["buyer"]),
        interval=int(args["interval"]),
        energy=int(args["energy"]),
        price=int(args["price"]),
    )
