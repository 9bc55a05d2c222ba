"""Faults on the local backend with real agents, anvil and solvers (lockstep, so
every fault lands at the same point of the market each run):

- two solvers, the one whose solutions win killed mid-run: every interval is
  still finalized, trading goes on from the other solver, and what is finalized
  equals market.replay (nothing lost or changed);
- the only solver killed, then restarted: intervals without a candidate finalize
  nothing, the market moves on, trading resumes after the restart (a prosumer
  host killed and restarted: tests/conformance/, on every backend);
- an agent that crashes on its own (killed from outside the run, not by the
  fault timeline) fails the run (exit 3) and is named in summary.json, while
  the injected kill is not counted.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from orchestrator.render import dev_address
from orchestrator.run import RunOptions, RunResult, run
from tests.conformance.oracle import finalized_wh, injector_rows, replay_wh, rows, smoke_spec
from tests.conftest import require_tool

FIRST_SOLVER_ACCOUNT = 2  # orchestrator.plan: solver i signs with dev account 2 + i


@pytest.fixture(autouse=True)
def _anvil(state_dir: Path) -> None:
    require_tool("anvil")


def test_better_solver_killed_mid_run_the_other_carries_on(tmp_path: Path) -> None:
    spec = smoke_spec(
        tmp_path,
        [{"name": "solver-a", "engine": "highs"}, {"name": "solver-b", "engine": "glpk"}],
        [{"at_interval": 51, "target": "solver-a", "action": "kill"}],
    )
    result = run(RunOptions(spec=spec, out=tmp_path / "results"))
    assert result.exit_code == 0, result.outcome.message
    summary = result.summary
    faults = summary["faults"]
    assert faults["killed_by_faults"] == ["solver-a"] and faults["crashed"] == []
    assert faults["actions_applied"] == faults["actions_planned"] == 1
    (kill,) = injector_rows(result.bundle)
    assert (kill["action"], kill["unit"], kill["clock_interval"], kill["ok"]) == (
        "kill",
        "solver-a",
        51,
        True,
    )
    assert summary["processes"]["solver-a"]["exit_code"] == -signal.SIGKILL
    assert summary["processes"]["solver-b"]["exit_code"] == 0
    # finalization never stopped, and what it finalized is exactly replay's
    expected = replay_wh(spec)
    assert finalized_wh(result.bundle) == expected
    assert all(wh > 0 for wh in expected.values())
    # after the kill (held before tick(51), i.e. right after delivery 51 was
    # finalized), only solver-b's solutions reach the chain
    final_block = {
        int(r["interval"]): int(r["block"])
        for r in rows(result.bundle / "events/finalizations.csv")
    }
    solutions = rows(result.bundle / "events/solutions.csv")
    before = [s for s in solutions if int(s["block"]) < final_block[51]]
    after = [s for s in solutions if int(s["block"]) > final_block[51]]
    solver_a, solver_b = (dev_address(FIRST_SOLVER_ACCOUNT + i).lower() for i in (0, 1))
    assert before and after
    assert {s["submitter"].lower() for s in after} == {solver_b}
    assert solver_a in {s["submitter"].lower() for s in before}  # HiGHS is the faster
    assert {s["result"] for s in after} == {"accepted"}


def test_only_solver_killed_then_restarted(tmp_path: Path) -> None:
    kill_at, restart_at = 50, 53
    spec = smoke_spec(
        tmp_path,
        [{"name": "solver-1", "engine": "highs"}],
        [
            {"at_interval": kill_at, "target": "solver-1", "action": "kill"},
            {"at_interval": restart_at, "target": "solver-1", "action": "restart"},
        ],
    )
    result = run(RunOptions(spec=spec, out=tmp_path / "results"))
    assert result.exit_code == 0, result.outcome.message
    faults = result.summary["faults"]
    assert faults["killed_by_faults"] == ["solver-1"] and faults["crashed"] == []
    assert [(r["action"], r["clock_interval"], r["ok"]) for r in injector_rows(result.bundle)] == [
        ("kill", kill_at, True),
        ("restart", restart_at, True),
    ]
    finalized = finalized_wh(result.bundle)
    expected = replay_wh(spec)
    # the market moved on: every interval was finalized, one per clock interval
    assert sorted(finalized) == list(range(49, 57))
    # the last solution before the kill (solve(kill_at - 1)) saw offers up to
    # kill_at - 1 + L - 1; later deliveries up to restart_at had no candidate
    window = 3
    covered = kill_at - 1 + window - 1
    for interval, wh in finalized.items():
        if interval <= covered:
            assert wh == expected[interval], interval  # finalized before: unchanged
        elif interval <= restart_at:
            assert wh == 0, interval  # no candidate: nothing finalized
        else:
            assert wh > 0, interval  # the restarted solver trades again
    log = (result.bundle / "logs/solver-1.log").read_text()
    assert log.count("solver solver-1: engine highs") == 2  # the same unit started twice


def test_an_agent_crashing_on_its_own_fails_the_run(tmp_path: Path, state_dir: Path) -> None:
    spec = smoke_spec(
        tmp_path,
        [{"name": "solver-a", "engine": "highs"}, {"name": "solver-b", "engine": "highs"}],
        [{"at_interval": 49, "target": "solver-a", "action": "kill"}],
    )
    box: dict[str, RunResult] = {}
    thread = threading.Thread(
        target=lambda: box.update(result=run(RunOptions(spec=spec, out=tmp_path / "results"))),
        daemon=True,
    )
    thread.start()
    # solver-b dies once the first fault took effect: from outside the run, i.e. on its own
    deadline = time.monotonic() + 120
    victim: int | None = None
    while victim is None:
        assert time.monotonic() < deadline and thread.is_alive(), "the run ended too early"
        logs = list(tmp_path.glob("results/*/*/logs/orchestrator.log"))
        if logs and "fault: kill solver-a" in logs[0].read_text():
            pidfile = next(state_dir.glob("runs/*/pids/solver-b.json"))
            victim = int(json.loads(pidfile.read_text())["pid"])
        time.sleep(0.05)
    os.kill(victim, signal.SIGKILL)
    thread.join(180)
    result = box["result"]
    assert result.exit_code == 3
    assert result.outcome.status == "agent_failed"
    assert "solver-b" in result.outcome.message and "solver-a" not in result.outcome.message
    summary = json.loads((result.bundle / "summary.json").read_text())
    assert summary["exit_code"] == 3
    assert summary["faults"]["crashed"] == ["solver-b"]
    assert summary["faults"]["killed_by_faults"] == ["solver-a"]
    assert [(r["action"], r["ok"]) for r in injector_rows(result.bundle)] == [("kill", True)]
