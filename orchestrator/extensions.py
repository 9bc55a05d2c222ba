"""The parts of every run that are listeners of its events (orchestrator.hooks),
attached in this order (which is the order their listeners fire in): the
progress lines, the `interval_finalized` feed, the faults, Prometheus, the
gas read from the chain.

A new part adds its `attach(run, events)` to RUN_EXTENSIONS; `Run` does not
change. The progress lines and the finalization feed are here (progress.py
stays a display module the readiness probe and the exporter import).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from orchestrator.backends.base import Placement
from orchestrator.faults.session import attach_faults
from orchestrator.hooks import EventHook, Events, Extension, IntervalFinalized, RunContext
from orchestrator.observability.collect import attach_metrics
from orchestrator.progress import CsvTail, Progress
from orchestrator.results.summary import attach_gas


class RunProgress:
    """Progress lines for one run: from the watch on (all agents ready), at
    every tick, and a last update at teardown."""

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
            interval = _int(row.get("interval"))
            if interval is not None:
                trades, energy = _int(row.get("trades")) or 0, _int(row.get("energy_wh")) or 0
                candidate = _int(row.get("candidate_id"))
                self.hook.fire(IntervalFinalized(interval, trades, energy, candidate))


def _int(cell: str | None) -> int | None:
    try:
        return int(float(cell)) if cell else None
    except ValueError:
        return None


def attach_progress(run: RunContext, events: Events) -> None:
    """Progress lines when the run has a progress stream."""
    if run.progress is not None:
        last = run.plan.market.last_interval
        RunProgress(run.bundle / "events", run.progress, last).attach(events)


def attach_finalizations(run: RunContext, events: Events) -> None:
    FinalizationFeed(run.bundle / "events", events.interval_finalized).attach(events)


RUN_EXTENSIONS: tuple[Extension, ...] = (
    attach_progress,
    attach_finalizations,
    attach_faults,
    attach_metrics,
    attach_gas,
)
