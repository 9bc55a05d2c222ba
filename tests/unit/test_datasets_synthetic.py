"""The seeded synthetic microgrid, the battery rule and the market offers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from market.types import Kind, Offer
from orchestrator.datasets import (
    Dataset,
    ProsumerTrace,
    TraceOffer,
    add_battery,
    charge_start,
    load_transax,
    offers_by_prosumer,
    owned_offers,
    synthesize,
    to_market_offers,
    write_transax,
)
from orchestrator.errors import DatasetError

FEEDER_SIZES = (9, 17, 5, 13, 8, 1, 10, 17, 5, 13, 4)
PRODUCERS = [101, 102, 701, 801, 1001]


def test_same_seed_same_dataset_other_seed_other_dataset() -> None:
    assert synthesize(5, battery=True) == synthesize(5, battery=True)
    assert synthesize(5) != synthesize(6)


def test_structure_of_the_paper_microgrid() -> None:
    dataset = synthesize(1)
    counts = Counter(p.feeder for p in dataset.prosumers)
    assert [counts[f] for f in range(1, 12)] == list(FEEDER_SIZES)
    assert len(dataset.prosumers) == 102
    assert [p.id for p in dataset.producers] == PRODUCERS
    consumers = [p for p in dataset.prosumers if not p.is_producer]
    assert len(consumers) == 97
    for consumer in consumers:  # one buying offer per interval, all day
        assert [(o.start, o.end) for o in consumer.offers] == [(t, t) for t in range(1, 97)]
        assert all(o.energy_wh < 0 and o.energy_wh % 100 == 0 for o in consumer.offers)
    for producer in dataset.producers:  # selling offers in daylight only
        assert all(o.start == o.end and o.energy_wh > 0 for o in producer.offers)
        sunny = [o.start for o in producer.offers]
        assert min(sunny) >= 24 and max(sunny) <= 90


def test_like_the_public_traces_in_size_and_shape() -> None:
    """Totals within 15% of the public traces (4544.1 kWh sold, 8312.2 wanted);
    solar peaks around 14:00; residential loads peak morning and evening;
    production exceeds consumption only around midday (paper Figure 6)."""
    dataset = synthesize(1)
    assert 0.85 < dataset.offered_wh / 4_544_100 < 1.15
    assert 0.85 < dataset.wanted_wh / 8_312_200 < 1.15
    production = profile(dataset, sell=True)
    consumption = profile(dataset, sell=False)
    assert 52 <= int(np.argmax(production)) + 1 <= 62
    surplus = np.flatnonzero(production > consumption) + 1
    assert surplus.size > 0 and surplus.min() >= 44 and surplus.max() <= 72
    household = -np.array([o.energy_wh for o in dataset.prosumer(201).offers])
    night, morning, evening = household[8:20].mean(), household[26:34].max(), household[72:84].max()
    assert morning > 1.5 * night and evening > 1.5 * night


def profile(dataset: Dataset, sell: bool) -> np.ndarray:
    total = np.zeros(96)
    for prosumer in dataset.prosumers:
        for o in prosumer.offers:
            if (o.energy_wh > 0) == sell and o.energy_wh != 0:
                total[o.start - 1] += abs(o.energy_wh)
    return total


def test_battery_offers_span_to_95_and_hold_the_capacity() -> None:
    plain, battery = synthesize(3), synthesize(3, battery=True)
    assert battery.offered_wh == plain.offered_wh and battery.wanted_wh == plain.wanted_wh
    start = charge_start(plain)
    for producer in battery.producers:
        multi = [o for o in producer.offers if o.start != o.end]
        assert multi, "every producer has battery offers"
        assert {o.end for o in multi} == {95}
        assert min(o.start for o in multi) == start
        assert sum(o.energy_wh for o in multi) == 90_000
        assert all(o.energy_wh <= 10_000 for o in multi)
    consumers = [p for p in battery.prosumers if not p.is_producer]
    assert consumers == [p for p in plain.prosumers if not p.is_producer]


def test_battery_parameters() -> None:
    dataset = synthesize(3, battery=True, battery_capacity_kwh=25, battery_rate_kwh=4)
    for producer in dataset.producers:
        multi = [o.energy_wh for o in producer.offers if o.start != o.end]
        assert sum(multi) == 25_000 and max(multi) <= 4_000


def test_add_battery_splits_an_interval_when_the_battery_fills() -> None:
    dataset = Dataset(
        (
            ProsumerTrace(101, 1, tuple(TraceOffer(t, t, 6_000) for t in (2, 3, 4))),
            ProsumerTrace(201, 2, tuple(TraceOffer(t, t, -5_000) for t in (1, 2, 3, 4))),
        )
    )
    with_battery = add_battery(dataset, capacity_wh=7_000, rate_wh=4_000, until=95)
    assert with_battery.prosumer(101).offers == (
        TraceOffer(2, 2, 2_000),
        TraceOffer(2, 95, 4_000),
        TraceOffer(3, 3, 3_000),
        TraceOffer(3, 95, 3_000),
        TraceOffer(4, 4, 6_000),
    )
    assert with_battery.prosumer(201) == dataset.prosumer(201)
    with pytest.raises(DatasetError, match="already has multi-interval offers"):
        add_battery(with_battery)


def test_scale_ten() -> None:
    dataset = synthesize(2, battery=True, scale=10)
    assert len(dataset.prosumers) == 1020
    assert dataset.feeders == tuple(range(1, 111))
    counts = Counter(p.feeder for p in dataset.prosumers)
    assert [counts[f] for f in range(1, 111)] == list(FEEDER_SIZES) * 10
    producers = [p.id for p in dataset.producers]
    assert len(producers) == 50
    assert producers[:5] == PRODUCERS and producers[5:10] == [1201, 1202, 1801, 1901, 2101]


def test_bad_generator_arguments() -> None:
    with pytest.raises(DatasetError) as caught:
        synthesize(-1, scale=0, battery_rate_kwh=0)
    assert str(caught.value) == (
        "synthetic dataset: seed must be >= 0, got -1; scale must be >= 1, got 0; "
        "battery charge rate must be > 0 kWh per interval, got 0"
    )


def test_round_trip_through_the_transax_format(tmp_path: Path) -> None:
    dataset = synthesize(11, battery=True)
    write_transax(dataset, tmp_path / "out")
    assert len(list((tmp_path / "out").glob("prosumer_*.csv"))) == 102
    assert load_transax(tmp_path / "out") == dataset


TINY = Dataset(
    (
        ProsumerTrace(
            101, 1, (TraceOffer(1, 1, 500), TraceOffer(2, 95, 9_000), TraceOffer(3, 3, 0))
        ),
        ProsumerTrace(102, 1, (TraceOffer(5, 5, 700),)),
        ProsumerTrace(201, 2, (TraceOffer(1, 1, -200), TraceOffer(2, 2, -300))),
    )
)


def test_market_offers_are_numbered_by_prosumer_then_row_within_the_window() -> None:
    offers = to_market_offers(TINY, 100_000, 200_000, first_interval=2, last_interval=4)
    assert offers == [
        Offer(1, feeder=1, kind=Kind.SELL, energy=9_000, start=2, end=4, price=100_000),  # cut
        Offer(2, feeder=2, kind=Kind.BUY, energy=300, start=2, end=2, price=200_000),
    ]
    everything = to_market_offers(TINY, 1, 2, first_interval=1, last_interval=96)
    assert [o.id for o in everything] == [1, 2, 3, 4, 5]
    assert [(o.kind, o.energy, o.start) for o in everything] == [
        (Kind.SELL, 500, 1),
        (Kind.SELL, 9_000, 2),  # the zero-energy row is no offer
        (Kind.SELL, 700, 5),
        (Kind.BUY, 200, 1),
        (Kind.BUY, 300, 2),
    ]


def test_owners_of_market_offers() -> None:
    owned = owned_offers(TINY, 1, 2, first_interval=1, last_interval=96)
    assert [(o.prosumer, o.offer.id) for o in owned] == [
        (101, 1),
        (101, 2),
        (102, 3),
        (201, 4),
        (201, 5),
    ]
    grouped = offers_by_prosumer(TINY, 1, 2, first_interval=5, last_interval=5)
    assert {p: [o.id for o in offers] for p, offers in grouped.items()} == {
        101: [1],
        102: [2],
        201: [],
    }
