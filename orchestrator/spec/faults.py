"""The `faults:` section: its JSON Schema and its frozen dataclasses (checked
by faultchecks.py; run by orchestrator/faults/). Only the standard library here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Actions the orchestrator applies through the backend (injector.py).
PROCESS_ACTIONS = ("kill", "restart", "pause", "resume")
NETWORK_ACTIONS = ("partition", "heal", "netem")
# Actions on a cluster node (swarm): its tasks moved away, or its engine stopped.
NODE_ACTIONS = ("drain", "stop")
# Actions rendered into the agents' configs (the agents misbehave themselves).
CONFIG_ACTIONS = ("solver", "prosumer")
ACTIONS = (*PROCESS_ACTIONS, *NETWORK_ACTIONS, *NODE_ACTIONS, *CONFIG_ACTIONS)
# A span (until_interval / for_intervals / for_seconds) ends with this action
# (node actions take none: a lost node's units do not come back in the run).
SPAN_END = {
    "kill": "restart",
    "pause": "resume",
    "partition": "heal",
    "netem": "netem",
    "solver": "",
    "prosumer": "",
}
SOLVER_BEHAVIOURS = ("honest", "infeasible", "inferior", "late", "flood")
MISBEHAVIOURS = ("beyond_assets", "past_interval")
# Units no fault may kill or restart: the run's end is the clock's exit.
NOT_KILLABLE = ("clock",)


def _integer(description: str, minimum: int = 1) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "description": description}


FAULT_NETEM: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "action netem: the link of the target's container for the span.",
    "properties": {
        "latency_ms": {"type": "number", "minimum": 0, "description": "Added one-way delay."},
        "jitter_ms": {"type": "number", "minimum": 0, "description": "Delay variation (+-)."},
        "loss_percent": {"type": "number", "minimum": 0, "maximum": 100},
    },
}

FAULT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["action"],
    "properties": {
        "at_interval": _integer(
            "When the market's current interval t (the clock's tick(t)) starts; lockstep "
            "holds the clock until the action took effect."
        ),
        "at_seconds": {
            "type": "number",
            "minimum": 0,
            "description": "Seconds after the first interval started (not for solver/prosumer).",
        },
        "until_interval": _integer("A span ends when this interval starts (exclusive)."),
        "for_intervals": _integer("A span of this many intervals."),
        "for_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "A span of this many seconds (with at_seconds).",
        },
        "target": {
            "type": "string",
            "minLength": 1,
            "description": "An agent (solver name, dso, clock, recorder), a testbed host "
            "(prosumers-02), a host group (a deployment.hosts name with count), or "
            "'prosumers' / 'solvers' for all of them.",
        },
        "action": {"enum": list(ACTIONS), "description": "What happens to the target."},
        "node": {
            "type": "string",
            "minLength": 1,
            "description": "action drain/stop: a cluster node (swarm: its hostname as "
            "`docker node ls` shows it, or its ID); every unit on it is lost to the run.",
        },
        "netem": FAULT_NETEM,
        "behaviour": {
            "enum": list(SOLVER_BEHAVIOURS),
            "description": "action solver: what the solver does in the span.",
        },
        "options": {
            "type": "object",
            "description": "action solver: the behaviour's options (infeasible: kind; "
            "late: delay_seconds; flood: count).",
        },
        "prosumer": _integer("action prosumer: the misbehaving prosumer's id.", minimum=101),
        "misbehaviour": {
            "enum": list(MISBEHAVIOURS),
            "description": "action prosumer: offers beyond its assets, or for past intervals.",
        },
        "note": {"type": "string", "description": "Free text, kept in the fault log."},
    },
}

FAULTS: dict[str, Any] = {
    "type": "array",
    "items": FAULT,
    "default": [],
    "description": "Faults and adversaries, each at an interval or a time offset "
    "(orchestrator/faults/README.md).",
}


@dataclass(frozen=True, slots=True)
class FaultNetem:
    latency_ms: float = 0
    jitter_ms: float = 0
    loss_percent: float = 0


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """One `faults:` entry as written (validated; see faultchecks.py)."""

    action: str
    target: str | None = None
    node: str | None = None  # drain/stop: the cluster node
    at_interval: int | None = None
    at_seconds: float | None = None
    until_interval: int | None = None
    for_intervals: int | None = None
    for_seconds: float | None = None
    netem: FaultNetem | None = None
    behaviour: str | None = None
    options: Mapping[str, Any] | None = field(default=None, hash=False)
    prosumer: int | None = None
    misbehaviour: str | None = None
    note: str | None = None

    @property
    def span_end_interval(self) -> int | None:
        """The interval at which the span ends (exclusive), if it is one in intervals."""
        if self.until_interval is not None:
            return self.until_interval
        if self.for_intervals is not None and self.at_interval is not None:
            return self.at_interval + self.for_intervals
        return None

    @property
    def span_end_seconds(self) -> float | None:
        if self.for_seconds is not None and self.at_seconds is not None:
            return self.at_seconds + self.for_seconds
        return None

    @property
    def has_span(self) -> bool:
        return self.span_end_interval is not None or self.span_end_seconds is not None
