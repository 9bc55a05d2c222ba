"""A run's lifecycle events, after Locust's `Environment.events`: `Run` fires
them, the parts that go with a run (faults, Prometheus, the progress lines, and
whatever comes next) subscribe, so `Run` calls none of them by name.

    events = Events(on_error)
    events.tick.add_listener(progress.update, name="progress")
    events.tick.fire(status)

A run's parts attach themselves: an `Extension` (orchestrator.extensions) is
called with the run's `RunContext` and its `Events` before the run starts, and
adds its listeners. The run calls every extension of
orchestrator.extensions.RUN_EXTENSIONS (the built-in parts) and of
`RunOptions.extensions` (one run's own). This module knows none of those parts,
so any of them can import it.

Listeners run in the order they were added. Errors follow the run's rules:
while the run goes, a listener's exception ends the run like any other error
(it becomes the run's outcome); from `Events.tear_down()` on (and always for
the teardown hooks) a failing listener is handed to `on_error` (the run logs it
and records it in the manifest's `teardown_errors`) and the other listeners
still run, so nothing a listener does can stop a teardown.

Two things are not events, because the run asks rather than tells:
`wait(seconds)`, the watch loop's pause between polls, which one listener may
own (the fault injector follows the clock during it); `exempt()`, the units
whose exit is not a crash (Prometheus, agents a fault killed), which listeners
declare with `add_exempt`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec

from orchestrator.backends.base import Placement, UnitStatus
from orchestrator.lifecycle import Outcome
from orchestrator.plan import AgentPlan

P = ParamSpec("P")
OnError = Callable[[str, Exception], None]


class EventHook(Generic[P]):
    """Listeners of one event, called in the order they were added."""

    def __init__(self, name: str, on_error: OnError | None = None) -> None:
        self.name = name
        self.on_error = on_error  # None: a listener's exception propagates
        self._listeners: list[tuple[str, Callable[P, Any]]] = []

    def add_listener(self, listener: Callable[P, Any], name: str | None = None) -> Callable[P, Any]:
        """`name` says what failed in the run's log and teardown errors
        (default: the listener's qualified name). Returns `listener`, so it
        also works as a decorator."""
        label = name or getattr(listener, "__qualname__", None) or repr(listener)
        self._listeners.append((label, listener))
        return listener

    def remove_listener(self, listener: Callable[P, Any]) -> None:
        self._listeners = [(n, fn) for n, fn in self._listeners if fn != listener]

    def __len__(self) -> int:
        return len(self._listeners)

    def fire(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for label, listener in list(self._listeners):
            if self.on_error is None:
                listener(*args, **kwargs)
                continue
            try:
                listener(*args, **kwargs)
            except Exception as exc:  # contained: the other listeners still run
                self.on_error(label, exc)


@dataclass(frozen=True)
class IntervalFinalized:
    """One row of the recorder's finalizations.csv, as the run saw it appear."""

    interval: int
    trades: int
    energy_wh: int
    candidate_id: int | None = None


@dataclass(frozen=True)
class BringUp:
    """Where the bring-up is: `stage` ("chain", "contract", or the role of the tier
    starting), agents ready of `total`, seconds since the first tier started
    (`agents_elapsed`, None before) and the tier's place in the start order."""

    stage: str
    ready: int
    total: int
    agents_elapsed: float | None = None
    tier: int = 0
    tiers: int = 0


class Events:
    """The hooks of one run, in the order they fire.

    - `started(placement)`: the backend has placed every unit; nothing runs yet.
    - `bringing_up(where)`: the bring-up moved on (a stage began, or a poll of
      the agents' readiness): the chain, the contract, each tier (BringUp).
    - `contract_deployed(address)`: the market contract is on the chain.
    - `tier_ready(tier, placement)`: a tier of agents reported ready (the
      recorder, the DSO, the clock, the solvers, the prosumer hosts).
    - `market_starting()`: before the last tier (the prosumers) starts. A
      listener that waits delays the hosts: on a swarm the metrics hooks wait
      for Prometheus's discovery in a thread, joined at `all_ready`.
    - `all_ready()`: every agent is ready; the watch begins.
    - `tick(status)`: every poll of the watch (and of the wait for the agents
      to finish), with the backend's status of every unit.
    - `interval_finalized(row)`: an interval was finalized on chain (once per
      interval, in order, also for those the recorder wrote while stopping).
    - `market_finished()`: the clock finished the last interval.
    - `stopping(outcome)`: teardown, before the agents stop.
    - `agents_stopped(outcome)`: teardown, the agents stopped (the chain still runs).
    - `summarizing(extra, exit_codes)`: the listeners' blocks of summary.json
      go into `extra` (a key summary.json has already keeps its place);
      `exit_codes` maps each stopped unit to its exit code.
    """

    def __init__(self, on_error: OnError) -> None:
        self.on_error = on_error
        self.started: EventHook[[Placement]] = EventHook("started")
        self.bringing_up: EventHook[[BringUp]] = EventHook("bringing_up")
        self.contract_deployed: EventHook[[str]] = EventHook("contract_deployed")
        self.tier_ready: EventHook[[Sequence[AgentPlan], Placement]] = EventHook("tier_ready")
        self.market_starting: EventHook[[]] = EventHook("market_starting")
        self.all_ready: EventHook[[]] = EventHook("all_ready")
        self.tick: EventHook[[Mapping[str, UnitStatus]]] = EventHook("tick")
        self.interval_finalized: EventHook[[IntervalFinalized]] = EventHook("interval_finalized")
        self.market_finished: EventHook[[]] = EventHook("market_finished")
        self.stopping: EventHook[[Outcome]] = EventHook("stopping", on_error)
        self.agents_stopped: EventHook[[Outcome]] = EventHook("agents_stopped", on_error)
        self.summarizing: EventHook[[dict[str, Any], Mapping[str, int | None]]] = EventHook(
            "summarizing", on_error
        )
        self._waiter: Callable[[float], None] | None = None
        self._exempt: list[Callable[[], Iterable[str]]] = []

    def hooks(self) -> list[EventHook[Any]]:
        return [v for v in vars(self).values() if isinstance(v, EventHook)]

    def tear_down(self) -> None:
        """From now on every hook contains its listeners' errors."""
        for hook in self.hooks():
            hook.on_error = self.on_error

    # -- what the run asks -------------------------------------------------------------
    def own_wait(self, waiter: Callable[[float], None]) -> None:
        """`waiter(seconds)` is the watch loop's pause from now on (one owner)."""
        if self._waiter is not None and self._waiter != waiter:
            raise ValueError("the watch loop's wait has an owner already")
        self._waiter = waiter

    def wait(self, seconds: float) -> None:
        if self._waiter is None:
            time.sleep(seconds)
        else:
            self._waiter(seconds)

    def add_exempt(self, units: Callable[[], Iterable[str]]) -> None:
        """`units()`: names whose exit the run does not count as a crash."""
        self._exempt.append(units)

    def exempt(self) -> set[str]:
        return {name for units in self._exempt for name in units()}
