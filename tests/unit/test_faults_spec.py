"""The `faults:` section: schema, checks (file:line errors, did-you-mean, backend
support) and its expansion into a timeline and agent settings."""

from __future__ import annotations

import pytest

from agents.common.adversaries import BehaviourSpan, Misbehaviour
from agents.common.config import ProsumerHostSettings, SolverSettings
from orchestrator.errors import SpecError
from orchestrator.faults.timeline import FaultError, apply_to_plan, build_timeline
from orchestrator.plan import Plan, build_plan
from orchestrator.scenario import build_scenario
from orchestrator.spec import Spec, parse_spec

BASE = """\
name: f
microgrid:
  dataset: {kind: synthetic, prosumers: [101, 103, 104, 701, 702, 703]}
market: {first_interval: 49, last_interval: 56, prediction_window: 3}
solvers: [{name: solver-1}, {name: solver-2, engine: glpk}]
deployment: {backend: BACKEND}
"""


def spec_text(faults: str, backend: str = "local") -> str:
    return BASE.replace("BACKEND", backend) + "faults:\n" + faults


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source="exp.yaml", env={})
    assert caught.value.exit_code == 2
    return caught.value.problems


def test_a_valid_timeline_loads_into_frozen_entries() -> None:
    spec = parse_spec(
        spec_text(
            """\
  - {at_interval: 50, target: solver-1, action: kill, for_intervals: 2}
  - {at_interval: 51, until_interval: 53, target: solver-2, action: solver,
     behaviour: late, options: {delay_seconds: 1.5}}
  - {at_interval: 52, action: prosumer, prosumer: 701, misbehaviour: beyond_assets}
  - {at_seconds: 2.5, for_seconds: 1, target: dso, action: pause, note: slow DSO}
"""
        ),
        source="exp.yaml",
        env={},
    )
    kill, late, prosumer, pause = spec.faults
    assert (kill.action, kill.target, kill.span_end_interval) == ("kill", "solver-1", 52)
    assert late.options == {"delay_seconds": 1.5} and late.span_end_interval == 53
    assert prosumer.target is None and prosumer.span_end_interval is None
    assert pause.span_end_seconds == 3.5 and pause.note == "slow DSO"
    assert parse_spec(BASE.replace("BACKEND", "local"), source="x", env={}).faults == ()
    # the resolved spec round-trips
    again = parse_spec(__import__("yaml").safe_dump(spec.to_dict()), source="y", env={})
    assert again.faults == spec.faults


def test_problems_are_positioned_and_named() -> None:
    text = spec_text(
        """\
  - {at_interval: 50, target: solver-3, action: kill}
  - {at_interval: 60, target: clock, action: restart}
  - {at_interval: 50, target: prosumers-01, action: partition}
  - {at_seconds: 3, target: solver-1, action: solver, behaviour: infeasible,
     options: {kind: PRICEX, count: 2}}
  - {at_interval: 50, until_interval: 50, target: dso, action: pause}
  - {at_interval: 50, target: dso, action: resume, for_intervals: 1}
  - {target: dso, action: kill}
  - {at_interval: 50, target: dso, action: netem, behaviour: late}
  - {at_interval: 50, target: recorder, action: solver, behaviour: inferior}
"""
    )
    assert problems(text) == [
        "exp.yaml:8:31: faults[0].target: unknown target 'solver-3' (did you mean "
        "'solver-2'?); known: dso, clock, recorder, solver-1, solver-2, prosumers, "
        "solvers, prosumers-NN",
        "exp.yaml:9:19: faults[1].at_interval: interval 60 is outside the run's "
        "intervals 48..55 (market.first_interval - t_clear .. market.last_interval - "
        "t_clear)",
        "exp.yaml:9:46: faults[1].action: the clock cannot be killed or restarted: the "
        "run ends when it exits (pause/resume it instead)",
        "exp.yaml:10:53: faults[2].action: action partition is not supported by the "
        "local backend (it supports: kill, pause, restart, resume; plus solver and "
        "prosumer)",
        "exp.yaml:11:5: faults[3]: action solver needs at_interval (agents switch at "
        "interval starts)",
        "exp.yaml:12:15: faults[3].options: behaviour infeasible has no option 'count' "
        "(options: kind)",
        "exp.yaml:12:15: faults[3].options: kind 'PRICEX': not a constraint kind (any, "
        "or one of market.verify's)",
        "exp.yaml:13:39: faults[4].until_interval: must be > at_interval (50) and <= 56",
        "exp.yaml:14:67: faults[5].for_intervals: action resume takes no span (for_intervals)",
        "exp.yaml:15:5: faults[6]: give exactly one of at_interval and at_seconds",
        "exp.yaml:16:5: faults[7]: action netem needs key 'netem'",
        "exp.yaml:16:44: faults[7].action: action netem is not supported by the local "
        "backend (it supports: kill, pause, restart, resume; plus solver and prosumer)",
        "exp.yaml:16:62: faults[7].behaviour: only valid with action solver",
        "exp.yaml:17:31: faults[8].target: action solver needs a solver target (solvers: "
        "solver-1, solver-2)",
    ]


def test_schema_errors_come_first_with_suggestions() -> None:
    assert problems(spec_text("  - {at_interval: 50, target: dso, action: kil}\n")) == [
        "exp.yaml:8:44: faults[0].action: must be one of 'kill', 'restart', 'pause', "
        "'resume', 'partition', 'heal', 'netem', 'drain', 'stop', 'solver', 'prosumer', "
        "got string 'kil'; did you mean 'kill'?",
    ]


def test_docker_supports_network_faults_and_named_hosts() -> None:
    text = BASE.replace("BACKEND", "docker") + (
        "  hosts: [{name: edge, count: 2}, {name: core}]\n"
        "faults:\n"
        "  - {at_interval: 50, for_intervals: 2, target: edge, action: partition}\n"
        "  - {at_interval: 50, target: core, action: netem, netem: {latency_ms: 50}}\n"
        "  - {at_interval: 51, target: prosumers-01, action: heal}\n"
    )
    text = text.replace(
        "deployment: {backend: docker}\n  hosts", "deployment:\n  backend: docker\n  hosts"
    )
    assert problems(text) == [
        "exp.yaml:12:31: faults[2].target: unknown target 'prosumers-01' (did you mean "
        "'prosumers'?); known: dso, clock, "
        "recorder, solver-1, solver-2, edge-01, edge-02, core, edge, prosumers, solvers",
    ]


def _plan(text: str) -> tuple[Spec, Plan]:
    spec = parse_spec(text, source="exp.yaml", env={})
    plan = build_plan(build_scenario(spec), "local", "run-1")
    return spec, plan


def test_timeline_expands_spans_targets_and_renders_agent_settings() -> None:
    spec, plan = _plan(
        spec_text(
            """\
  - {at_interval: 50, target: solver-1, action: kill, for_intervals: 2}
  - {at_interval: 49, target: prosumers, action: pause, until_interval: 50}
  - {at_interval: 51, until_interval: 53, target: solver-2, action: solver,
     behaviour: infeasible, options: {kind: PRICE}}
  - {at_interval: 52, action: prosumer, prosumer: 701, misbehaviour: past_interval}
  - {at_interval: 53, target: dso, action: pause, for_intervals: 3}
"""
        )
    )
    hosts = [a.name for a in plan.by_role("prosumer")]
    faults = build_timeline(spec.faults, plan)
    steps = [(s.at_interval, s.action, s.units, s.span_end) for s in faults.interval_steps]
    assert steps == [
        (49, "pause", tuple(hosts), False),
        (50, "resume", tuple(hosts), True),
        (50, "kill", ("solver-1",), False),
        (52, "restart", ("solver-1",), True),
        (53, "pause", ("dso",), False),
        # the resume at 56 lies after the last clock interval (55): restore() does it
    ]
    assert faults.hold_intervals == [49, 50, 52, 53]
    host_701 = next(
        a.name for a in plan.by_role("prosumer") if any(p.id == 701 for p in a.prosumers)
    )
    rendered = apply_to_plan(plan, faults)
    assert rendered.agent("solver-2").settings == SolverSettings(
        engine="glpk",
        behaviour_schedule=(BehaviourSpan(51, "infeasible", 53, {"kind": "PRICE"}),),
    )
    assert rendered.agent("solver-1").settings == plan.agent("solver-1").settings
    host = rendered.agent(host_701).settings
    assert isinstance(host, ProsumerHostSettings)
    assert host.misbehaviour == (Misbehaviour(701, "past_interval", 52, None),)
    unchanged = plan.agent(host_701).settings
    assert isinstance(unchanged, ProsumerHostSettings) and unchanged.misbehaviour == ()


def test_default_host_names_beyond_the_plan_are_refused_when_planned() -> None:
    spec, plan = _plan(spec_text("  - {at_interval: 50, target: prosumers-09, action: kill}\n"))
    with pytest.raises(FaultError, match="target 'prosumers-09' is not in the planned run"):
        build_timeline(spec.faults, plan)


def test_the_first_interval_is_for_adversaries_only() -> None:
    text = spec_text(
        "  - {at_interval: 48, target: solver-1, action: kill}\n"
        "  - {at_interval: 48, target: solver-2, action: solver, behaviour: inferior}\n"
    )
    assert problems(text) == [
        "exp.yaml:8:19: faults[0].at_interval: interval 48 starts while the agents are still "
        "coming up, before faults are armed: use 49 or later (or at_seconds)"
    ]
