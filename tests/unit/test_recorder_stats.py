"""Latency and percentile maths of agents.recorder.stats, with exact expected values."""

from __future__ import annotations

import numpy as np
import pytest

from agents.recorder.stats import (
    PostedOffer,
    TradeEvent,
    energy_per_interval,
    intervals_waited,
    offer_to_finalization_seconds,
    offer_to_trade_seconds,
    percentile,
    summarize,
)


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    # rank = 3 * 0.95 = 2.85 -> 3 + 0.85 * (4 - 3)
    assert percentile(values, 95) == pytest.approx(3.85)
    assert percentile([7.0], 99) == 7.0


def test_percentile_matches_numpy_linear_method() -> None:
    rng = np.random.default_rng(4)
    values = sorted(rng.exponential(10.0, size=257).tolist())
    for q in (0, 1, 25, 50, 90, 95, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_rejects_empty_and_out_of_range() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summarize_exact_values() -> None:
    out = summarize([10.0, 0.0, 5.0, 20.0, 15.0])
    # sorted 0 5 10 15 20: p50 = 10; p95 rank 3.8 -> 15 + 0.8*5 = 19; p99 rank 3.96 -> 19.8
    assert out["p50"] == 10.0
    assert out["p95"] == pytest.approx(19.0)
    assert out["p99"] == pytest.approx(19.8)
    assert out["max"] == 20.0
    assert out["mean"] == 10.0
    assert out["count"] == 5


def test_summarize_empty_is_all_none_with_zero_count() -> None:
    assert summarize([]) == {
        "p50": None,
        "p95": None,
        "p99": None,
        "max": None,
        "mean": None,
        "count": 0,
    }


def test_offer_to_trade_uses_first_accepted_solution_including_the_offer() -> None:
    offers = [
        PostedOffer(offer_id=1, block=10, time_ms=1_000),
        PostedOffer(offer_id=2, block=11, time_ms=1_500),
        PostedOffer(offer_id=3, block=12, time_ms=2_000),  # never traded
    ]
    solutions = [
        # given out of order on purpose: block order decides "first"
        TradeEvent(block=20, time_ms=9_000, offer_ids=frozenset({1, 2})),
        TradeEvent(block=13, time_ms=3_250, offer_ids=frozenset({1})),
    ]
    assert offer_to_trade_seconds(offers, solutions) == {1: 2.25, 2: 7.5}


def test_event_before_offer_block_is_ignored() -> None:
    offers = [PostedOffer(offer_id=5, block=30, time_ms=5_000)]
    stale = [TradeEvent(block=29, time_ms=4_000, offer_ids=frozenset({5}))]
    assert offer_to_trade_seconds(offers, stale) == {}


def test_offer_to_finalization_first_finalizing_block() -> None:
    offers = [PostedOffer(offer_id=1, block=1, time_ms=0), PostedOffer(2, 2, 100)]
    finals = [
        TradeEvent(block=9, time_ms=60_000, offer_ids=frozenset({1, 2})),
        TradeEvent(block=5, time_ms=30_000, offer_ids=frozenset({1})),
    ]
    assert offer_to_finalization_seconds(offers, finals) == {1: 30.0, 2: 59.9}


def test_energy_per_interval_sums_and_sorts() -> None:
    assert energy_per_interval([(3, 10), (1, 5), (3, 7)]) == {1: 5, 3: 17}


def test_intervals_waited_counts_finalizations_between_offer_and_first_trade() -> None:
    offers = [PostedOffer(1, 10, 0), PostedOffer(2, 10, 0), PostedOffer(3, 25, 0)]
    accepted = [
        TradeEvent(12, 0, frozenset({1})),
        TradeEvent(31, 0, frozenset({2, 3})),
        TradeEvent(40, 0, frozenset({1, 2, 3})),  # later inclusions do not count
    ]
    # finalize() at blocks 15, 20 and 30: offer 2 waits three of them, offer 3 one,
    # offer 1 none; a finalization in the very block of the offer is not waited.
    waited = intervals_waited(offers, accepted, [30, 15, 20, 10])
    assert waited == {1: 0, 2: 3, 3: 1}
    assert intervals_waited([PostedOffer(9, 5, 0)], accepted, [7]) == {}
