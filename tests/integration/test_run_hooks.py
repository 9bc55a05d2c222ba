"""A run's lifecycle events (orchestrator.hooks) on the local backend with real
agents, anvil and Prometheus, seen by an extension given through
`RunOptions.extensions` (Run is not edited to add it):

- the events come in the lifecycle's order, `interval_finalized` once for every
  interval the recorder finalized, in order, and the extension's block lands in
  summary.json;
- a teardown listener that fails is recorded in the manifest's
  `teardown_errors` and the teardown goes on (the other listeners run, every
  process stops, summary.json and the metrics snapshot are written);
- a listener that fails while the run goes ends the run (exit 1, internal
  error), torn down like any other failure.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil
import pytest

from orchestrator.extensions import RunContext
from orchestrator.hooks import Events, IntervalFinalized
from orchestrator.lifecycle import Outcome
from orchestrator.run import EXIT_ERROR, RunOptions, RunResult, run
from tests.conftest import REPO, require_tool

SMOKE = REPO / "topologies" / "smoke.yaml"


@pytest.fixture(autouse=True)
def _anvil(state_dir: Path) -> None:
    require_tool("anvil")


class Watcher:
    """An extension that writes down what it sees."""

    def __init__(self, fail_at: str | None = None) -> None:
        self.seen: list[str] = []
        self.finalized: list[IntervalFinalized] = []
        self.fail_at = fail_at
        self.pids: dict[str, int] = {}
        self.context: RunContext | None = None

    def __call__(self, context: RunContext, events: Events) -> None:
        self.context = context
        events.started.add_listener(lambda _p: self.note("started"))
        events.contract_deployed.add_listener(lambda _a: self.note("contract_deployed"))
        events.tier_ready.add_listener(lambda tier, _p: self.note(f"ready {tier[0].role}"))
        events.market_starting.add_listener(lambda: self.note("market_starting"))
        events.all_ready.add_listener(lambda: self.note("all_ready"))
        events.tick.add_listener(self.tick)
        events.interval_finalized.add_listener(self.finalized.append)
        events.market_finished.add_listener(lambda: self.note("market_finished"))
        events.stopping.add_listener(self.stopping, name="watcher stopping")
        events.stopping.add_listener(lambda _o: self.note("stopping (after the failure)"))
        events.agents_stopped.add_listener(lambda _o: self.note("agents_stopped"))
        events.summarizing.add_listener(self.summarize, name="watcher summary")

    def note(self, what: str) -> None:
        if not self.seen or self.seen[-1] != what:
            self.seen.append(what)

    def tick(self, status: Mapping[str, Any]) -> None:
        self.pids.update({name: st.pid for name, st in status.items() if st.pid})
        self.note("tick")
        if self.fail_at == "tick":
            raise RuntimeError("listener broke during the watch")

    def stopping(self, outcome: Outcome) -> None:
        self.note("stopping")
        raise RuntimeError(f"listener broke at teardown ({outcome.status})")

    def summarize(self, extra: dict[str, Any], exit_codes: Mapping[str, int | None]) -> None:
        extra["watcher"] = {"intervals": [f.interval for f in self.finalized]}
        self.note("summarizing")


def finalizations(bundle: Path) -> list[int]:
    with (bundle / "events" / "finalizations.csv").open(newline="") as fh:
        return [int(r["interval"]) for r in csv.DictReader(fh)]


def assert_stopped(result: RunResult, watcher: Watcher) -> dict[str, Any]:
    assert watcher.pids, "no process seen"
    assert not [n for n, pid in watcher.pids.items() if psutil.pid_exists(pid) and _alive(pid)]
    manifest: dict[str, Any] = json.loads((result.bundle / "manifest.json").read_text())
    assert manifest["outcome"]["exit_code"] == result.exit_code
    assert json.loads((result.bundle / "summary.json").read_text()) == result.summary
    return manifest


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_an_extension_sees_the_lifecycle_and_cannot_stop_the_teardown(tmp_path: Path) -> None:
    watcher = Watcher()
    result = run(RunOptions(spec=SMOKE, out=tmp_path / "results", extensions=(watcher,)))
    assert result.outcome.status == "ok", result.outcome.message
    assert watcher.context is not None and watcher.context.bundle == result.bundle
    ticks = [i for i, s in enumerate(watcher.seen) if s == "tick"]
    assert ticks and watcher.seen.index("all_ready") < ticks[0]
    assert ticks[-1] < watcher.seen.index("stopping")
    order = [s for s in watcher.seen if s != "tick"]
    assert order == [
        "started",
        "contract_deployed",
        "ready recorder",
        "ready dso",
        "ready clock",
        "ready solver",
        "market_starting",
        "ready prosumer",
        "all_ready",
        "market_finished",
        "stopping",
        "stopping (after the failure)",
        "agents_stopped",
        "summarizing",
    ]
    intervals = [f.interval for f in watcher.finalized]
    assert intervals == finalizations(result.bundle) == list(range(49, 57))
    traded = sum(f.energy_wh for f in watcher.finalized)
    assert traded == result.summary["total_energy_traded_wh"] > 0
    assert result.summary["watcher"] == {"intervals": intervals}
    assert result.summary["gas"]  # the built-in extensions still ran
    manifest = assert_stopped(result, watcher)
    errors = manifest["teardown_errors"]
    assert errors == ["watcher stopping: RuntimeError('listener broke at teardown (ok)')"]
    assert (result.bundle / "metrics" / "prometheus.json").is_file()


def test_a_listener_failing_while_the_run_goes_ends_it(tmp_path: Path) -> None:
    watcher = Watcher(fail_at="tick")
    result = run(RunOptions(spec=SMOKE, out=tmp_path / "results", extensions=(watcher,)))
    assert result.exit_code == EXIT_ERROR
    assert result.outcome.status == "error"
    assert "listener broke during the watch" in result.outcome.message
    assert watcher.seen[-4:] == [
        "stopping",
        "stopping (after the failure)",
        "agents_stopped",
        "summarizing",
    ]
    assert_stopped(result, watcher)
