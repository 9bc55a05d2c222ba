"""Offer traces of a microgrid: who offers what, when, in which feeder.

Energy is integer Wh for the whole offer, signed like the TRANSAX files:
positive = selling offer, negative = buying offer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

INTERVALS_PER_DAY = 96
"""The traces describe one day of 15-minute intervals, numbered 1..96."""


def feeder_of(prosumer_id: int) -> int:
    """Feeder of a prosumer: TRANSAX ids are `feeder * 100 + n`, n = 1..99."""
    return prosumer_id // 100


def is_valid_prosumer_id(prosumer_id: int) -> bool:
    return prosumer_id >= 101 and prosumer_id % 100 != 0


@dataclass(frozen=True, slots=True)
class TraceOffer:
    """One row of a trace: `energy_wh` over the inclusive interval range
    [start, end]; > 0 sells, < 0 buys."""

    start: int
    end: int
    energy_wh: int

    @property
    def is_sell(self) -> bool:
        return self.energy_wh > 0

    def intersects(self, first: int, last: int) -> bool:
        return self.start <= last and self.end >= first


@dataclass(frozen=True, slots=True)
class ProsumerTrace:
    """All offers of one prosumer, in file (row) order. `notes`: what its
    trace had that is not an error but not an offer either (`file:line: ...`)."""

    id: int
    feeder: int
    offers: tuple[TraceOffer, ...]
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_producer(self) -> bool:
        return any(o.energy_wh > 0 for o in self.offers)

    @property
    def sold_wh(self) -> int:
        return sum(o.energy_wh for o in self.offers if o.energy_wh > 0)

    @property
    def bought_wh(self) -> int:
        return -sum(o.energy_wh for o in self.offers if o.energy_wh < 0)


@dataclass(frozen=True, slots=True)
class Dataset:
    """A microgrid's offer traces, prosumers sorted by id."""

    prosumers: tuple[ProsumerTrace, ...]

    @property
    def feeders(self) -> tuple[int, ...]:
        """Feeders that hold at least one prosumer, ascending."""
        return tuple(sorted({p.feeder for p in self.prosumers}))

    @property
    def warnings(self) -> tuple[str, ...]:
        """The notes of every prosumer's trace (e.g. rows with energy 0)."""
        return tuple(note for p in self.prosumers for note in p.notes)

    @property
    def producers(self) -> tuple[ProsumerTrace, ...]:
        return tuple(p for p in self.prosumers if p.is_producer)

    @property
    def offered_wh(self) -> int:
        """Total energy offered for sale."""
        return sum(p.sold_wh for p in self.prosumers)

    @property
    def wanted_wh(self) -> int:
        """Total energy wanted by buying offers."""
        return sum(p.bought_wh for p in self.prosumers)

    def prosumer(self, prosumer_id: int) -> ProsumerTrace:
        for p in self.prosumers:
            if p.id == prosumer_id:
                return p
        raise KeyError(prosumer_id)

    def select(
        self,
        feeders: Iterable[int] | None = None,
        prosumers: Iterable[int] | None = None,
    ) -> Dataset:
        """The sub-microgrid of the given feeders and/or prosumer ids
        (None = no restriction). Unknown ids are the caller's to check."""
        keep_feeders = None if feeders is None else set(feeders)
        keep_ids = None if prosumers is None else set(prosumers)
        return Dataset(
            tuple(
                p
                for p in self.prosumers
                if (keep_feeders is None or p.feeder in keep_feeders)
                and (keep_ids is None or p.id in keep_ids)
            )
        )
