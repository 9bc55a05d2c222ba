"""orchestrator.hooks: listeners fire in the order they were added; while the
run goes a listener's exception propagates (it becomes the run's outcome);
teardown hooks (and every hook after `tear_down()`) run every listener and hand
failures to `on_error`; the watch loop's wait has one owner; exempt units are
the union of what listeners declare. FinalizationFeed turns the recorder's
finalizations.csv into one `interval_finalized` per interval."""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from agents.recorder.records import BlockStamp, EventLog, FinalizationRow
from orchestrator import run as run_module
from orchestrator.errors import TestbedError
from orchestrator.extensions import FinalizationFeed
from orchestrator.hooks import EventHook, Events, IntervalFinalized
from orchestrator.lifecycle import AgentFailed, Interrupted, NotReady, Outcome, outcome_of

OK = Outcome("ok", 0, "last interval finalized")


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.errors: list[tuple[str, str]] = []

    def listener(self, label: str, fail: bool = False) -> Callable[..., None]:
        def call(*args: object) -> None:
            self.calls.append((label, args))
            if fail:
                raise RuntimeError(f"{label} failed")

        return call

    def on_error(self, what: str, exc: Exception) -> None:
        self.errors.append((what, str(exc)))


def test_listeners_fire_in_the_order_added_with_the_arguments() -> None:
    rec = Recorder()
    hook: EventHook[[int, str]] = EventHook("x")
    for label in ("a", "b", "c"):
        hook.add_listener(rec.listener(label))
    hook.fire(7, "y")
    assert rec.calls == [("a", (7, "y")), ("b", (7, "y")), ("c", (7, "y"))]
    assert len(hook) == 3


def test_add_listener_works_as_a_decorator() -> None:
    events = Events(Recorder().on_error)
    seen: list[int] = []

    @events.interval_finalized.add_listener
    def power_flow(row: IntervalFinalized) -> None:
        seen.append(row.interval)

    events.interval_finalized.fire(IntervalFinalized(50, 1, 100))
    assert seen == [50] and callable(power_flow)


def test_remove_listener() -> None:
    rec = Recorder()
    hook: EventHook[[]] = EventHook("x")
    first, second = rec.listener("a"), rec.listener("b")
    hook.add_listener(first)
    hook.add_listener(second)
    hook.remove_listener(first)
    hook.fire()
    assert [label for label, _ in rec.calls] == ["b"]


def test_while_the_run_goes_a_failing_listener_propagates_and_stops_the_rest() -> None:
    rec = Recorder()
    events = Events(rec.on_error)
    events.tick.add_listener(rec.listener("a", fail=True))
    events.tick.add_listener(rec.listener("b"))
    with pytest.raises(RuntimeError, match="a failed"):
        events.tick.fire({})
    assert [label for label, _ in rec.calls] == ["a"]
    assert rec.errors == []
    # the run's rules: an exception from a listener is the run's outcome
    assert outcome_of(RuntimeError("a failed")).exit_code == run_module.EXIT_ERROR


def test_teardown_hooks_always_run_every_listener() -> None:
    rec = Recorder()
    events = Events(rec.on_error)
    events.stopping.add_listener(rec.listener("progress", fail=True), name="progress")
    events.stopping.add_listener(rec.listener("faults restore"), name="faults restore")
    events.agents_stopped.add_listener(rec.listener("metrics", fail=True), name="metrics snapshot")
    events.agents_stopped.add_listener(rec.listener("gas"), name="gas")
    events.stopping.fire(OK)
    events.agents_stopped.fire(OK)
    assert [label for label, _ in rec.calls] == ["progress", "faults restore", "metrics", "gas"]
    assert rec.errors == [
        ("progress", "progress failed"),
        ("metrics snapshot", "metrics failed"),
    ]


def test_summarizing_listeners_fill_the_extra_block_whatever_fails() -> None:
    rec = Recorder()
    events = Events(rec.on_error)

    def faults(extra: dict[str, Any], exit_codes: Mapping[str, int | None]) -> None:
        extra["faults"] = {"crashed": sorted(exit_codes)}

    events.summarizing.add_listener(rec.listener("broken", fail=True), name="gas")
    events.summarizing.add_listener(faults, name="faults summary")
    extra: dict[str, Any] = {"wall_seconds": 1.0}
    events.summarizing.fire(extra, {"solver-1": 3})
    assert extra == {"wall_seconds": 1.0, "faults": {"crashed": ["solver-1"]}}
    assert rec.errors == [("gas", "broken failed")]


def test_after_tear_down_every_hook_contains_its_listeners_errors() -> None:
    rec = Recorder()
    events = Events(rec.on_error)
    events.tick.add_listener(rec.listener("a", fail=True), name="a")
    events.tick.add_listener(rec.listener("b"), name="b")
    events.interval_finalized.add_listener(rec.listener("grid", fail=True), name="grid")
    events.tear_down()
    events.tick.fire({})
    events.interval_finalized.fire(IntervalFinalized(53, 2, 900))
    assert [label for label, _ in rec.calls] == ["a", "b", "grid"]
    assert [what for what, _ in rec.errors] == ["a", "grid"]


def test_interrupts_are_never_contained() -> None:
    rec = Recorder()
    events = Events(rec.on_error)

    def interrupted(_outcome: Outcome) -> None:
        raise KeyboardInterrupt

    events.stopping.add_listener(interrupted)
    with pytest.raises(KeyboardInterrupt):
        events.stopping.fire(OK)


def test_the_wait_has_one_owner() -> None:
    events = Events(Recorder().on_error)
    waited: list[float] = []
    events.wait(0.0)  # no owner: a plain sleep
    events.own_wait(waited.append)
    events.own_wait(waited.append)  # the same owner again is fine
    events.wait(0.5)
    assert waited == [0.5]
    with pytest.raises(ValueError, match="owner"):
        events.own_wait(lambda _seconds: None)


def test_exempt_units_are_what_the_listeners_declare_now() -> None:
    events = Events(Recorder().on_error)
    killed: set[str] = set()
    events.add_exempt(lambda: {"prometheus"})
    events.add_exempt(lambda: killed)
    assert events.exempt() == {"prometheus"}
    killed.add("solver-1")
    assert events.exempt() == {"prometheus", "solver-1"}


def test_every_hook_is_listed_and_teardown_hooks_are_contained_from_the_start() -> None:
    events = Events(Recorder().on_error)
    names = [h.name for h in events.hooks()]
    assert names == [
        "started",
        "bringing_up",
        "contract_deployed",
        "tier_ready",
        "market_starting",
        "all_ready",
        "tick",
        "interval_finalized",
        "market_finished",
        "stopping",
        "agents_stopped",
        "summarizing",
    ]
    contained = {h.name for h in events.hooks() if h.on_error is not None}
    assert contained == {"stopping", "agents_stopped", "summarizing"}


def test_finalization_feed_fires_once_per_interval_in_order(tmp_path: Path) -> None:
    events = Events(Recorder().on_error)
    seen: list[IntervalFinalized] = []
    events.interval_finalized.add_listener(seen.append)
    FinalizationFeed(tmp_path, events.interval_finalized).attach(events)
    events.tick.fire({})  # no file yet
    assert seen == []
    log = EventLog(tmp_path)
    try:
        for interval in (52, 53):
            stamp = BlockStamp(interval, 1, 1, "0x")
            log.write(FinalizationRow(interval, interval - 50, 3, 1200, stamp))
        events.tick.fire({})
        events.tick.fire({})  # nothing new: nothing fired again
        assert [f.interval for f in seen] == [52, 53]
        log.write(FinalizationRow(54, 4, 0, 0, BlockStamp(60, 1, 1, "0x")))
    finally:
        log.close()
    path = tmp_path / "finalizations.csv"
    with path.open("a") as fh:
        fh.write("55,5,1,")  # a row the recorder has not finished writing
    events.agents_stopped.fire(OK)  # the drain at teardown
    assert seen == [
        IntervalFinalized(52, 3, 1200, 2),
        IntervalFinalized(53, 3, 1200, 3),
        IntervalFinalized(54, 0, 0, 4),
    ]


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (KeyboardInterrupt(), "interrupted", run_module.EXIT_INTERRUPTED),
        (Interrupted(signal.SIGTERM), "interrupted", 143),
        (AgentFailed("solver-1", 1), "agent_failed", run_module.EXIT_AGENT_FAILED),
        (NotReady("agents not ready"), "not_ready", run_module.EXIT_NOT_READY),
        (TestbedError("deploy failed"), "error", run_module.EXIT_ERROR),
        (ValueError("bug"), "error", run_module.EXIT_ERROR),
    ],
)
def test_outcome_of_an_exception(exc: BaseException, status: str, code: int) -> None:
    outcome = outcome_of(exc)
    assert (outcome.status, outcome.exit_code) == (status, code)
