"""Adversarial settings of an agent config (issue 8): a solver's `behaviour_schedule`
and a prosumer host's `misbehaviour`, validated at load with ConfigError messages
that name the key (e.g. `behaviour_schedule.0.options.kind`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from agents.common.errors import ConfigError
from agents.common.validate import typed
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
MISBEHAVIOURS = ("beyond_assets", "past_interval")


@dataclass(frozen=True)
class BehaviourSpan:
    """Clock intervals from_interval <= t < until_interval (None: to the end) in which a
    solver uses `behaviour` with `options` (validated, defaults filled in)."""

    from_interval: int
    until_interval: int | None
    behaviour: str
    options: Mapping[str, Any]

    def covers(self, t: int) -> bool:
        return self.from_interval <= t and (self.until_interval is None or t < self.until_interval)


@dataclass(frozen=True)
class Misbehaviour:
    """Prosumer `prosumer` does `action` at clock intervals from_interval <= t < until."""

    prosumer: int
    action: str  # "beyond_assets" | "past_interval"
    from_interval: int
    until_interval: int | None

    def covers(self, t: int) -> bool:
        return self.from_interval <= t and (self.until_interval is None or t < self.until_interval)


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


def _field(item: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    try:
        return typed(item, key, kind)
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from exc


def _span_bounds(item: Mapping[str, Any], where: str) -> tuple[int, int | None]:
    start = _field(item, "from_interval", int, where)
    until = item.get("until_interval")
    if until is not None and (isinstance(until, bool) or not isinstance(until, int)):
        raise ConfigError(f"{where}.until_interval: expected int or null, got {until!r}")
    if until is not None and until <= start:
        raise ConfigError(f"{where}: until_interval {until} <= from_interval {start} (empty span)")
    return start, until


def _overlap(a: tuple[int, int | None], b: tuple[int, int | None]) -> bool:
    inf = float("inf")
    a_end = inf if a[1] is None else a[1]
    b_end = inf if b[1] is None else b[1]
    return a[0] < b_end and b[0] < a_end


def _objects(value: Any, name: str, keys: set[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """("name.index", item) of a list of objects with only `keys`."""
    if not isinstance(value, list):
        raise ConfigError(f"{name}: expected a list")
    for i, item in enumerate(value):
        where = f"{name}.{i}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected object")
        unknown = sorted(set(item) - keys)
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}")
        yield where, item


def parse_schedule(value: Any) -> tuple[BehaviourSpan, ...]:
    """behaviour_schedule: [{from_interval, until_interval, behaviour, options}], no overlaps."""
    spans: list[BehaviourSpan] = []
    keys = {"from_interval", "until_interval", "behaviour", "options"}
    for where, item in _objects(value, "behaviour_schedule", keys):
        start, until = _span_bounds(item, where)
        name = _field(item, "behaviour", str, where)
        options = behaviour_options(name, item.get("options", {}), f"{where}.")
        for j, other in enumerate(spans):
            if _overlap((start, until), (other.from_interval, other.until_interval)):
                raise ConfigError(f"{where}: overlaps behaviour_schedule.{j}")
        spans.append(BehaviourSpan(start, until, name, options))
    return tuple(spans)


def parse_misbehaviour(value: Any, ids: set[int]) -> tuple[Misbehaviour, ...]:
    """misbehaviour: [{prosumer, action, from_interval, until_interval}] of this host's
    prosumers; spans of the same prosumer must not overlap."""
    out: list[Misbehaviour] = []
    keys = {"prosumer", "action", "from_interval", "until_interval"}
    for where, item in _objects(value, "misbehaviour", keys):
        prosumer = _field(item, "prosumer", int, where)
        if prosumer not in ids:
            raise ConfigError(f"{where}.prosumer: {prosumer} is not a prosumer of this host")
        action = item.get("action")
        if action not in MISBEHAVIOURS:
            raise ConfigError(
                f"{where}.action: {action!r} is not one of {', '.join(MISBEHAVIOURS)}"
            )
        start, until = _span_bounds(item, where)
        for j, other in enumerate(out):
            if other.prosumer == prosumer and _overlap(
                (start, until), (other.from_interval, other.until_interval)
            ):
                raise ConfigError(f"{where}: overlaps misbehaviour.{j} of prosumer {prosumer}")
        out.append(Misbehaviour(prosumer, str(action), start, until))
    return tuple(out)
