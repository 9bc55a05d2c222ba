"""The `faults:` entries of a spec, expanded against a plan (pure, no I/O).

`build_timeline(faults, plan)` resolves every target to the plan's units and
turns the entries into:
- `steps`: what the injector does through the backend, when (a clock interval
  t, or seconds after the first interval started); spans become two steps
  (kill -> restart, pause -> resume, partition -> heal, netem -> netem off);
- `solver_schedules` / `misbehaviour`: the agents' own adversarial settings
  (`behaviour_schedule` of a solver, `misbehaviour` of a prosumer host), which
  `apply_to_plan` renders into their configs.
Intervals are clock intervals t, as in tick(t) / solve(t).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.common.adversaries import BehaviourSpan, Misbehaviour
from agents.common.config import ProsumerHostSettings, SolverSettings
from agents.common.errors import ConfigError
from agents.common.typed import from_plain
from orchestrator.errors import TestbedError
from orchestrator.plan import Plan
from orchestrator.spec.faults import NODE_ACTIONS, SPAN_END, FaultConfig, FaultNetem

ALL_HOSTS, ALL_SOLVERS = "prosumers", "solvers"
# How an action changes what the lockstep clock waits for (prosumer hosts, solvers).
PRESENCE = {
    "kill": False,
    "pause": False,
    "partition": False,
    "restart": True,
    "resume": True,
    "heal": True,
    "drain": False,  # the units that were on the node
    "stop": False,
}


class FaultError(TestbedError):
    """A `faults:` entry does not fit the planned run (e.g. no such host)."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Step:
    """One action on some units at one moment (exactly one of at_interval, at_seconds)."""

    entry: int  # index in the spec's faults list
    action: str  # kill | restart | pause | resume | partition | heal | netem | drain | stop
    target: str  # drain/stop: the cluster node
    units: tuple[str, ...]  # drain/stop: none (the backend says which were on the node)
    at_interval: int | None = None
    at_seconds: float | None = None
    netem: FaultNetem | None = None  # action netem; None: back to no emulation
    span_end: bool = False  # the automatic end of an entry's span
    note: str | None = None

    def sort_key(self) -> tuple[float, int, int]:
        when = self.at_interval if self.at_interval is not None else self.at_seconds
        return (float(when or 0), 0 if self.span_end else 1, self.entry)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "entry": self.entry,
            "action": self.action,
            "target": self.target,
            "units": list(self.units),
            "at_interval": self.at_interval,
            "at_seconds": self.at_seconds,
            "span_end": self.span_end,
        }
        if self.action == "netem":
            out["netem"] = dataclasses.asdict(self.netem) if self.netem else None
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class FaultPlan:
    steps: tuple[Step, ...]
    solver_schedules: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    misbehaviour: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    configured: tuple[dict[str, Any], ...] = ()  # the solver/prosumer entries, for the log

    @property
    def interval_steps(self) -> list[Step]:
        return sorted((s for s in self.steps if s.at_interval is not None), key=Step.sort_key)

    @property
    def seconds_steps(self) -> list[Step]:
        return sorted((s for s in self.steps if s.at_seconds is not None), key=Step.sort_key)

    @property
    def hold_intervals(self) -> list[int]:
        return sorted({s.at_interval for s in self.steps if s.at_interval is not None})

    @property
    def netem_units(self) -> list[str]:
        return sorted({u for s in self.steps if s.action == "netem" for u in s.units})


def resolve_target(target: str, plan: Plan) -> tuple[str, ...]:
    """The plan's units a target names (an agent, a host, a group, 'prosumers', 'solvers')."""
    names = [a.name for a in plan.agents]
    hosts = [a.name for a in plan.by_role("prosumer")]
    if target in names:
        return (target,)
    if target == ALL_HOSTS:
        return tuple(hosts)
    if target == ALL_SOLVERS:
        return tuple(a.name for a in plan.by_role("solver"))
    group = re.compile(rf"^{re.escape(target)}-\d+$")
    members = tuple(h for h in hosts if group.match(h))
    if members:
        return members
    raise FaultError(
        f"faults: target {target!r} is not in the planned run (agents: {', '.join(names)})"
    )


def host_of_prosumer(prosumer: int, plan: Plan) -> str:
    for agent in plan.by_role("prosumer"):
        if any(p.id == prosumer for p in agent.prosumers):
            return agent.name
    raise FaultError(f"faults: prosumer {prosumer} is not in the planned run")


def build_timeline(faults: Sequence[FaultConfig], plan: Plan) -> FaultPlan:
    steps: list[Step] = []
    schedules: dict[str, list[dict[str, Any]]] = {}
    misbehaviour: dict[str, list[dict[str, Any]]] = {}
    configured: list[dict[str, Any]] = []
    for i, fault in enumerate(faults):
        if fault.action == "prosumer":
            assert fault.prosumer is not None and fault.at_interval is not None
            host = host_of_prosumer(fault.prosumer, plan)
            if fault.target is not None and host not in resolve_target(fault.target, plan):
                raise FaultError(
                    f"faults[{i}]: prosumer {fault.prosumer} runs on {host}, not on {fault.target}"
                )
            entry: dict[str, Any] = {
                "prosumer": fault.prosumer,
                "action": fault.misbehaviour,
                "from_interval": fault.at_interval,
                "until_interval": fault.span_end_interval,
            }
            misbehaviour.setdefault(host, []).append(entry)
            configured.append({"entry": i, "agent": host, **entry})
            continue
        if fault.action in NODE_ACTIONS:
            assert fault.node is not None
            when = (fault.at_interval, fault.at_seconds)
            steps.append(Step(i, fault.action, fault.node, (), *when, note=fault.note))
            continue
        assert fault.target is not None
        units = resolve_target(fault.target, plan)
        if fault.action == "solver":
            assert fault.at_interval is not None
            item: dict[str, Any] = {
                "from_interval": fault.at_interval,
                "until_interval": fault.span_end_interval,
                "behaviour": fault.behaviour,
                "options": dict(fault.options or {}),
            }
            for unit in units:
                schedules.setdefault(unit, []).append(item)
                configured.append({"entry": i, "agent": unit, **item})
            continue
        start = Step(
            i,
            fault.action,
            fault.target,
            units,
            fault.at_interval,
            fault.at_seconds,
            fault.netem if fault.action == "netem" else None,
            note=fault.note,
        )
        steps.append(start)
        end = SPAN_END.get(fault.action)
        if fault.span_end_interval is not None or fault.span_end_seconds is not None:
            assert end
            steps.append(
                dataclasses.replace(
                    start,
                    action=end,
                    at_interval=fault.span_end_interval,
                    at_seconds=fault.span_end_seconds,
                    netem=None,
                    span_end=True,
                )
            )
    last = plan.market.last_clock_interval
    steps = [s for s in steps if s.at_interval is None or s.at_interval <= last]
    return FaultPlan(tuple(steps), schedules, misbehaviour, tuple(configured))


def apply_to_plan(plan: Plan, faults: FaultPlan) -> Plan:
    """The plan with `behaviour_schedule` / `misbehaviour` in the agents' settings."""
    agents = []
    for agent in plan.agents:
        settings = agent.settings
        try:
            spans = faults.solver_schedules.get(agent.name)
            if spans and isinstance(settings, SolverSettings):
                schedule = tuple(from_plain(BehaviourSpan, s) for s in spans)
                settings = dataclasses.replace(settings, behaviour_schedule=schedule)
            items = faults.misbehaviour.get(agent.name)
            if items and isinstance(settings, ProsumerHostSettings):
                actions = tuple(from_plain(Misbehaviour, m) for m in items)
                settings = dataclasses.replace(settings, misbehaviour=actions)
        except ConfigError as exc:
            raise FaultError(f"faults: {agent.name}: {exc}") from exc
        agents.append(dataclasses.replace(agent, settings=settings))
    return dataclasses.replace(plan, agents=tuple(agents))
