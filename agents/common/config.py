"""What an agent is told: its config file (JSON written by the orchestrator), as
frozen dataclasses. These classes are the only schema of it: the planner builds the
role settings (`DsoSettings`, ...), the renderer adds the wiring (`AgentConfig`) and
writes `to_json(config)`; the agent reads it back with `load_config(path)`, which
returns the dataclass of its role (`DsoConfig`, `ProsumerHostConfig`, `SolverConfig`,
`ClockConfig`, `RecorderConfig`). Both directions are generic (agents.common.typed):
a field added here is written and read without another change; a bad or unknown key
is a ConfigError naming it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from agents.common.adversaries import BehaviourSpan, Misbehaviour, behaviour_options, overlap
from agents.common.errors import ConfigError
from agents.common.market import MarketParams
from agents.common.typed import from_plain
from market.types import Feeder, Kind

Role = Literal["dso", "prosumer", "solver", "clock", "recorder"]
ROLES: tuple[str, ...] = get_args(Role)
AddressRotation = Literal["per_offer", "per_interval"]
REDACTED = "redacted"  # a finished run's key_secret in its bundle


@dataclass(frozen=True)
class TraceOffer:
    """One offer of a prosumer's trace: `energy_wh` > 0 sells, < 0 buys (the TRANSAX
    convention)."""

    start: int
    end: int
    energy_wh: int

    def __post_init__(self) -> None:
        if self.end < self.start or self.energy_wh == 0:
            raise ConfigError("empty offer (start..end or energy_wh)")

    @property
    def kind(self) -> Kind:
        return Kind.SELL if self.energy_wh > 0 else Kind.BUY

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
    offers: tuple[TraceOffer, ...] = ()


@dataclass(frozen=True)
class Prices:
    """Uniform reservation prices, micro-units per kWh."""

    sell: int
    buy: int


# --- role settings: what the planner decides for each agent ------------------------
@dataclass(frozen=True, kw_only=True)
class DsoSettings:
    feeders: tuple[Feeder, ...]  # limits in Wh per interval
    prosumers: tuple[ProsumerSpec, ...]
    initial_balance: Mapping[int, int] = field(default_factory=dict)  # prosumer id -> money

    def feeder(self, feeder_id: int) -> Feeder | None:
        return next((f for f in self.feeders if f.id == feeder_id), None)


@dataclass(frozen=True, kw_only=True)
class ProsumerHostSettings:
    prosumers: tuple[ProsumerSpec, ...]
    prices: Prices
    address_rotation: AddressRotation = "per_offer"
    seed: int = 0
    # hex; the run's secret behind the anonymous keys (agents.prosumer.plan.anon_secret):
    # the renderer sets it, never the plan or the spec; REDACTED in a finished bundle
    key_secret: str = ""
    misbehaviour: tuple[Misbehaviour, ...] = ()

    def __post_init__(self) -> None:
        if self.key_secret == REDACTED:
            raise ConfigError("key_secret: redacted when the run ended (the keys stay private)")
        try:
            bytes.fromhex(self.key_secret)
        except ValueError:
            raise ConfigError("key_secret: expected hex digits") from None
        ids = {p.id for p in self.prosumers}
        for i, m in enumerate(self.misbehaviour):
            if m.prosumer not in ids:
                raise ConfigError(
                    f"misbehaviour.{i}.prosumer: {m.prosumer} is not a prosumer of this host"
                )
            for j, other in enumerate(self.misbehaviour[:i]):
                if other.prosumer == m.prosumer and overlap(other, m):
                    raise ConfigError(
                        f"misbehaviour.{i}: overlaps misbehaviour.{j} of prosumer {m.prosumer}"
                    )


@dataclass(frozen=True, kw_only=True)
class SolverSettings:
    engine: str = "highs"
    behaviour: str = "honest"
    behaviour_schedule: tuple[BehaviourSpan, ...] = ()

    def __post_init__(self) -> None:
        behaviour_options(self.behaviour, {}, "")
        for i, span in enumerate(self.behaviour_schedule):
            for j, other in enumerate(self.behaviour_schedule[:i]):
                if overlap(other, span):
                    raise ConfigError(f"behaviour_schedule.{i}: overlaps behaviour_schedule.{j}")


@dataclass(frozen=True, kw_only=True)
class ClockSettings:
    prosumer_hosts: tuple[str, ...] = ()
    solvers: tuple[str, ...] = ()
    lockstep_timeout_seconds: float = 120.0


@dataclass(frozen=True, kw_only=True)
class RecorderSettings:
    pass


RoleSettings = (
    DsoSettings | ProsumerHostSettings | SolverSettings | ClockSettings | RecorderSettings
)


# --- the config files: wiring (set by the renderer) + the role's settings ----------
@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """Keys common to every agent: who it is, where the others are, the market."""

    role: Role
    name: str
    market: MarketParams
    run_id: str = ""
    rpc_url: str = ""
    contract_address: str = ""
    chain_id: int = 31337
    dso_endpoint: str = ""
    clock_pub_endpoint: str = ""
    clock_pull_endpoint: str = ""
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    out_dir: Path = Path(".")
    log_level: str = "INFO"


@dataclass(frozen=True, kw_only=True)
class DsoConfig(DsoSettings, AgentConfig):
    private_key: str


@dataclass(frozen=True, kw_only=True)
class ProsumerHostConfig(ProsumerHostSettings, AgentConfig):
    pass


@dataclass(frozen=True, kw_only=True)
class SolverConfig(SolverSettings, AgentConfig):
    private_key: str

    @property
    def period_seconds(self) -> float:
        """Δs, the solver period (the market's setting)."""
        return self.market.solver_period_seconds


@dataclass(frozen=True, kw_only=True)
class ClockConfig(ClockSettings, AgentConfig):
    private_key: str


@dataclass(frozen=True, kw_only=True)
class RecorderConfig(RecorderSettings, AgentConfig):
    pass


CONFIG_CLASSES: Mapping[str, type[AgentConfig]] = {
    "dso": DsoConfig,
    "prosumer": ProsumerHostConfig,
    "solver": SolverConfig,
    "clock": ClockConfig,
    "recorder": RecorderConfig,
}


def config_class(role: str) -> type[AgentConfig]:
    cls = CONFIG_CLASSES.get(role)
    if cls is None:
        raise ConfigError(f"role: unknown role {role!r} (expected one of {', '.join(ROLES)})")
    return cls


def load_config(path: str | Path) -> AgentConfig:
    """Read an agent config file; raise ConfigError naming the bad key."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def parse_config(data: Any) -> AgentConfig:
    """The role's config dataclass from an already parsed mapping."""
    if not isinstance(data, Mapping):
        raise ConfigError("config must be a JSON object")
    role = data.get("role")
    if not isinstance(role, str):
        raise ConfigError("role: missing" if role is None else "role: expected str")
    return from_plain(config_class(role), data)
