"""The recorder's event log: row types, append-only CSV files, and reading them back.

Files in the recorder's out_dir (the bundle's events/), one row per event, flushed
per row so that an interrupted run keeps everything recorded so far:

- offers.csv: offer_id, feeder, kind, energy_wh, start, end, price, poster,
  block, time, block_timestamp, tx_hash
- solutions.csv: result (accepted|rejected), candidate_id, submitter, objective_wh,
  trades, offers (space separated offer ids in the solution), gas_used, block,
  time, block_timestamp, tx_hash
- trades.csv (finalized trades): interval, seller, buyer, energy_wh, price,
  seller_feeder, buyer_feeder, block, time, block_timestamp, tx_hash
- finalizations.csv: interval, candidate_id, trades, energy_wh, block, time,
  block_timestamp, tx_hash

`time` is the wall-clock Unix time (seconds, ms resolution) at which the recorder
first saw the block; `block_timestamp` is the chain's (virtual in lockstep runs).
`summarize_events(dir)` recomputes the summary from these files alone, so the
orchestrator can use it also when the recorder was killed before writing its own.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

from agents.recorder.stats import (
    PostedOffer,
    TradeEvent,
    energy_per_interval,
    intervals_waited,
    offer_to_finalization_seconds,
    offer_to_trade_seconds,
    summarize,
)


@dataclass(frozen=True, slots=True)
class BlockStamp:
    """Where and when an event was recorded."""

    block: int
    time_ms: int  # wall clock, first seen by the recorder
    block_timestamp: int  # chain time
    tx_hash: str


@dataclass(frozen=True, slots=True)
class OfferRow:
    FILE: ClassVar[str] = "offers.csv"
    offer_id: int
    feeder: int
    kind: str  # "sell" | "buy"
    energy_wh: int
    start: int
    end: int
    price: int
    poster: str
    stamp: BlockStamp


@dataclass(frozen=True, slots=True)
class SolutionRow:
    FILE: ClassVar[str] = "solutions.csv"
    result: str  # "accepted" | "rejected"
    candidate_id: int | None  # None for a rejected submission
    submitter: str
    objective_wh: int | None  # None when a rejected submission could not be decoded
    trades: int
    offers: frozenset[int]
    gas_used: int
    stamp: BlockStamp


@dataclass(frozen=True, slots=True)
class TradeRow:
    FILE: ClassVar[str] = "trades.csv"
    interval: int
    seller: int
    buyer: int
    energy_wh: int
    price: int
    seller_feeder: int | None
    buyer_feeder: int | None
    stamp: BlockStamp


@dataclass(frozen=True, slots=True)
class FinalizationRow:
    FILE: ClassVar[str] = "finalizations.csv"
    interval: int
    candidate_id: int
    trades: int
    energy_wh: int
    stamp: BlockStamp


Row = OfferRow | SolutionRow | TradeRow | FinalizationRow
ROW_TYPES: tuple[type[Row], ...] = (OfferRow, SolutionRow, TradeRow, FinalizationRow)
_STAMP_COLUMNS = ("block", "time", "block_timestamp", "tx_hash")


def columns(row_type: type[Row]) -> list[str]:
    own = [f.name for f in dataclasses.fields(row_type) if f.name != "stamp"]
    return [*own, *_STAMP_COLUMNS]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, frozenset):
        return " ".join(str(v) for v in sorted(value))
    return str(value)


def to_cells(row: Row) -> list[str]:
    values = {f.name: getattr(row, f.name) for f in dataclasses.fields(row) if f.name != "stamp"}
    values["block"] = row.stamp.block
    values["time"] = f"{row.stamp.time_ms / 1000:.3f}"
    values["block_timestamp"] = row.stamp.block_timestamp
    values["tx_hash"] = row.stamp.tx_hash
    return [_cell(values[c]) for c in columns(type(row))]


class EventLog:
    """The four CSV files, opened for appending; each row is flushed at once."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self._files: dict[type[Row], IO[str]] = {}
        self._writers: dict[type[Row], Any] = {}
        for row_type in ROW_TYPES:
            fh = (out_dir / row_type.FILE).open("w", newline="")
            writer = csv.writer(fh)
            writer.writerow(columns(row_type))
            fh.flush()
            self._files[row_type] = fh
            self._writers[row_type] = writer

    def write(self, row: Row) -> None:
        self._writers[type(row)].writerow(to_cells(row))
        self._files[type(row)].flush()

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()


def _read(path: Path) -> Iterator[dict[str, str]]:
    if not path.exists():
        return
    with path.open(newline="") as fh:
        yield from csv.DictReader(fh)


def _ms(row: dict[str, str]) -> int:
    return round(float(row["time"]) * 1000)


def load_latency_inputs(
    events_dir: Path,
) -> tuple[list[PostedOffer], list[TradeEvent], list[TradeEvent]]:
    """(offers, accepted solutions, finalizations per block) from the CSVs."""
    offers = [
        PostedOffer(int(r["offer_id"]), int(r["block"]), _ms(r))
        for r in _read(events_dir / OfferRow.FILE)
    ]
    accepted = [
        TradeEvent(int(r["block"]), _ms(r), frozenset(int(i) for i in r["offers"].split()))
        for r in _read(events_dir / SolutionRow.FILE)
        if r["result"] == "accepted"
    ]
    per_block: dict[int, tuple[int, set[int]]] = {}
    for r in _read(events_dir / TradeRow.FILE):
        entry = per_block.setdefault(int(r["block"]), (_ms(r), set()))
        entry[1].update((int(r["seller"]), int(r["buyer"])))
    finals = [TradeEvent(b, ms, frozenset(ids)) for b, (ms, ids) in per_block.items()]
    return offers, accepted, finals


def summarize_events(events_dir: Path, intervals: Sequence[int] = ()) -> dict[str, Any]:
    """Summary of a run's event CSVs: energy (kWh, total and per interval; every
    interval of `intervals` present, 0 if nothing traded), latencies, solutions."""
    offers, accepted, finals = load_latency_inputs(events_dir)
    to_trade = offer_to_trade_seconds(offers, accepted)
    to_final = offer_to_finalization_seconds(offers, finals)
    waited = intervals_waited(
        offers, accepted, (int(r["block"]) for r in _read(events_dir / FinalizationRow.FILE))
    )
    per_interval = {t: 0 for t in intervals}
    per_interval.update(
        energy_per_interval(
            (int(r["interval"]), int(r["energy_wh"])) for r in _read(events_dir / TradeRow.FILE)
        )
    )
    results = [r["result"] for r in _read(events_dir / SolutionRow.FILE)]
    total_wh = sum(per_interval.values())
    return {
        "total_energy_traded_kwh": total_wh / 1000,
        "total_energy_traded_wh": total_wh,
        "per_interval_kwh": {str(t): wh / 1000 for t, wh in sorted(per_interval.items())},
        "offers": len(offers),
        "offers_traded": len(to_trade),
        "offers_finalized": len(to_final),
        "offer_to_trade_seconds": summarize(to_trade.values()),
        "offer_to_finalization_seconds": summarize(to_final.values()),
        "offer_to_trade_intervals": summarize(waited.values()),
        # the testbed's own latency: offers the market traded before any interval ended
        "offer_to_trade_seconds_no_wait": summarize(
            seconds for oid, seconds in to_trade.items() if waited.get(oid) == 0
        ),
        "solutions": {
            "accepted": results.count("accepted"),
            "rejected": results.count("rejected"),
        },
    }


def write_latencies(
    path: Path, to_trade: dict[int, float], to_final: dict[int, float], offers: Sequence[int]
) -> None:
    """Per-offer latencies (the data behind Figure 11): one row per offer, blank if never."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["offer_id", "offer_to_trade_seconds", "offer_to_finalization_seconds"])
        for oid in offers:
            trade, final = to_trade.get(oid), to_final.get(oid)
            writer.writerow(
                [
                    oid,
                    "" if trade is None else f"{trade:.3f}",
                    "" if final is None else f"{final:.3f}",
                ]
            )


def write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
