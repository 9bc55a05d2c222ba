"""The parts of every run that are listeners of its events (orchestrator.hooks),
attached in this order (which is the order their listeners fire in): the
progress lines, the `interval_finalized` feed, the faults, Prometheus, the
gas read from the chain.

A new part adds its `attach(run, events)` to RUN_EXTENSIONS; `Run` does not
change. The progress lines and the finalization feed are here (progress.py
stays a display module the readiness probe and the exporter import).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from agents.recorder.gas import GAS_FILE
from orchestrator.backends.base import Backend, Placement
from orchestrator.faults.session import RunFaults
from orchestrator.faults.timeline import FaultPlan
from orchestrator.hooks import BringUp, EventHook, Events, IntervalFinalized
from orchestrator.lifecycle import Outcome
from orchestrator.observability.collect import RunMetricsHooks
from orchestrator.plan import Plan
from orchestrator.progress import CsvTail, Progress, StatusLine, bring_up_line
from orchestrator.results.gas import gas_of_run
from orchestrator.spec import Spec


@dataclass(frozen=True)
class RunContext:
    """What an extension may know of its run (all fixed before it starts)."""

    spec: Spec
    plan: Plan
    backend: Backend
    bundle: Path  # the run's bundle directory (events/ holds the recorder's CSVs)
    announce: Callable[[str], None]  # orchestrator.log, and the progress stream if any
    progress: TextIO | None = None  # where progress lines go (None: quiet)
    faults: FaultPlan | None = None  # the spec's `faults:` as planned


# Called with the run's context and events before the run starts; adds listeners.
Extension = Callable[[RunContext, Events], None]


class RunProgress:
    """Progress lines for one run: the bring-up (what starts, agents ready, an
    estimate of the time left), then from the watch on (all agents ready) at
    every tick, and a last update at teardown. On a terminal each phase is one
    status line redrawn in place; otherwise one line per tier (then interval)."""

    def __init__(
        self, events: Path, stream: TextIO, last_interval: int, tty: bool | None = None
    ) -> None:
        self.events = events
        self.stream = stream
        self.last_interval = last_interval
        self.tty = stream.isatty() if tty is None else tty
        self.clock_metrics_url: str | None = None
        self.progress: Progress | None = None
        self.line = StatusLine(stream)
        self.bring_up: BringUp | None = None

    def attach(self, events: Events) -> None:
        events.started.add_listener(self.placed, name="progress")
        events.bringing_up.add_listener(self.bringing_up, name="progress")
        events.all_ready.add_listener(self.start, name="progress")
        events.tick.add_listener(self.update, name="progress")
        events.stopping.add_listener(self.close, name="progress")

    def placed(self, placement: Placement) -> None:
        self.clock_metrics_url = placement.agents["clock"].metrics_url

    def bringing_up(self, where: BringUp) -> None:
        text = bring_up_line(
            where.stage, where.ready, where.total, where.agents_elapsed, where.tier, where.tiers
        )
        if self.tty:
            self.line.draw(text)
        elif self.bring_up is None or self.bring_up.stage != where.stage:
            print(text, file=self.stream, flush=True)
        self.bring_up = where

    def start(self) -> None:
        last = self.bring_up
        if last is not None:
            took = f" in {last.agents_elapsed:.1f} s" if last.agents_elapsed is not None else ""
            self._line_done(f"all {last.total} agents ready{took}")
        self.progress = Progress(
            self.events,
            self.stream,
            clock_metrics_url=self.clock_metrics_url,
            last_interval=self.last_interval,
            tty=self.tty,
        )

    def update(self, _status: Mapping[str, Any]) -> None:
        if self.progress is not None:
            self.progress.update()

    def close(self, outcome: Outcome) -> None:
        if self.progress is not None:
            self.progress.close()
        else:  # stopped while starting: keep the bring-up line
            self.line.end()
        if outcome.status == "interrupted":  # say at once that the Ctrl-C was heard
            print(
                f"interrupted ({outcome.message}): stopping the testbed; "
                "the bundle keeps what was recorded",
                file=self.stream,
                flush=True,
            )

    def _line_done(self, text: str) -> None:
        if self.tty:
            self.line.draw(text)
            self.line.end()
        else:
            print(text, file=self.stream, flush=True)


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


class ChainGas:
    """summary.json `gas`: gas by contract function, from the chain's blocks (what the
    recorder counted in events/gas.json, and the blocks after it)."""

    def __init__(self, backend: Backend, bundle: Path) -> None:
        self.backend = backend
        self.recorded = bundle / "events" / GAS_FILE
        self.rpc_url: str | None = None
        self.contract: str | None = None
        self.gas: dict[str, Any] = {}

    def attach(self, events: Events) -> None:
        events.started.add_listener(self.placed, name="gas")
        events.contract_deployed.add_listener(self.deployed, name="gas")
        events.agents_stopped.add_listener(self.read, name="gas")
        events.summarizing.add_listener(self.add_summary, name="gas")

    def placed(self, placement: Placement) -> None:
        self.rpc_url = placement.rpc_url_local

    def deployed(self, contract: str) -> None:
        self.contract = contract

    def read(self, _outcome: object) -> None:
        """While the chain still runs (the agents have stopped)."""
        chain = self.backend.status().get("chain")
        if self.rpc_url and self.contract and chain is not None and chain.state == "running":
            self.gas = gas_of_run(self.rpc_url, self.contract, self.recorded)

    def add_summary(self, extra: dict[str, Any], _exit_codes: object) -> None:
        if self.gas:
            extra["gas"] = self.gas


def attach_faults(run: RunContext, events: Events) -> None:
    RunFaults(run.faults, run.backend, run.plan, run.bundle, run.announce).attach(events)


def attach_metrics(run: RunContext, events: Events) -> None:
    RunMetricsHooks(run.spec, run.plan, run.backend, run.bundle, run.announce).attach(events)


def attach_gas(run: RunContext, events: Events) -> None:
    ChainGas(run.backend, run.bundle).attach(events)


RUN_EXTENSIONS: tuple[Extension, ...] = (
    attach_progress,
    attach_finalizations,
    attach_faults,
    attach_metrics,
    attach_gas,
)
