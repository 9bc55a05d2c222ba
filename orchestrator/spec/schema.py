"""The JSON Schema (Draft 2020-12) of an experiment spec: the one place that
says which keys exist, their types, ranges and defaults.

To add a section (e.g. `faults:`), add its schema to SECTIONS, a frozen
dataclass with the same field names to orchestrator/spec/model.py and a field
on `Spec`; defaults written here are applied before the dataclasses are built.
"""

from __future__ import annotations

import copy
from typing import Any

from orchestrator.spec.backends import NAMES as BACKEND_NAMES
from orchestrator.spec.faults import FAULTS
from orchestrator.spec.grid import GRID
from orchestrator.spec.swarm import PLACEMENT, SWARM

SCHEMA_ID = "urn:te-testbed:spec"
NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]*$"
NAME_HINT = "letters, digits, '.', '_' and '-', starting with a letter or digit"
Schema = dict[str, Any]


def _object(
    properties: dict[str, Schema], *, required: tuple[str, ...] = (), **extra: Any
) -> Schema:
    schema: Schema = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = list(required)
    schema.update(extra)
    return schema


def _integer(description: str, *, minimum: int | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "integer", "description": description}
    if minimum is not None:
        schema["minimum"] = minimum
    schema.update(extra)
    return schema


def _number(description: str, **extra: Any) -> Schema:
    return {"type": "number", "description": description, **extra}


def _name(description: str, **extra: Any) -> Schema:
    return {
        "type": "string",
        "description": description,
        "pattern": NAME_PATTERN,
        "x-pattern-hint": NAME_HINT,
        **extra,
    }


_ID_LIST: Schema = {
    "type": "array",
    "items": {"type": "integer", "minimum": 1},
    "minItems": 1,
    "uniqueItems": True,
}

DATASET = _object(
    {
        "kind": {
            "enum": ["synthetic", "transax"],
            "description": "synthetic: the seeded generator with the paper microgrid's "
            "structure; transax: a directory of prosumer_<ID>.csv traces.",
        },
        "path": {
            "type": "string",
            "minLength": 1,
            "description": "transax only: the trace directory, relative to the spec file.",
        },
        "seed": {
            "type": ["integer", "null"],
            "minimum": 0,
            "default": None,
            "description": "synthetic only: generator seed (default: the spec's seed).",
        },
        "scale": _integer("synthetic only: copies of the 11-feeder block.", minimum=1, default=1),
        "battery": {
            "type": "boolean",
            "default": False,
            "description": "synthetic only: producers store midday energy and offer it until "
            "interval 95 (paper Figure 7).",
        },
        "battery_capacity_kwh": _number("synthetic only.", minimum=0, default=90),
        "battery_rate_kwh": _number(
            "synthetic only: charge per interval.", exclusiveMinimum=0, default=10
        ),
        "feeders": {
            **_ID_LIST,
            "description": "Keep only the prosumers of these feeders (default: all).",
        },
        "prosumers": {**_ID_LIST, "description": "Keep only these prosumer ids (default: all)."},
    },
    required=("kind",),
    description="Where the offer traces come from.",
)

_FEEDER_LIMITS = {
    "c_ext_kw": _number("Net flow limit into or out of a feeder, kW.", minimum=0),
    "c_int_kw": _number("Total production / consumption limit in a feeder, kW.", minimum=0),
}

FEEDERS = _object(
    {
        "c_ext_kw": {**_FEEDER_LIMITS["c_ext_kw"], "default": 80},
        "c_int_kw": {**_FEEDER_LIMITS["c_int_kw"], "default": 100},
        "overrides": {
            "type": "array",
            "default": [],
            "description": "Per-feeder limits that differ from the defaults above.",
            "items": _object(
                {"id": _integer("Feeder id.", minimum=1), **_FEEDER_LIMITS}, required=("id",)
            ),
        },
    },
    default={},
    description="Feeder safety limits in kW, converted to whole Wh per interval.",
)

MICROGRID = _object(
    {
        "dataset": DATASET,
        "feeders": FEEDERS,
        "prices": _object(
            {
                "sell": _integer(
                    "Reservation price of selling offers, micro-units per kWh.",
                    minimum=0,
                    default=100_000,
                ),
                "buy": _integer(
                    "Reservation price of buying offers, micro-units per kWh.",
                    minimum=0,
                    default=200_000,
                ),
            },
            default={},
        ),
        "grid": GRID,  # orchestrator/spec/grid.py
    },
    required=("dataset",),
)

MARKET = _object(
    {
        "interval_minutes": _integer("Δ: length of a trading interval.", minimum=1, default=15),
        "first_interval": _integer("First interval traded.", minimum=1, default=1),
        "last_interval": _integer("Last interval traded.", minimum=1, default=96),
        "prediction_window": _integer(
            "L: offers appear L - 1 intervals ahead (the current interval counts).",
            minimum=2,
            default=2,
        ),
        "t_clear": _integer(
            "T_clear: at interval t, trades of t + T_clear are finalized.", minimum=1, default=1
        ),
        "simulated_interval_seconds": _number(
            "Δ̂: real seconds per interval under the wallclock clock.",
            exclusiveMinimum=0,
            default=120,
        ),
        "solver_period_seconds": _number(
            "Δs: a solver runs every Δs seconds.", exclusiveMinimum=0, default=5
        ),
        "min_offer_energy_wh": _integer(
            "Smallest offer the contract takes (Wh): raises the cost of a flood of tiny offers.",
            minimum=1,
            default=1,
        ),
        "max_open_offers": _integer(
            "Most offers one anonymous address may have posted and not closed (contract).",
            minimum=1,
            maximum=65535,
            default=256,
        ),
        "settle_chunk": _integer(
            "Most trades one finalize() call settles; longer intervals take several calls.",
            minimum=1,
            maximum=2**32 - 1,
            default=400,
        ),
        "min_improvement_wh": _integer(
            "Wh by which a solution must beat the candidate (contract; checked before the "
            "verification, so a copied solution reverts cheaply).",
            minimum=1,
            maximum=2**64 - 1,
            default=1,
        ),
        "clock": {
            "enum": ["lockstep", "wallclock"],
            "default": "lockstep",
            "description": "lockstep: advance when every agent is done (deterministic, equals "
            "`testbed replay`); wallclock: every Δ̂ seconds, as on hardware.",
        },
        "tie_break": {  # market.tiebreak.TIE_BREAKS (a test keeps them equal)
            "enum": ["expiring-first", "storage-last", "none"],
            "default": "expiring-first",
            "description": "Which of the equally large solutions a solver picks "
            "(market/README.md): expiring-first sells the energy of offers that expire "
            "soonest first; "
            "storage-last also keeps multi-interval energy for the last visible intervals; "
            "none leaves the choice to the LP solver.",
        },
    },
    default={},
)

CHAIN = _object(
    {
        "kind": {"enum": ["anvil"], "default": "anvil"},
        "block_time_seconds": _number(
            "Emulated mining rate; 0 mines every transaction at once.", minimum=0, default=0
        ),
        "chain_id": _integer("EIP-155 chain id.", minimum=1, default=31337),
        "accounts": {
            "type": ["integer", "null"],
            "minimum": 1,
            "default": None,
            "description": "Funded accounts (default: one per agent).",
        },
    },
    default={},
)

SOLVER = _object(
    {
        "name": _name("Solver name, unique."),
        "engine": {"enum": ["glpk", "highs"], "default": "highs"},
        "behaviour": {
            "enum": ["honest"],
            "default": "honest",
            "description": "honest: submit the optimum it finds.",
        },
    },
    required=("name",),
)

NETEM = _object(
    {
        "latency_ms": _number("Added one-way delay of the host's outgoing packets.", minimum=0),
        "jitter_ms": _number("Delay variation (uniform, +-).", minimum=0),
        "loss_percent": _number("Outgoing packets dropped at random.", minimum=0, maximum=100),
        "rate_mbit": _number("Outgoing bandwidth limit.", exclusiveMinimum=0),
    },
    description="docker: network emulation of the host's link (tc netem in the container).",
)

HOST = _object(
    {
        "name": _name("Host name, unique."),
        "address": {"type": "string", "minLength": 1, "description": "ssh: host or IP."},
        "port": _integer("ssh: port.", minimum=1, maximum=65535),
        "user": {"type": "string", "minLength": 1, "description": "ssh: login."},
        "key_file": {"type": "string", "minLength": 1, "description": "ssh: private key."},
        "python": {
            "type": "string",
            "minLength": 1,
            "description": "ssh: the host's Python 3.11+ (default: python3 on its PATH).",
        },
        "profile": {
            "enum": ["none", "bbb"],
            "description": "docker: host profile: CPU and memory limits of the container "
            "(bbb: a BeagleBone Black, 512 MB and a fraction of a core; none: no limits).",
        },
        "count": _integer(
            "A group of this many identical hosts, named <name>-01, <name>-02, ... "
            "(default: one host named <name>).",
            minimum=1,
        ),
        "prosumers": {
            **_ID_LIST,
            "description": "Prosumers placed on this host (or spread over the group); the "
            "others are spread evenly over the hosts without such a list.",
        },
        "netem": NETEM,
        "placement": PLACEMENT,
    },
    required=("name",),
)

SSH = _object(
    {
        "known_hosts": {
            "type": "string",
            "minLength": 1,
            "default": "~/.ssh/known_hosts",
            "description": "Host keys the boards must present (OpenSSH known_hosts format).",
        },
        "accept_new_host_keys": {
            "type": "boolean",
            "default": False,
            "description": "Add the key of a host not yet in known_hosts (a changed key is "
            "always refused).",
        },
        "key_file": {
            "type": ["string", "null"],
            "default": None,
            "description": "Private key of hosts without their own key_file (default: the "
            "ssh-agent and ~/.ssh/id_*). Passwords are never used.",
        },
        "bind_address": {
            "type": "string",
            "minLength": 1,
            "default": "auto",
            "description": "Address of this machine the boards reach; the chain, DSO and "
            "clock listen there (auto: the address this machine uses to reach the first host).",
        },
        "services_host": {
            "type": ["string", "null"],
            "default": None,
            "description": "A host of deployment.hosts that runs the DSO, the clock and the "
            "solvers (default: this machine). The chain, the recorder and Prometheus always "
            "run on this machine.",
        },
        "remote_dir": {
            "type": "string",
            "minLength": 1,
            "default": ".testbed",
            "description": "Directory on each host (relative to the login's home) for the "
            "wheelhouse, the virtualenv and the runs.",
        },
        "wheelhouse": {
            "type": ["string", "null"],
            "default": None,
            "description": "A directory of wheels for the hosts (e.g. armv7l wheels for "
            "BeagleBone Blacks); default: built here, for hosts of this machine's architecture "
            "and Python (orchestrator/backends/ssh/README.md).",
        },
        "max_clock_offset_fraction": _number(
            "Refuse to start when a host's clock is off by more than this fraction of "
            "market.simulated_interval_seconds.",
            minimum=0,
            default=0.05,
        ),
        "min_free_disk_mb": _integer("Free disk each host needs.", minimum=0, default=300),
        "connect_timeout_seconds": _number("", exclusiveMinimum=0, default=10),
    },
    default={},
    description="ssh backend: how the orchestrator reaches and uses deployment.hosts.",
)

DEPLOYMENT = _object(
    {
        "backend": {"enum": list(BACKEND_NAMES), "default": "local"},
        "prosumers_per_host": {
            "type": ["integer", "null"],
            "minimum": 1,
            "default": None,
            "description": "Prosumer agents sharing one testbed host (the paper: 102 on 31 "
            "boards). Default: the backend's choice.",
        },
        "hosts": {
            "type": "array",
            "default": [],
            "items": HOST,
            "description": "Testbed hosts. Empty: the backend's defaults (local: this "
            "machine; docker: one container per group of prosumers; ssh: at least one needed).",
        },
        "ssh": SSH,
        "swarm": SWARM,
    },
    default={},
)

METRICS = _object(
    {
        "prometheus": _object(
            {
                "enabled": {"type": "boolean", "default": True},
                "scrape_interval_seconds": _number("", exclusiveMinimum=0, default=5),
            },
            default={},
        )
    },
    default={},
)

SWEEP: Schema = {
    "type": ["object", "null"],
    "description": "Run the experiment once per combination (cartesian product) of these "
    "values: keys are dotted spec paths as for --set (e.g. market.prediction_window), values "
    "the lists to try. `testbed run` and `testbed replay` run every point and write a sweep "
    "table; each point's bundle holds the resolved spec of that point.",
    "additionalProperties": {"type": "array", "minItems": 1, "uniqueItems": True},
}

SECTIONS: dict[str, Schema] = {
    "name": _name("Experiment name (default: the spec file's base name)."),
    "seed": _integer("Seed of everything random in the experiment.", minimum=0, default=0),
    "microgrid": MICROGRID,
    "market": MARKET,
    "chain": CHAIN,
    "solvers": {
        "type": "array",
        "minItems": 1,
        "items": SOLVER,
        "default": [{"name": "solver-1"}],
    },
    "deployment": DEPLOYMENT,
    "metrics": METRICS,
    "sweep": SWEEP,
    "faults": FAULTS,
}


def json_schema() -> Schema:
    """The spec's JSON Schema (a fresh copy, safe to modify)."""
    header = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "te-testbed experiment spec",
    }
    return copy.deepcopy({**header, **_object(SECTIONS, required=("microgrid",))})


def schema_default(schema: Schema, path: tuple[str | int, ...]) -> Any:
    """The schema's default for the value at `path`, or None."""
    node: Schema | None = schema
    for part in path:
        if node is None:
            return None
        if isinstance(part, int):
            node = node.get("items") if isinstance(node.get("items"), dict) else None
        else:
            node = node.get("properties", {}).get(part)
    return None if node is None else copy.deepcopy(node.get("default"))


def apply_defaults(data: Any, schema: Schema) -> Any:
    """A copy of `data` (already valid against `schema`) with every missing
    key that has a default filled in, recursively."""
    if isinstance(data, dict) and "properties" in schema:
        result = dict(data)
        for key, sub in schema["properties"].items():
            if key not in result and "default" in sub:
                result[key] = copy.deepcopy(sub["default"])
            if key in result:
                result[key] = apply_defaults(result[key], sub)
        return result
    if isinstance(data, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(item, schema["items"]) for item in data]
    return data
