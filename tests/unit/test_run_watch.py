"""The run's watch: an agent that exits 0 while the clock still runs.

Before the last interval is finalized that is a failure (after a grace period);
once the recorder has finalized it, a prosumer host that exits 0 has settled and
the clock is waiting (bounded) for the others to settle: the run waits for the
clock. At 10x the paper on a saturated machine the last host settled more than
EARLY_EXIT_GRACE_SECONDS after the first one left, which failed a good run.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator import run as run_module
from orchestrator.backends.base import UnitStatus
from orchestrator.hooks import Events
from orchestrator.lifecycle import AgentFailed
from orchestrator.run import Run

LAST = 52


class Statuses:
    """The backend's status: host bbb-01 exited 0 from the start; the clock exits 0
    at poll `clock_exits` (never: None)."""

    def __init__(self, clock_exits: int | None) -> None:
        self.polls = 0
        self.clock_exits = clock_exits

    def status(self) -> dict[str, UnitStatus]:
        self.polls += 1
        done = self.clock_exits is not None and self.polls >= self.clock_exits
        clock = UnitStatus("clock", "exited", returncode=0 if done else None)
        if not done:
            clock = UnitStatus("clock", "running")
        return {
            "clock": clock,
            "chain": UnitStatus("chain", "running"),
            "bbb-01": UnitStatus("bbb-01", "exited", returncode=0),
            "bbb-02": UnitStatus("bbb-02", "running"),
        }


def watched_run(tmp_path: Path, backend: Statuses) -> Any:
    """A Run with only what `watch` reads (the rest of a run is not needed here)."""
    events_dir = tmp_path / "events"
    events_dir.mkdir()
    log = tmp_path / "bbb-01.log"
    log.write_text("settled: 8 offers posted, 0 withdrawals refused\n")
    run: Any = Run.__new__(Run)
    run.backend = backend
    run.bundle = SimpleNamespace(events=events_dir)
    run.plan = SimpleNamespace(market=SimpleNamespace(last_interval=LAST))
    run.placement = SimpleNamespace(agents={"bbb-01": SimpleNamespace(log_file=log)})
    run.events = Events(on_error=lambda *_: None)
    run.peak_rss = {}
    run.timeline = {}
    run._finalized = False
    run._t0 = 0.0
    run._log = run_module.logging.getLogger("test-run-watch")
    return run


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_module, "EARLY_EXIT_GRACE_SECONDS", 0.05)
    monkeypatch.setattr(run_module, "WATCH_POLL_SECONDS", 0.02)


def finalize(events_dir: Path, *intervals: int) -> None:
    rows = "".join(f"{i},0x{i:02x}\n" for i in intervals)
    (events_dir / "finalizations.csv").write_text("interval,tx\n" + rows)


def test_a_host_that_leaves_before_the_last_interval_is_finalized_fails_the_run(
    tmp_path: Path,
) -> None:
    run = watched_run(tmp_path, Statuses(clock_exits=None))
    finalize(run.bundle.events, LAST - 2, LAST - 1)  # not the last one yet
    with pytest.raises(AgentFailed) as failed:
        run.watch()
    assert failed.value.name == "bbb-01"
    assert "exited before the last interval was finalized" in str(failed.value)
    assert "settled: 8 offers posted" in str(failed.value)  # its log's tail


def test_a_settled_host_waits_for_the_clock_once_the_last_interval_is_finalized(
    tmp_path: Path,
) -> None:
    backend = Statuses(clock_exits=40)  # 40 polls of 0.02 s: far past the 0.05 s grace
    run = watched_run(tmp_path, backend)
    finalize(run.bundle.events, LAST - 1, LAST)
    run.watch()  # returns: the clock finished
    assert backend.polls == 40
    assert "clock finished" in run.timeline
