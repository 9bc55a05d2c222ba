"""Pure latency and percentile computations over recorded chain events.

The orchestrator reuses these for summary.json; the recorder uses them for its
own summary. No I/O, no chain access: inputs are plain records.

Latencies (paper Figure 11):
- offer-to-trade: from the block holding an offer's OfferPosted event to the
  first block holding an *accepted* solution whose trades include that offer;
- offer-to-finalization: from the offer's block to the first block in which a
  trade of that offer was finalized.
- intervals waited: how many intervals were finalized between an offer's block
  and the block of the first accepted solution that trades it. The market itself
  makes offers wait (an optimum that leaves an offer out until later offers change
  the optimum; `market.replay` reports the same count with no system in the way),
  so this separates the market's share of offer-to-trade from the testbed's.
The latencies are measured with the wall-clock time at which the recorder first saw each
block (`time_ms`), so they include mining and polling delays but are
meaningful in lockstep runs, where chain timestamps are virtual.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 50.0), ("p95", 95.0), ("p99", 99.0))


@dataclass(frozen=True, slots=True)
class PostedOffer:
    """An offer as recorded: its id and the block (and its wall-clock time) that posted it."""

    offer_id: int
    block: int
    time_ms: int


@dataclass(frozen=True, slots=True)
class TradeEvent:
    """A block in which offers `offer_ids` appeared together in trades: an
    accepted solution, or a finalization."""

    block: int
    time_ms: int
    offer_ids: frozenset[int]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already sorted values, interpolating
    linearly between closest ranks (numpy's default, Hyndman-Fan type 7)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} outside 0..100")
    rank = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    lo_value = float(sorted_values[low])
    if low == high:
        return lo_value
    return lo_value + (float(sorted_values[high]) - lo_value) * (rank - low)


def summarize(values: Iterable[float]) -> dict[str, float | int | None]:
    """{p50, p95, p99, max, mean, count}; every statistic None when there are no values."""
    ordered = sorted(float(v) for v in values)
    out: dict[str, float | int | None] = {}
    for name, q in PERCENTILES:
        out[name] = percentile(ordered, q) if ordered else None
    out["max"] = ordered[-1] if ordered else None
    out["mean"] = sum(ordered) / len(ordered) if ordered else None
    out["count"] = len(ordered)
    return out


def first_inclusion_latencies(
    offers: Iterable[PostedOffer], events: Iterable[TradeEvent]
) -> dict[int, float]:
    """Seconds from each offer's block to the first event (in block order, at
    or after the offer's block) whose offers include it. Offers never included
    are absent from the result."""
    first_seen: dict[int, TradeEvent] = {}
    for event in sorted(events, key=lambda e: e.block):
        for offer_id in event.offer_ids:
            first_seen.setdefault(offer_id, event)
    # An event before the offer's own block cannot trade it; guard anyway
    # (e.g. a reorg-free chain but records merged from different sources).
    out: dict[int, float] = {}
    for offer in offers:
        found = first_seen.get(offer.offer_id)
        if found is None or found.block < offer.block:
            continue
        out[offer.offer_id] = (found.time_ms - offer.time_ms) / 1000.0
    return out


def offer_to_trade_seconds(
    offers: Iterable[PostedOffer], accepted_solutions: Iterable[TradeEvent]
) -> dict[int, float]:
    """Offer-to-trade latency per traded offer (paper Figure 11)."""
    return first_inclusion_latencies(offers, accepted_solutions)


def intervals_waited(
    offers: Iterable[PostedOffer],
    accepted_solutions: Iterable[TradeEvent],
    finalization_blocks: Iterable[int],
) -> dict[int, int]:
    """Per traded offer: finalize() blocks after the offer's block and up to (and
    including) the block of the first accepted solution that trades it."""
    first_seen: dict[int, int] = {}
    for event in sorted(accepted_solutions, key=lambda e: e.block):
        for offer_id in event.offer_ids:
            first_seen.setdefault(offer_id, event.block)
    blocks = sorted(finalization_blocks)
    out: dict[int, int] = {}
    for offer in offers:
        found = first_seen.get(offer.offer_id)
        if found is None or found < offer.block:
            continue
        out[offer.offer_id] = bisect.bisect_right(blocks, found) - bisect.bisect_right(
            blocks, offer.block
        )
    return out


def offer_to_finalization_seconds(
    offers: Iterable[PostedOffer], finalizations: Iterable[TradeEvent]
) -> dict[int, float]:
    """Offer-to-finalization latency per offer with at least one finalized trade."""
    return first_inclusion_latencies(offers, finalizations)


def energy_per_interval(trades: Iterable[tuple[int, int]]) -> dict[int, int]:
    """Total Wh per delivery interval from (interval, energy_wh) pairs, sorted by interval."""
    totals: dict[int, int] = {}
    for interval, energy in trades:
        totals[interval] = totals.get(interval, 0) + energy
    return dict(sorted(totals.items()))


def latency_summary(latencies: Mapping[int, float]) -> dict[str, float | int | None]:
    """summarize() over a per-offer latency mapping."""
    return summarize(latencies.values())
