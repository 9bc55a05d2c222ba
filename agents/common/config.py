"""Agent config files (JSON rendered by the orchestrator) as frozen dataclasses.

One file per agent process; keys are those of notes "run-interfaces.md".
`load_config(path)` reads the file and returns the dataclass of its role:
`DsoConfig`, `ProsumerHostConfig`, `SolverConfig`, `ClockConfig` or
`RecorderConfig`, all subclasses of `AgentConfig` (the common keys). Unknown
keys are kept in `raw` so that an agent can read a key this module does not
know yet without a change here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.common.adversaries import (
    BehaviourSpan,
    Misbehaviour,
    behaviour_options,
    parse_misbehaviour,
    parse_schedule,
)
from agents.common.errors import ConfigError
from agents.common.validate import typed
from market.types import Kind

ROLES = ("dso", "prosumer", "solver", "clock", "recorder")


@dataclass(frozen=True)
class MarketParams:
    """Market timing. Clock intervals run first-t_clear .. last-t_clear; at the
    end of clock interval t, finalize() fixes delivery interval t + t_clear."""

    first_interval: int
    last_interval: int
    prediction_window: int
    t_clear: int
    interval_seconds: int
    epoch: int
    clock: str = "lockstep"
    solver_period_seconds: float = 1.0
    tie_break: str = "expiring-first"  # market.tiebreak: which optimum solvers pick

    @property
    def first_clock_interval(self) -> int:
        return self.first_interval - self.t_clear

    @property
    def last_clock_interval(self) -> int:
        return self.last_interval - self.t_clear

    def clock_intervals(self) -> range:
        return range(self.first_clock_interval, self.last_clock_interval + 1)

    def interval_start(self, t: int) -> int:
        """Chain timestamp at which clock interval t starts (end = start of t+1)."""
        return self.epoch + (t - self.first_clock_interval) * self.interval_seconds

    def interval_at(self, timestamp: float) -> int:
        """Clock interval running at chain time `timestamp`."""
        return self.first_clock_interval + int((timestamp - self.epoch) // self.interval_seconds)


@dataclass(frozen=True)
class FeederSpec:
    """Feeder limits in Wh per interval."""

    id: int
    c_ext: int
    c_int: int


@dataclass(frozen=True)
class TraceOffer:
    """One offer of a prosumer's trace. `energy_wh` > 0 sells, < 0 buys
    (the TRANSAX convention), unless the file states `kind` explicitly."""

    start: int
    end: int
    energy_wh: int
    kind: Kind

    @property
    def energy(self) -> int:
        """Offered energy in Wh, always positive."""
        return abs(self.energy_wh)

    @property
    def intervals(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True)
class ProsumerSpec:
    id: int
    feeder: int
    offers: tuple[TraceOffer, ...]


@dataclass(frozen=True)
class Prices:
    """Uniform reservation prices, micro-units per kWh."""

    sell: int
    buy: int


@dataclass(frozen=True)
class AgentConfig:
    """Keys common to every agent."""

    run_id: str
    role: str
    name: str
    rpc_url: str
    contract_address: str
    chain_id: int
    dso_endpoint: str
    clock_pub_endpoint: str
    clock_pull_endpoint: str
    metrics_host: str
    metrics_port: int
    out_dir: Path
    log_level: str
    market: MarketParams
    raw: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class DsoConfig(AgentConfig):
    private_key: str
    feeders: tuple[FeederSpec, ...]
    prosumers: tuple[ProsumerSpec, ...]
    initial_balance: Mapping[int, int]  # prosumer id -> money units

    def feeder(self, feeder_id: int) -> FeederSpec | None:
        return next((f for f in self.feeders if f.id == feeder_id), None)


@dataclass(frozen=True)
class ProsumerHostConfig(AgentConfig):
    prosumers: tuple[ProsumerSpec, ...]
    prices: Prices
    address_rotation: str  # "per_offer" | "per_interval"
    seed: int
    misbehaviour: tuple[Misbehaviour, ...] = ()


@dataclass(frozen=True)
class SolverConfig(AgentConfig):
    private_key: str
    engine: str
    behaviour: str
    period_seconds: float
    behaviour_schedule: tuple[BehaviourSpan, ...] = ()


@dataclass(frozen=True)
class ClockConfig(AgentConfig):
    private_key: str
    mode: str  # "lockstep" | "wallclock"
    prosumer_hosts: tuple[str, ...]
    solvers: tuple[str, ...]
    lockstep_timeout_seconds: float = 120.0


@dataclass(frozen=True)
class RecorderConfig(AgentConfig):
    pass


def load_config(path: str | Path) -> AgentConfig:
    """Read an agent config file; raise ConfigError naming the bad key."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: config must be a JSON object")
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def parse_config(data: Mapping[str, Any]) -> AgentConfig:
    """Build the role's config dataclass from an already parsed mapping."""
    role = typed(data, "role", str)
    if role not in ROLES:
        raise ConfigError(f"role: unknown role {role!r} (expected one of {', '.join(ROLES)})")
    common = _common(data)
    if role == "dso":
        prosumers = _prosumers(data)
        return DsoConfig(
            **common,
            private_key=typed(data, "private_key", str),
            feeders=tuple(_feeder(f, i) for i, f in enumerate(typed(data, "feeders", list))),
            prosumers=prosumers,
            initial_balance=_initial_balance(data.get("initial_balance", 0), prosumers),
        )
    if role == "prosumer":
        prices = typed(data, "prices", dict)
        rotation = str(data.get("address_rotation", "per_offer"))
        if rotation not in ("per_offer", "per_interval"):
            raise ConfigError(f"address_rotation: unknown value {rotation!r}")
        prosumers = _prosumers(data)
        return ProsumerHostConfig(
            **common,
            prosumers=prosumers,
            prices=Prices(sell=typed(prices, "sell", int), buy=typed(prices, "buy", int)),
            address_rotation=rotation,
            seed=_opt(data, "seed", int, 0),
            misbehaviour=parse_misbehaviour(
                data.get("misbehaviour", []), {p.id for p in prosumers}
            ),
        )
    if role == "solver":
        behaviour = str(data.get("behaviour", "honest"))
        behaviour_options(behaviour, {}, "")
        return SolverConfig(
            **common,
            private_key=typed(data, "private_key", str),
            engine=str(data.get("engine", "highs")),
            behaviour=behaviour,
            period_seconds=float(
                data.get("period_seconds", common["market"].solver_period_seconds)
            ),
            behaviour_schedule=parse_schedule(data.get("behaviour_schedule", [])),
        )
    if role == "clock":
        mode = str(data.get("mode", common["market"].clock))
        if mode not in ("lockstep", "wallclock"):
            raise ConfigError(f"mode: unknown clock mode {mode!r}")
        return ClockConfig(
            **common,
            private_key=typed(data, "private_key", str),
            mode=mode,
            prosumer_hosts=tuple(str(h) for h in data.get("prosumer_hosts", ())),
            solvers=tuple(str(s) for s in data.get("solvers", ())),
            lockstep_timeout_seconds=float(data.get("lockstep_timeout_seconds", 120.0)),
        )
    return RecorderConfig(**common)


def _common(data: Mapping[str, Any]) -> dict[str, Any]:
    m = typed(data, "market", dict)
    market = MarketParams(
        first_interval=typed(m, "first_interval", int),
        last_interval=typed(m, "last_interval", int),
        prediction_window=typed(m, "prediction_window", int),
        t_clear=typed(m, "t_clear", int),
        interval_seconds=typed(m, "interval_seconds", int),
        epoch=typed(m, "epoch", int),
        clock=str(m.get("clock", "lockstep")),
        solver_period_seconds=float(m.get("solver_period_seconds", 1.0)),
        tie_break=str(m.get("tie_break", "expiring-first")),
    )
    if market.prediction_window < 1 or market.t_clear < 1:
        raise ConfigError("market: prediction_window and t_clear must be >= 1")
    if market.last_interval < market.first_interval:
        raise ConfigError("market: last_interval is before first_interval")
    return {
        "run_id": str(data.get("run_id", "")),
        "role": typed(data, "role", str),
        "name": typed(data, "name", str),
        "rpc_url": str(data.get("rpc_url", "")),
        "contract_address": str(data.get("contract_address", "")),
        "chain_id": _opt(data, "chain_id", int, 31337),
        "dso_endpoint": str(data.get("dso_endpoint", "")),
        "clock_pub_endpoint": str(data.get("clock_pub_endpoint", "")),
        "clock_pull_endpoint": str(data.get("clock_pull_endpoint", "")),
        "metrics_host": str(data.get("metrics_host", "127.0.0.1")),
        "metrics_port": _opt(data, "metrics_port", int, 0),
        "out_dir": Path(str(data.get("out_dir", "."))),
        "log_level": str(data.get("log_level", "INFO")),
        "market": market,
        "raw": dict(data),
    }


def _opt(data: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    if key not in data:
        return default
    try:
        return kind(data[key])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}: expected {kind.__name__}, got {data[key]!r}") from exc


def _feeder(f: Any, i: int) -> FeederSpec:
    if not isinstance(f, dict):
        raise ConfigError(f"feeders.{i}: expected object")
    try:
        return FeederSpec(
            id=typed(f, "id", int), c_ext=typed(f, "c_ext", int), c_int=typed(f, "c_int", int)
        )
    except ConfigError as exc:
        raise ConfigError(f"feeders.{i}.{exc}") from exc


def _trace_offer(o: Any, where: str) -> TraceOffer:
    if not isinstance(o, dict):
        raise ConfigError(f"{where}: expected object")
    energy = typed(o, "energy_wh", int)
    kind_name = o.get("kind")
    if kind_name is None:
        kind = Kind.SELL if energy > 0 else Kind.BUY
    elif kind_name in ("sell", "buy"):
        kind = Kind.SELL if kind_name == "sell" else Kind.BUY
    else:
        raise ConfigError(f"{where}.kind: expected 'sell' or 'buy'")
    offer = TraceOffer(
        start=typed(o, "start", int), end=typed(o, "end", int), energy_wh=energy, kind=kind
    )
    if offer.end < offer.start or energy == 0:
        raise ConfigError(f"{where}: empty offer (start..end or energy_wh)")
    return offer


def _prosumers(data: Mapping[str, Any]) -> tuple[ProsumerSpec, ...]:
    out = []
    for i, p in enumerate(typed(data, "prosumers", list)):
        if not isinstance(p, dict):
            raise ConfigError(f"prosumers.{i}: expected object")
        offers = tuple(
            _trace_offer(o, f"prosumers.{i}.offers.{j}") for j, o in enumerate(p.get("offers", ()))
        )
        out.append(
            ProsumerSpec(id=typed(p, "id", int), feeder=typed(p, "feeder", int), offers=offers)
        )
    return tuple(out)


def _initial_balance(value: Any, prosumers: tuple[ProsumerSpec, ...]) -> dict[int, int]:
    """An int (same for everyone) or an object {prosumer id: amount}."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {p.id: value for p in prosumers}
    if isinstance(value, dict):
        try:
            given = {int(k): int(v) for k, v in value.items()}
        except ValueError as exc:
            raise ConfigError(f"initial_balance: {exc}") from exc
        return {p.id: given.get(p.id, 0) for p in prosumers}
    raise ConfigError("initial_balance: expected int or object")
