"""A run's plan with its faults: `build_plan` plus the spec's `faults:` expanded
against it and rendered into the agents' settings (kept apart from plan.py, which
the fault timeline itself imports)."""

from __future__ import annotations

from orchestrator.faults.timeline import FaultPlan, apply_to_plan, build_timeline
from orchestrator.plan import Plan, build_plan
from orchestrator.scenario import Scenario


def plan_run(scenario: Scenario, backend: str, run_id: str) -> tuple[Plan, FaultPlan | None]:
    """The run's plan, with the spec's `faults:` expanded and rendered into it."""
    plan = build_plan(scenario, backend, run_id)
    spec = scenario.spec
    faults = build_timeline(spec.faults, plan) if spec.faults else None
    return (plan if faults is None else apply_to_plan(plan, faults)), faults
