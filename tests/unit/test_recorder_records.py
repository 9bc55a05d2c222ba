"""The recorder's CSV event log and the summary recomputed from it (exact values)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from agents.common import metrics
from agents.recorder.agent import LatencyTracker
from agents.recorder.records import (
    BlockStamp,
    EventLog,
    FinalizationRow,
    OfferRow,
    Row,
    SolutionRow,
    TradeRow,
    columns,
    summarize_events,
)


def _stamp(block: int, ms: int) -> BlockStamp:
    return BlockStamp(
        block=block, time_ms=ms, block_timestamp=1_000 + block, tx_hash=f"0x{block:04x}"
    )


def _offer(oid: int, feeder: int, kind: str, block: int, ms: int) -> OfferRow:
    return OfferRow(oid, feeder, kind, 1_000, 2, 3, 100, "0xposter", _stamp(block, ms))


ROWS: list[Row] = [
    _offer(1, 1, "sell", 10, 1_000_000),
    _offer(2, 2, "buy", 11, 1_000_500),
    _offer(3, 2, "buy", 12, 1_001_000),  # never traded
    SolutionRow(
        "accepted", 1, "0xsolver", 600, 1, frozenset({1, 2}), 90_000, _stamp(13, 1_002_250)
    ),
    SolutionRow("rejected", None, "0xbad", 5, 1, frozenset({1, 3}), 30_000, _stamp(14, 1_002_400)),
    TradeRow(2, 1, 2, 400, 150, 1, 2, _stamp(15, 1_003_000)),
    FinalizationRow(2, 1, 1, 400, _stamp(15, 1_003_000)),
    TradeRow(3, 1, 2, 200, 150, 1, 2, _stamp(16, 1_004_000)),
    FinalizationRow(3, 1, 1, 200, _stamp(16, 1_004_000)),
]


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_row_is_on_disk_as_soon_as_it_is_written(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.write(ROWS[0])
    log.write(ROWS[3])
    # not closed: an interrupted run keeps what was written
    assert _read(tmp_path / "offers.csv") == [
        {
            "offer_id": "1",
            "feeder": "1",
            "kind": "sell",
            "energy_wh": "1000",
            "start": "2",
            "end": "3",
            "price": "100",
            "poster": "0xposter",
            "block": "10",
            "time": "1000.000",
            "block_timestamp": "1010",
            "tx_hash": "0x000a",
        }
    ]
    (solution,) = _read(tmp_path / "solutions.csv")
    assert solution["offers"] == "1 2"
    assert solution["gas_used"] == "90000"
    log.close()


def test_trades_csv_has_the_interface_columns_first() -> None:
    assert columns(TradeRow)[:9] == [
        "interval",
        "seller",
        "buyer",
        "energy_wh",
        "price",
        "seller_feeder",
        "buyer_feeder",
        "block",
        "time",
    ]


def test_summary_from_csvs_exact(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    for row in ROWS:
        log.write(row)
    log.close()
    summary = summarize_events(tmp_path, intervals=range(2, 5))
    assert summary["total_energy_traded_wh"] == 600
    assert summary["total_energy_traded_kwh"] == 0.6
    assert summary["per_interval_kwh"] == {"2": 0.4, "3": 0.2, "4": 0.0}
    assert summary["offers"] == 3
    assert summary["solutions"] == {"accepted": 1, "rejected": 1}
    # offer 1: 1_000_000 -> 1_002_250 ms; offer 2: 1_000_500 -> 1_002_250 ms
    to_trade = summary["offer_to_trade_seconds"]
    assert to_trade["count"] == 2
    assert to_trade["max"] == 2.25
    assert to_trade["p50"] == pytest.approx(2.0)  # midpoint of 1.75 and 2.25
    # first finalization of both at 1_003_000 ms: 3.0 s and 2.5 s (the rejected one counts not)
    to_final = summary["offer_to_finalization_seconds"]
    assert (to_final["count"], to_final["max"], to_final["p50"]) == (2, 3.0, 2.75)


def test_latency_tracker_observes_each_offer_once() -> None:
    def count(hist: metrics.Histogram) -> float:
        (family,) = hist.collect()
        (sample,) = [s for s in family.samples if s.name.endswith("_count")]
        return sample.value

    before_trade = count(metrics.OFFER_TO_TRADE_SECONDS)
    before_final = count(metrics.OFFER_TO_FINALIZATION_SECONDS)
    tracker = LatencyTracker()
    for row in ROWS:
        tracker.add(row)
    tracker.add(ROWS[3])  # the same offers again in a later solution: not observed twice
    assert count(metrics.OFFER_TO_TRADE_SECONDS) - before_trade == 2
    assert count(metrics.OFFER_TO_FINALIZATION_SECONDS) - before_final == 2
    assert tracker.counts == {"offers": 3, "accepted": 2, "rejected": 1, "trades": 2}
    assert tracker.energy_wh == 600
