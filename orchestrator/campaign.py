"""Campaigns: several runs one after another, above `orchestrator.run.run`
(which knows nothing of them).

- `run_campaign(runs)`: each `RunOptions` in turn, with a callback before and
  after each run; stops after a run that a signal interrupted (Ctrl-C,
  SIGTERM, SIGHUP), so what was finished is kept. A sweep's points
  (`orchestrator.sweeps.runner.run_sweep`) run this way.
- `run_baseline(faulty, options)`: `testbed run SPEC --baseline`: the same
  spec once more without `faults:`, its bundle inside the faulty run's
  (`<bundle>/baseline/...`), and the faulty run's summary.json gets a
  `baseline` block (orchestrator.faults.results.comparison).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from orchestrator.faults.results import comparison
from orchestrator.results.bundle import write_json
from orchestrator.run import RunOptions, RunResult, run

INTERRUPTED = (130, 143, 129)  # SIGINT, SIGTERM, SIGHUP: stop the campaign
NO_FAULTS = "faults=[]"

RunOne = Callable[[RunOptions], RunResult]


def _nothing(_index: int, _item: Any) -> None:
    return None


def run_campaign(
    runs: Iterable[RunOptions],
    *,
    before: Callable[[int, RunOptions], None] = _nothing,
    after: Callable[[int, RunResult], None] = _nothing,
    run_one: RunOne = run,
) -> list[RunResult]:
    """Every run in order (`before`/`after` get its 0-based index); the
    results of the runs done, the last one interrupted if any was."""
    results: list[RunResult] = []
    for index, options in enumerate(runs):
        before(index, options)
        result = run_one(options)
        results.append(result)
        after(index, result)
        if interrupted(result):
            break
    return results


def interrupted(result: RunResult) -> bool:
    return result.exit_code in INTERRUPTED or result.outcome.signal is not None


def baseline_options(options: RunOptions, faulty: RunResult) -> RunOptions:
    """`options` without faults, the bundle inside the faulty run's."""
    overrides = (*options.overrides, NO_FAULTS)
    return dataclasses.replace(options, overrides=overrides, out=faulty.bundle / "baseline")


def run_baseline(
    faulty: RunResult, options: RunOptions, run_one: RunOne = run
) -> tuple[RunResult, dict[str, Any]]:
    """Run the baseline and record the comparison in the faulty run's summary."""
    baseline = run_one(baseline_options(options, faulty))
    block = comparison(faulty.summary, baseline.summary, baseline.bundle)
    faulty.summary["baseline"] = block
    write_json(faulty.bundle / "summary.json", faulty.summary)
    return baseline, block
