"""Which swarm node runs which unit (pure: no engine calls).

The backend pins every service to one node (`node.id==...`) chosen here, so
the orchestrator knows before anything starts where each agent's published
metrics port and the chain's JSON-RPC port answer. The choice honours the
user's constraints (deployment.swarm and deployment.hosts[].placement), which
the services also carry, and spreads each host group round-robin over the
nodes it may use, least loaded first: Docker's `spread` placement preference,
decided up front.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.backends.base import BackendError

_CONSTRAINT = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(==|!=)\s*(.+?)\s*$")


@dataclass(frozen=True, slots=True)
class Node:
    """A swarm node as the manager reports it."""

    id: str
    hostname: str
    role: str  # manager | worker
    address: str  # where its host-mode published ports answer
    state: str = "ready"  # ready | down | unknown | disconnected
    availability: str = "active"  # active | pause | drain
    labels: Mapping[str, str] = field(default_factory=dict)
    engine_labels: Mapping[str, str] = field(default_factory=dict)
    os: str = "linux"
    arch: str = "x86_64"

    @property
    def usable(self) -> bool:
        return self.state == "ready" and self.availability == "active"

    def attribute(self, key: str) -> str | None:
        """The value a constraint's left side names (None: the node has none)."""
        fixed = {
            "node.id": self.id,
            "node.hostname": self.hostname,
            "node.role": self.role,
            "node.platform.os": self.os,
            "node.platform.arch": self.arch,
        }
        if key in fixed:
            return fixed[key]
        scoped = (("node.labels.", self.labels), ("engine.labels.", self.engine_labels))
        for prefix, labels in scoped:
            if key.startswith(prefix):
                return labels.get(key[len(prefix) :])
        return None


def node_of(attrs: Mapping[str, Any]) -> Node:
    """A Node from the Engine API's node object (`GET /nodes`)."""
    spec, desc = attrs.get("Spec", {}), attrs.get("Description", {})
    status = attrs.get("Status", {})
    address = status.get("Addr") or ""
    manager = attrs.get("ManagerStatus") or {}
    if address in ("", "0.0.0.0") and manager.get("Addr"):
        address = str(manager["Addr"]).rsplit(":", 1)[0]
    platform = desc.get("Platform", {})
    return Node(
        id=str(attrs["ID"]),
        hostname=str(desc.get("Hostname", "")),
        role=str(spec.get("Role", "worker")),
        address=address,
        state=str(status.get("State", "unknown")),
        availability=str(spec.get("Availability", "active")),
        labels=dict(spec.get("Labels") or {}),
        engine_labels=dict((desc.get("Engine") or {}).get("Labels") or {}),
        os=str(platform.get("OS", "linux")),
        arch=str(platform.get("Architecture", "x86_64")),
    )


def parse_constraint(text: str) -> tuple[str, bool, str]:
    """(attribute, equal?, value) of `node.labels.zone==a`; BackendError if malformed."""
    match = _CONSTRAINT.match(text)
    if match is None:
        raise BackendError(f"swarm: not a placement constraint: {text!r}")
    return match.group(1), match.group(2) == "==", match.group(3)


def matches(node: Node, constraints: Iterable[str]) -> bool:
    """Whether `node` satisfies every constraint (Docker's semantics: `!=` holds
    for a node that lacks the attribute, `==` does not)."""
    for text in constraints:
        key, equal, value = parse_constraint(text)
        have = node.attribute(key)
        if (have == value) != equal:
            return False
    return True


def eligible(nodes: Sequence[Node], constraints: Sequence[str]) -> list[Node]:
    return [n for n in nodes if n.usable and matches(n, constraints)]


def spread(
    groups: Mapping[str, Sequence[str]],
    candidates: Mapping[str, Sequence[Node]],
    load: dict[str, int] | None = None,
) -> dict[str, Node]:
    """{unit: node}: each group's units over its candidate nodes, the least
    loaded node first (ties by hostname): every group is spread evenly, and
    together they fill the nodes as evenly as that allows. `load` counts units per node id
    already placed (updated)."""
    load = load if load is not None else {}
    out: dict[str, Node] = {}
    for group, units in groups.items():
        nodes = list(candidates[group])
        if not nodes:
            raise BackendError(f"swarm: no ready, active node may carry {group}")
        used: dict[str, int] = {}
        for unit in units:
            best = min(
                nodes, key=lambda n: (used.get(n.id, 0), load.get(n.id, 0), n.hostname, n.id)
            )
            used[best.id] = used.get(best.id, 0) + 1
            load[best.id] = load.get(best.id, 0) + 1
            out[unit] = best
    return out
