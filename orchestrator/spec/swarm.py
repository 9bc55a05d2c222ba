"""The spec's `deployment.swarm` section: how the swarm backend reaches a Docker
Swarm and where it may put what (schema and frozen model side by side, as
grid.py and faults.py do for their sections).

Constraints are Docker's own placement constraints (`node.labels.zone==a`,
`node.hostname!=pi-3`, `node.role==worker`, ...): the same strings a user
writes for `docker service create --constraint`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# nodes the swarm lab (and the README's recipe) labels for prosumer hosts
PROSUMER_LABEL = "testbed.role"
PROSUMER_LABEL_VALUE = "prosumers"
CONSTRAINT_PATTERN = r"^\s*(node|engine)\.[A-Za-z0-9_.-]+\s*(==|!=)\s*\S.*$"

_CONSTRAINTS: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "string",
        "pattern": CONSTRAINT_PATTERN,
        "x-pattern-hint": "a swarm constraint such as node.labels.zone==a or node.role!=manager",
    },
    "uniqueItems": True,
}


@dataclass(frozen=True, slots=True)
class SwarmConfig:
    manager: str | None = None  # DOCKER_HOST-style URL; None: $DOCKER_HOST or the local engine
    registry: str = "auto"  # auto | none | start | host:port
    prosumers: tuple[str, ...] = ()  # nodes that may carry prosumer hosts (see schema)
    services: tuple[str, ...] = ("node.role==manager",)


SWARM: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "default": {},
    "description": "swarm backend: the manager to talk to, where images come from, and "
    "which nodes may carry which roles.",
    "properties": {
        "manager": {
            "type": ["string", "null"],
            "default": None,
            "description": "The swarm manager's Engine API, DOCKER_HOST-style "
            "(unix:///var/run/docker.sock, tcp://10.0.0.1:2376, ssh://admin@pi-0); "
            "default: $DOCKER_HOST, else this machine's engine.",
        },
        "registry": {
            "type": "string",
            "minLength": 1,
            "default": "auto",
            "description": "Where the nodes pull the testbed's images: none (the images "
            "are already on every node, e.g. a one-node swarm), start (a private registry "
            "started on this machine for the run), host:port (a registry you run), or auto "
            "(none on a one-node swarm, else start).",
        },
        "prosumers": {
            **_CONSTRAINTS,
            "default": [],
            "description": "Constraints of the nodes that may carry prosumer hosts (default: "
            f"nodes labelled {PROSUMER_LABEL}={PROSUMER_LABEL_VALUE}, else every node). A "
            "host's own deployment.hosts[].placement adds to these.",
        },
        "services": {
            **_CONSTRAINTS,
            "default": ["node.role==manager"],
            "description": "Constraints of the nodes that carry the DSO, clock, solvers and "
            "recorder. The chain and Prometheus run on the manager the orchestrator talks to.",
        },
    },
}

PLACEMENT: dict[str, Any] = {
    **_CONSTRAINTS,
    "minItems": 1,
    "description": "swarm: constraints of the nodes this host (or group) may run on, e.g. "
    "[node.labels.rack==2]; the group is spread over the nodes that match.",
}
