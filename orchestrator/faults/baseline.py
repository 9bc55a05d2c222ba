"""`testbed run SPEC --baseline`: the same spec once more without `faults:`.

The baseline's bundle goes inside the faulty run's (`<bundle>/baseline/...`);
the faulty run's summary.json gets a `baseline` block (results.comparison).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from orchestrator.faults.results import comparison
from orchestrator.results.bundle import write_json

NO_FAULTS = "faults=[]"


class _Result(Protocol):  # orchestrator.run.RunResult (run imports this package)
    bundle: Path
    summary: dict[str, Any]


ResultT = TypeVar("ResultT", bound=_Result)


def run_baseline(
    faulty: ResultT, options: Any, run: Callable[[Any], ResultT]
) -> tuple[ResultT, dict[str, Any]]:
    """Run the baseline with `run(options)` (orchestrator.run.run and RunOptions)
    and record the comparison in the faulty run's summary."""
    baseline = run(
        dataclasses.replace(
            options, overrides=(*options.overrides, NO_FAULTS), out=faulty.bundle / "baseline"
        )
    )
    block = comparison(faulty.summary, baseline.summary, baseline.bundle)
    faulty.summary["baseline"] = block
    write_json(faulty.bundle / "summary.json", faulty.summary)
    return baseline, block
