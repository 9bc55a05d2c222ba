"""`testbed run SPEC --baseline`: the same spec once more without `faults:`.

The baseline's bundle goes inside the faulty run's (`<bundle>/baseline/...`);
the faulty run's summary.json gets a `baseline` block (results.comparison).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from orchestrator.faults.results import comparison
from orchestrator.results.bundle import write_json

if TYPE_CHECKING:
    from orchestrator.run import RunOptions, RunResult

NO_FAULTS = "faults=[]"


def run_baseline(faulty: RunResult, options: RunOptions) -> tuple[RunResult, dict[str, Any]]:
    """Run the baseline and record the comparison in the faulty run's summary."""
    from orchestrator.run import run

    baseline = run(
        dataclasses.replace(
            options, overrides=(*options.overrides, NO_FAULTS), out=faulty.bundle / "baseline"
        )
    )
    block = comparison(faulty.summary, baseline.summary, baseline.bundle)
    faulty.summary["baseline"] = block
    write_json(faulty.bundle / "summary.json", faulty.summary)
    return baseline, block
