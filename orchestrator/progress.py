"""Terminal progress while a run goes: interval, offers, trades, energy traded,
offer-to-trade latency p50/p95.

Counts come from the recorder's CSVs in the bundle (read incrementally: only
the bytes appended since the last poll), the current interval from the
clock's Prometheus endpoint. On a TTY one status line is redrawn in place;
otherwise one line is printed per finalized interval (from finalizations.csv,
so no interval is skipped however fast a lockstep run goes).

In a run, `RunProgress` subscribes to the run's events (started: find the
clock; tick: update; stopping: the last update), and `FinalizationFeed` turns
new rows of finalizations.csv into `interval_finalized` events.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from agents.recorder.stats import percentile
from orchestrator.backends.base import Placement
from orchestrator.hooks import EventHook, Events, IntervalFinalized, RunContext
from orchestrator.scrape import parse_metrics, scrape

__all__ = [
    "CsvTail",
    "FinalizationFeed",
    "Progress",
    "RunProgress",
    "attach_finalizations",
    "attach_progress",
    "parse_metrics",
    "scrape",
]


class CsvTail:
    """Rows appended to a CSV file since the last call (complete lines only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.header: list[str] | None = None
        self._partial = b""

    def read_new(self) -> list[dict[str, str]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        lines = data[:cut].decode("utf-8", "replace").splitlines()
        if not lines:
            return []
        if self.header is None:
            self.header = next(csv.reader([lines[0]]))
            lines = lines[1:]
        reader = csv.DictReader(io.StringIO("\n".join(lines)), fieldnames=self.header)
        return list(reader)


@dataclass
class Snapshot:
    interval: int | None = None
    last_interval: int | None = None
    finalized: int | None = None
    offers: int = 0
    solutions: int = 0
    trades: int = 0
    energy_wh: int = 0
    latency_p50: float | None = None
    latency_p95: float | None = None

    def line(self) -> str:
        parts = []
        if self.interval is not None:
            total = f"/{self.last_interval}" if self.last_interval is not None else ""
            parts.append(f"interval {self.interval}{total}")
        parts.append(f"offers {self.offers}")
        parts.append(f"trades {self.trades}")
        parts.append(f"energy {self.energy_wh / 1000:.1f} kWh")
        if self.latency_p50 is not None and self.latency_p95 is not None:
            parts.append(f"offer->trade p50 {self.latency_p50:.2f}s p95 {self.latency_p95:.2f}s")
        return "  ".join(parts)


def _int(row: dict[str, str], key: str) -> int | None:
    try:
        return int(float(row[key]))
    except (KeyError, TypeError, ValueError):
        return None


def _float(row: dict[str, str], key: str) -> float | None:
    try:
        return float(row[key])
    except (KeyError, TypeError, ValueError):
        return None


@dataclass
class EventCounter:
    """Running totals over the recorder's CSVs in `events`."""

    events: Path
    offers: CsvTail = field(init=False)
    solutions: CsvTail = field(init=False)
    trades: CsvTail = field(init=False)
    finalizations: CsvTail = field(init=False)
    snapshot: Snapshot = field(default_factory=Snapshot)
    latencies: list[float] = field(default_factory=list)
    posted_at: dict[str, float] = field(default_factory=dict)
    new_finalized: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.offers = CsvTail(self.events / "offers.csv")
        self.solutions = CsvTail(self.events / "solutions.csv")
        self.trades = CsvTail(self.events / "trades.csv")
        self.finalizations = CsvTail(self.events / "finalizations.csv")

    def poll(self) -> Snapshot:
        """Read what was appended; `new_finalized` holds the intervals
        finalized since the previous poll."""
        s = self.snapshot
        for row in self.offers.read_new():
            s.offers += 1
            posted = _float(row, "time")
            if "offer_id" in row and posted is not None:
                self.posted_at[row["offer_id"]] = posted
        for row in self.solutions.read_new():
            s.solutions += 1
            if row.get("result") != "accepted":
                continue
            # offer-to-trade: offer's block to the first accepted solution trading it
            solved = _float(row, "time")
            for offer_id in (row.get("offers") or "").split():
                posted_at = self.posted_at.pop(offer_id, None)
                if posted_at is not None and solved is not None:
                    self.latencies.append(solved - posted_at)
        self.new_finalized = self.finalizations.read_new()
        for row in self.trades.read_new():
            s.trades += 1
            s.energy_wh += _int(row, "energy_wh") or 0
            interval = _int(row, "interval")
            if interval is not None:
                s.finalized = max(s.finalized or interval, interval)
        if self.latencies:
            ordered = sorted(self.latencies)
            s.latency_p50 = percentile(ordered, 50)
            s.latency_p95 = percentile(ordered, 95)
        return s


class Progress:
    """Polls the run's events and the clock; prints progress to `stream`."""

    def __init__(
        self,
        events: Path,
        stream: TextIO,
        *,
        clock_metrics_url: str | None = None,
        last_interval: int | None = None,
        tty: bool | None = None,
        scraper: Callable[[str], dict[str, float] | None] = scrape,
    ) -> None:
        self.counter = EventCounter(events)
        self.counter.snapshot.last_interval = last_interval
        self.stream = stream
        self.clock_metrics_url = clock_metrics_url
        self.tty = stream.isatty() if tty is None else tty
        self.scraper = scraper
        self._width = 0
        self._trades = 0
        self._energy_wh = 0

    def poll(self) -> Snapshot:
        snap = self.counter.poll()
        if self.clock_metrics_url:
            metrics = self.scraper(self.clock_metrics_url)
            if metrics and "testbed_current_interval" in metrics:
                snap.interval = int(metrics["testbed_current_interval"])
        if snap.interval is None and snap.finalized is not None:
            snap.interval = snap.finalized
        return snap

    def update(self) -> Snapshot:
        snap = self.poll()
        if self.tty:
            line = snap.line()
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            # running totals over finalizations, so each line is consistent
            for row in self.counter.new_finalized:
                trades, energy = _int(row, "trades") or 0, _int(row, "energy_wh") or 0
                self._trades += trades
                self._energy_wh += energy
                line = Snapshot(
                    interval=_int(row, "interval"),
                    last_interval=snap.last_interval,
                    offers=snap.offers,
                    trades=self._trades,
                    energy_wh=self._energy_wh,
                    latency_p50=snap.latency_p50,
                    latency_p95=snap.latency_p95,
                ).line()
                self.stream.write(f"{line}  (+{trades} trades, {energy / 1000:.1f} kWh)\n")
        self.stream.flush()
        return snap

    def close(self) -> Snapshot:
        """Final poll; ends the TTY status line."""
        snap = self.update()
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
        return snap


class RunProgress:
    """Progress lines for one run, driven by the run's events: from the watch
    on (all agents ready), at every tick, and a last update at teardown."""

    def __init__(self, events: Path, stream: TextIO, last_interval: int) -> None:
        self.events = events
        self.stream = stream
        self.last_interval = last_interval
        self.clock_metrics_url: str | None = None
        self.progress: Progress | None = None

    def attach(self, events: Events) -> None:
        events.started.add_listener(self.placed, name="progress")
        events.all_ready.add_listener(self.start, name="progress")
        events.tick.add_listener(self.update, name="progress")
        events.stopping.add_listener(self.close, name="progress")

    def placed(self, placement: Placement) -> None:
        self.clock_metrics_url = placement.agents["clock"].metrics_url

    def start(self) -> None:
        self.progress = Progress(
            self.events,
            self.stream,
            clock_metrics_url=self.clock_metrics_url,
            last_interval=self.last_interval,
        )

    def update(self, _status: Mapping[str, Any]) -> None:
        if self.progress is not None:
            self.progress.update()

    def close(self, _outcome: object) -> None:
        if self.progress is not None:
            self.progress.close()


class FinalizationFeed:
    """Fires `interval_finalized` once per new row of the recorder's
    finalizations.csv: at every tick and once more when the agents have
    stopped (what the recorder wrote last)."""

    def __init__(self, events: Path, hook: EventHook[[IntervalFinalized]]) -> None:
        self.tail = CsvTail(events / "finalizations.csv")
        self.hook = hook

    def attach(self, events: Events) -> None:
        events.tick.add_listener(self.poll, name="finalizations")
        events.agents_stopped.add_listener(self.poll, name="finalizations")

    def poll(self, *_: object) -> None:
        for row in self.tail.read_new():
            interval = _int(row, "interval")
            if interval is not None:
                trades, energy = _int(row, "trades") or 0, _int(row, "energy_wh") or 0
                self.hook.fire(
                    IntervalFinalized(interval, trades, energy, _int(row, "candidate_id"))
                )


def attach_progress(run: RunContext, events: Events) -> None:
    """Progress lines when the run has a progress stream."""
    if run.progress is not None:
        last = run.plan.market.last_interval
        RunProgress(run.bundle / "events", run.progress, last).attach(events)


def attach_finalizations(run: RunContext, events: Events) -> None:
    FinalizationFeed(run.bundle / "events", events.interval_finalized).attach(events)
