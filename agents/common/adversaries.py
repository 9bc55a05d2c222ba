"""Adversarial settings of an agent config (issue 8): a solver's `behaviour_schedule`
and a prosumer host's `misbehaviour`, validated at load with ConfigError messages
that name the key (e.g. `behaviour_schedule.0.options.kind`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from agents.common.errors import ConfigError
from market.rules import OFFCHAIN, ONCHAIN, ViolationKind

# --- adversarial experiments (issue 8) ------------------------------------------------
# Solver behaviours and their options: option -> (type, default). `agents.solver.behaviour`
# builds the strategy objects; this table only validates (the prosumer stays light).
FLOOD_MAX = 50  # submissions per round a flooding solver may make
LATE_MAX_SECONDS = 3600.0
# The market.verify kinds the contract checks, from the catalogue of market rules
# (UNKNOWN_FEEDER and NEGATIVE_PRICE cannot occur on chain: offers name known feeders,
# prices are unsigned).
ONCHAIN_VIOLATIONS: tuple[ViolationKind, ...] = ONCHAIN
BEHAVIOUR_OPTIONS: Mapping[str, Mapping[str, tuple[type, Any]]] = {
    "honest": {},
    "infeasible": {"kind": (str, "any")},
    "inferior": {"no_candidate": (str, "worse")},
    "late": {"delay_seconds": (float, 5.0)},
    "flood": {"count": (int, 5)},
}


MisbehaviourAction = Literal["beyond_assets", "past_interval"]
MISBEHAVIOURS: tuple[str, ...] = get_args(MisbehaviourAction)


@dataclass(frozen=True)
class BehaviourSpan:
    """Clock intervals from_interval <= t < until_interval (None: to the end) in which a
    solver uses `behaviour` with `options` (validated, defaults filled in)."""

    from_interval: int
    behaviour: str
    until_interval: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_span(self.from_interval, self.until_interval)
        object.__setattr__(self, "options", behaviour_options(self.behaviour, self.options))

    def covers(self, t: int) -> bool:
        return self.from_interval <= t and (self.until_interval is None or t < self.until_interval)


@dataclass(frozen=True)
class Misbehaviour:
    """Prosumer `prosumer` does `action` at clock intervals from_interval <= t < until."""

    prosumer: int
    action: MisbehaviourAction
    from_interval: int
    until_interval: int | None = None

    def __post_init__(self) -> None:
        _check_span(self.from_interval, self.until_interval)

    def covers(self, t: int) -> bool:
        return self.from_interval <= t and (self.until_interval is None or t < self.until_interval)


def _check_span(start: int, until: int | None) -> None:
    if until is not None and until <= start:
        raise ConfigError(f"until_interval {until} <= from_interval {start} (empty span)")


def overlap(a: BehaviourSpan | Misbehaviour, b: BehaviourSpan | Misbehaviour) -> bool:
    """Whether two spans of clock intervals share an interval."""
    inf = float("inf")
    a_end = inf if a.until_interval is None else a.until_interval
    b_end = inf if b.until_interval is None else b.until_interval
    return a.from_interval < b_end and b.from_interval < a_end


def behaviour_options(name: str, options: Any, prefix: str = "") -> dict[str, Any]:
    """Check a solver behaviour name and its options; return the options with defaults.
    `prefix` names where they came from in the config ("" or "behaviour_schedule.N.")."""
    schema = BEHAVIOUR_OPTIONS.get(name)
    if schema is None:
        known = ", ".join(sorted(BEHAVIOUR_OPTIONS))
        raise ConfigError(f"{prefix}behaviour: unknown solver behaviour {name!r} (known: {known})")
    where = f"{prefix}options"
    if not isinstance(options, dict):
        raise ConfigError(f"{where}: expected object, got {type(options).__name__}")
    unknown = sorted(set(options) - set(schema))
    if unknown:
        allowed = ", ".join(sorted(schema)) or "none"
        raise ConfigError(f"{where}: unknown option {unknown[0]!r} for {name} (allowed: {allowed})")
    out: dict[str, Any] = {}
    for key, (kind, default) in schema.items():
        value = options.get(key, default)
        numeric = kind is float and isinstance(value, int)
        if isinstance(value, bool) or not (isinstance(value, kind) or numeric):
            raise ConfigError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
        out[key] = kind(value)
    _check_option_values(name, out, where)
    return out


def _check_option_values(name: str, options: dict[str, Any], where: str) -> None:
    if name == "infeasible":
        kind = str(options["kind"])
        names = {k.value.lower(): k.value for k in ONCHAIN_VIOLATIONS}
        if kind.lower() == "any":
            options["kind"] = "any"
        elif kind.lower() in names:
            options["kind"] = names[kind.lower()]
        else:
            why = " (cannot occur on chain)" if kind.upper() in OFFCHAIN else ""
            known = ", ".join(["any", *sorted(names.values())])
            raise ConfigError(f"{where}.kind: {kind!r} is not a kind{why}; use one of {known}")
    elif name == "inferior" and options["no_candidate"] not in ("worse", "empty"):
        raise ConfigError(
            f"{where}.no_candidate: expected 'worse' or 'empty', got {options['no_candidate']!r}"
        )
    elif name == "late" and not 0 < options["delay_seconds"] <= LATE_MAX_SECONDS:
        raise ConfigError(
            f"{where}.delay_seconds: must be in (0, {LATE_MAX_SECONDS:g}], "
            f"got {options['delay_seconds']}"
        )
    elif name == "flood" and not 1 <= options["count"] <= FLOOD_MAX:
        raise ConfigError(f"{where}.count: must be in 1..{FLOOD_MAX}, got {options['count']}")
