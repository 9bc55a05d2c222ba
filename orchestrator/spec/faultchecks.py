"""Spec checks of the `faults:` section (one of orchestrator.spec.checks.CHECKS).

Everything that can be known from the spec alone: when (one of at_interval /
at_seconds, spans inside the traded intervals), what (the keys each action
needs and no others), who (targets named with a "did you mean"), and whether
the chosen backend can do it. Default prosumer host names (`prosumers-NN`,
when deployment.hosts is empty) depend on the dataset: their number is
checked when the run is planned (timeline.py).
"""

from __future__ import annotations

import re
from typing import Any

from market.verify import ViolationKind
from orchestrator.spec.backends import BACKENDS
from orchestrator.spec.document import Document, KeyPath, Problem
from orchestrator.spec.faults import CONFIG_ACTIONS, NODE_ACTIONS, NOT_KILLABLE, SPAN_END
from orchestrator.spec.validate import did_you_mean

SERVICES = ("dso", "clock", "recorder")
DEFAULT_HOST = re.compile(r"^prosumers-\d+$")
ALL_HOSTS, ALL_SOLVERS = "prosumers", "solvers"
INFEASIBLE_KINDS = ("any", *(kind.value for kind in ViolationKind))
BEHAVIOUR_OPTIONS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "honest": {},
    "infeasible": {"kind": str},
    "inferior": {},
    "late": {"delay_seconds": (int, float)},
    "flood": {"count": int},
}


def host_names(full: dict[str, Any]) -> tuple[list[str], dict[str, list[str]]]:
    """(every prosumer host name, {group name: its hosts}) from deployment.hosts."""
    names: list[str] = []
    groups: dict[str, list[str]] = {}
    for host in full["deployment"]["hosts"]:
        count = host.get("count") or 1
        if count == 1:
            names.append(host["name"])
            continue
        width = max(2, len(str(count)))
        members = [f"{host['name']}-{i + 1:0{width}d}" for i in range(count)]
        groups[host["name"]] = members
        names += members
    return names, groups


def fault_problems(
    document: Document, given: dict[str, Any], full: dict[str, Any]
) -> list[Problem]:
    faults = full.get("faults") or []
    if not faults:
        return []
    solvers = [s["name"] for s in full["solvers"]]
    hosts, groups = host_names(full)
    agents = [*SERVICES, *solvers]
    known = [*agents, *hosts, *groups, ALL_HOSTS, ALL_SOLVERS]
    market = full["market"]
    first = market["first_interval"] - market["t_clear"]
    last = market["last_interval"] - market["t_clear"]
    backend = full["deployment"]["backend"]
    entry = BACKENDS.get(backend)  # None: not a backend (the schema's enum says so)
    supported = None if entry is None else entry.fault_actions
    problems: list[Problem] = []
    for i, fault in enumerate(faults):
        path: KeyPath = ("faults", i)
        ctx = _Context(document, path, problems)
        _check_when(ctx, fault, first, last)
        _check_keys(ctx, fault)
        target = fault.get("target")
        action = fault["action"]
        _check_supported(ctx, action, backend, supported)
        if action in NODE_ACTIONS:
            if target is not None:
                ctx.add(f"action {action} names a node (key 'node'), not a target", "target")
            continue
        if target is None:
            if action != "prosumer":
                ctx.add("missing required key 'target'")
            continue
        is_host = target in hosts or target in groups or target == ALL_HOSTS
        if not hosts and DEFAULT_HOST.match(target):
            is_host = True
        if not is_host and target not in known:
            ctx.add(_unknown(target, known, bool(hosts)), "target")
            continue
        if action == "solver" and target not in (*solvers, ALL_SOLVERS):
            ctx.add(
                f"action solver needs a solver target (solvers: {', '.join(solvers)})", "target"
            )
        if action == "prosumer" and not is_host:
            ctx.add("action prosumer needs a prosumer host target (or none)", "target")
        if action in ("kill", "restart") and target in NOT_KILLABLE:
            ctx.add(
                f"the {target} cannot be killed or restarted: the run ends when it exits "
                "(pause/resume it instead)",
                "action",
            )
    return problems


def _check_supported(
    ctx: _Context, action: str, backend: str, supported: frozenset[str] | None
) -> None:
    if action not in CONFIG_ACTIONS and supported is not None and action not in supported:
        ok = ", ".join(sorted(supported)) or "none"
        ctx.add(
            f"action {action} is not supported by the {backend} backend "
            f"(it supports: {ok}; plus solver and prosumer)",
            "action",
        )


class _Context:
    def __init__(self, document: Document, path: KeyPath, problems: list[Problem]) -> None:
        self.document, self.path, self.problems = document, path, problems

    def add(self, message: str, key: str | None = None) -> None:
        path = self.path if key is None else (*self.path, key)
        self.problems.append(Problem(self.document.origin(path), path, message))


def _unknown(target: str, known: list[str], explicit_hosts: bool) -> str:
    suggestion = did_you_mean(target, known)
    hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
    hosts = "" if explicit_hosts else ", prosumers-NN"
    return f"unknown target {target!r}{hint}; known: {', '.join(known)}{hosts}"


def _check_when(ctx: _Context, fault: dict[str, Any], first: int, last: int) -> None:
    action = fault["action"]
    at, seconds = fault.get("at_interval"), fault.get("at_seconds")
    if (at is None) == (seconds is None):
        ctx.add("give exactly one of at_interval and at_seconds")
        return
    span_keys = [k for k in ("until_interval", "for_intervals", "for_seconds") if k in fault]
    if len(span_keys) > 1:
        ctx.add(f"give at most one of {', '.join(span_keys)}", span_keys[1])
    if span_keys and action not in SPAN_END:
        ctx.add(f"action {action} takes no span ({span_keys[0]})", span_keys[0])
    if seconds is not None:
        if action in CONFIG_ACTIONS:
            ctx.add(f"action {action} needs at_interval (agents switch at interval starts)")
        for key in ("until_interval", "for_intervals"):
            if key in fault:
                ctx.add("only valid with at_interval (use for_seconds)", key)
        return
    assert at is not None
    if "for_seconds" in fault:
        ctx.add("only valid with at_seconds (use for_intervals or until_interval)", "for_seconds")
    if not first <= at <= last:
        ctx.add(
            f"interval {at} is outside the run's intervals {first}..{last} "
            "(market.first_interval - t_clear .. market.last_interval - t_clear)",
            "at_interval",
        )
    elif at == first and action not in CONFIG_ACTIONS:
        ctx.add(
            f"interval {first} starts while the agents are still coming up, before faults "
            f"are armed: use {first + 1} or later (or at_seconds)",
            "at_interval",
        )
    until = fault.get("until_interval")
    if until is not None and not at < until <= last + 1:
        ctx.add(f"must be > at_interval ({at}) and <= {last + 1}", "until_interval")
    length = fault.get("for_intervals")
    if length is not None and at + length > last + 1:
        ctx.add(f"the span {at}..{at + length - 1} ends after interval {last}", "for_intervals")


def _check_keys(ctx: _Context, fault: dict[str, Any]) -> None:
    action = fault["action"]
    needs = {
        "drain": ("node",),
        "stop": ("node",),
        "netem": ("netem",),
        "solver": ("behaviour",),
        "prosumer": ("prosumer", "misbehaviour"),
    }.get(action, ())
    for key in needs:
        if key not in fault:
            ctx.add(f"action {action} needs key {key!r}")
    owners = {
        "netem": "netem",
        "behaviour": "solver",
        "options": "solver",
        "prosumer": "prosumer",
        "misbehaviour": "prosumer",
    }
    for key, owner in owners.items():
        if key in fault and action != owner:
            ctx.add(f"only valid with action {owner}", key)
    if "node" in fault and action not in NODE_ACTIONS:
        ctx.add(f"only valid with action {' or '.join(NODE_ACTIONS)}", "node")
    if action == "netem" and "netem" in fault and not any(fault["netem"].values()):
        ctx.add("sets nothing (give latency_ms, jitter_ms and/or loss_percent)", "netem")
    if action == "solver" and "behaviour" in fault:
        _check_options(ctx, fault["behaviour"], fault.get("options") or {})


def _check_options(ctx: _Context, behaviour: str, options: dict[str, Any]) -> None:
    allowed = BEHAVIOUR_OPTIONS.get(behaviour, {})
    for key, value in options.items():
        if key not in allowed:
            names = ", ".join(allowed) or "none"
            ctx.add(f"behaviour {behaviour} has no option {key!r} (options: {names})", "options")
        elif not isinstance(value, allowed[key]) or isinstance(value, bool):
            ctx.add(f"option {key}: wrong type {type(value).__name__}", "options")
    kind = options.get("kind")
    if behaviour == "infeasible" and isinstance(kind, str) and kind not in INFEASIBLE_KINDS:
        ctx.add(f"kind {kind!r}: not a constraint kind (any, or one of market.verify's)", "options")
