"""Producer batteries, the way the public `withBattery` traces were made.

Paper section 7.3 and Figure 7: every producer has a battery of 90 kWh that
charges at most 10 kWh per interval. Producers charge only when the
microgrid's total production exceeds its total consumption ("just after
12:00 p.m."), and keep the stored energy available until interval 95. So from
the first such interval t0, each producer moves production into its battery
until it is full: what it stores in interval t becomes a selling offer
spanning t..95, the rest of that interval's production stays a
single-interval offer. Applied to the public noBattery traces this yields
exactly their withBattery traces (t0 = 50); a unit test proves it.
"""

from __future__ import annotations

from collections import defaultdict

from orchestrator.datasets.model import INTERVALS_PER_DAY, Dataset, ProsumerTrace, TraceOffer
from orchestrator.errors import DatasetError

DEFAULT_BATTERY_CAPACITY_KWH = 90.0
DEFAULT_BATTERY_RATE_KWH = 10.0
DEFAULT_BATTERY_UNTIL = 95


def add_battery(
    dataset: Dataset,
    capacity_wh: int = round(DEFAULT_BATTERY_CAPACITY_KWH * 1000),
    rate_wh: int = round(DEFAULT_BATTERY_RATE_KWH * 1000),
    until: int = DEFAULT_BATTERY_UNTIL,
) -> Dataset:
    """`dataset` (single-interval offers only) with a battery per producer."""
    if any(o.start != o.end for p in dataset.prosumers for o in p.offers):
        raise DatasetError("cannot add batteries: the dataset already has multi-interval offers")
    charge_from = charge_start(dataset)
    return Dataset(
        tuple(
            _with_battery(p, charge_from, capacity_wh, rate_wh, until) if p.is_producer else p
            for p in dataset.prosumers
        )
    )


def charge_start(dataset: Dataset) -> int:
    """First interval in which total production exceeds total consumption;
    the interval of peak production if there is none."""
    produced: dict[int, int] = defaultdict(int)
    consumed: dict[int, int] = defaultdict(int)
    for prosumer in dataset.prosumers:
        for offer in prosumer.offers:
            if offer.energy_wh > 0:
                produced[offer.start] += offer.energy_wh
            else:
                consumed[offer.start] -= offer.energy_wh
    intervals = range(1, INTERVALS_PER_DAY + 1)
    for t in intervals:
        if produced[t] > consumed[t]:
            return t
    return max(intervals, key=lambda t: (produced[t], -t))


def _with_battery(
    producer: ProsumerTrace, charge_from: int, capacity: int, rate: int, until: int
) -> ProsumerTrace:
    offers: list[TraceOffer] = []
    room = capacity
    for offer in producer.offers:
        t, produced = offer.start, offer.energy_wh
        stored = min(rate, produced, room) if produced > 0 and charge_from <= t < until else 0
        room -= stored
        if produced - stored != 0:
            offers.append(TraceOffer(t, t, produced - stored))
        if stored > 0:
            offers.append(TraceOffer(t, until, stored))
    return ProsumerTrace(producer.id, producer.feeder, tuple(offers))
