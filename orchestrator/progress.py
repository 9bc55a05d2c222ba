"""Terminal progress while a run goes: interval, offers, trades, energy traded,
offer-to-trade latency p50/p95.

Counts come from the recorder's CSVs in the bundle (read incrementally: only
the bytes appended since the last poll), the current interval from the
clock's Prometheus endpoint. On a TTY one status line is redrawn in place;
otherwise one line is printed per finalized interval (from finalizations.csv,
so no interval is skipped however fast a lockstep run goes).
"""

from __future__ import annotations

import csv
import io
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from agents.recorder.stats import percentile

SCRAPE_TIMEOUT_SECONDS = 1.0

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition -> {"name{labels}": value} (comments skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            continue
        try:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
        except ValueError:
            continue
    return out


def scrape(url: str, timeout: float = SCRAPE_TIMEOUT_SECONDS) -> dict[str, float] | None:
    """The metrics at `url`, or None when the endpoint does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return parse_metrics(resp.read().decode("utf-8", "replace"))
    except (OSError, urllib.error.URLError, ValueError):
        return None


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
        for row in self.new_finalized:  # an interval without trades is finalized too
            interval = _int(row, "interval")
            if interval is not None:
                s.finalized = max(s.finalized or interval, interval)
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


STAGE_TEXT = {"chain": "starting the chain", "contract": "deploying the market contract"}


def eta_seconds(ready: int, total: int, elapsed: float | None) -> float | None:
    """Seconds until `total` agents are ready at the rate so far (None: no rate yet)."""
    if not ready or not elapsed or elapsed <= 0:
        return None
    return (total - ready) * elapsed / ready


def bring_up_line(
    stage: str, ready: int, total: int, elapsed: float | None, tier: int = 0, tiers: int = 0
) -> str:
    """The status line while a run starts: what starts, agents ready, an estimate."""
    what = STAGE_TEXT.get(stage) or f"starting {stage}"
    if tiers and stage not in STAGE_TEXT:
        what += f" (tier {tier}/{tiers})"
    parts = [what, f"{ready}/{total} agents ready"]
    if elapsed is not None:
        parts.append(f"{elapsed:.1f} s")
    left = eta_seconds(ready, total, elapsed)
    if left is not None and ready < total:
        parts.append(f"~{left:.0f} s left")
    return ", ".join(parts)


class StatusLine:
    """One line redrawn in place on a terminal (shorter text is padded over)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._width = 0

    def draw(self, text: str) -> None:
        self.stream.write("\r" + text + " " * max(0, self._width - len(text)))
        self.stream.flush()
        self._width = len(text)

    def end(self) -> None:
        """Keep the line and go on below it (nothing if none was drawn)."""
        if self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


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
        # never behind what was finalized: at the end the clock has exited (its
        # last reading may be an interval early) and the last interval is done
        if snap.finalized is not None:
            snap.interval = max(snap.interval or snap.finalized, snap.finalized)
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
