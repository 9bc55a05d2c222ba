"""The parts of every run that are listeners of its events (orchestrator.hooks),
attached in this order (which is the order their listeners fire in): the
progress lines, the `interval_finalized` feed, the faults, Prometheus, the
gas read from the chain.

A new part adds its `attach(run, events)` here; `Run` does not change.
"""

from __future__ import annotations

from orchestrator.faults.session import attach_faults
from orchestrator.hooks import Extension
from orchestrator.observability.collect import attach_metrics
from orchestrator.progress import attach_finalizations, attach_progress
from orchestrator.results.summary import attach_gas

RUN_EXTENSIONS: tuple[Extension, ...] = (
    attach_progress,
    attach_finalizations,
    attach_faults,
    attach_metrics,
    attach_gas,
)
