"""The resolved spec as frozen dataclasses: no I/O, runtime objects are built
from these. Field names are the spec's key names (schema.py), so building
from validated data and `Spec.to_dict()` are generic. The `market:` section is
agents.common.market.MarketConfig, the class the agents' market timing extends."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union

from agents.common.market import MINUTES_PER_DAY as MINUTES_PER_DAY
from agents.common.market import MarketConfig
from agents.common.market import wh_per_interval as wh_per_interval
from market.types import Feeder
from orchestrator.spec.faults import FaultConfig
from orchestrator.spec.grid import GridConfig
from orchestrator.spec.swarm import SwarmConfig

SYNTHETIC_ONLY = ("seed", "scale", "battery", "battery_capacity_kwh", "battery_rate_kwh")
"""Dataset keys that only mean something for kind synthetic."""


@dataclass(frozen=True, slots=True)
class DatasetConfig:
    """`seed` is resolved (the spec's seed unless given) for kind synthetic;
    the SYNTHETIC_ONLY fields are left out of `to_dict()` for kind transax."""

    kind: str
    path: str | None = None
    seed: int | None = None
    scale: int = 1
    battery: bool = False
    battery_capacity_kwh: float = 90
    battery_rate_kwh: float = 10
    feeders: tuple[int, ...] | None = None
    prosumers: tuple[int, ...] | None = None

    def _unserialized(self) -> tuple[str, ...]:
        return SYNTHETIC_ONLY if self.kind != "synthetic" else ()


@dataclass(frozen=True, slots=True)
class FeederLimits:
    id: int
    c_ext_kw: float | None = None
    c_int_kw: float | None = None


@dataclass(frozen=True, slots=True)
class FeedersConfig:
    c_ext_kw: float = 80
    c_int_kw: float = 100
    overrides: tuple[FeederLimits, ...] = ()

    def limits_kw(self, feeder_id: int) -> tuple[float, float]:
        """(c_ext, c_int) in kW of feeder `feeder_id`."""
        c_ext, c_int = self.c_ext_kw, self.c_int_kw
        for override in self.overrides:
            if override.id == feeder_id:
                c_ext = c_ext if override.c_ext_kw is None else override.c_ext_kw
                c_int = c_int if override.c_int_kw is None else override.c_int_kw
        return c_ext, c_int


@dataclass(frozen=True, slots=True)
class PricesConfig:
    sell: int = 100_000
    buy: int = 200_000


@dataclass(frozen=True, slots=True)
class MicrogridConfig:
    dataset: DatasetConfig
    feeders: FeedersConfig = FeedersConfig()
    prices: PricesConfig = PricesConfig()
    grid: GridConfig = GridConfig()  # noqa: RUF009 (frozen; orchestrator/spec/grid.py)


@dataclass(frozen=True, slots=True)
class ChainConfig:
    kind: str = "anvil"
    block_time_seconds: float = 0
    chain_id: int = 31337
    accounts: int | None = None


@dataclass(frozen=True, slots=True)
class SolverConfig:
    name: str
    engine: str = "highs"
    behaviour: str = "honest"


@dataclass(frozen=True, slots=True)
class NetemConfig:
    latency_ms: float = 0
    jitter_ms: float = 0
    loss_percent: float = 0
    rate_mbit: float | None = None


@dataclass(frozen=True, slots=True)
class HostConfig:
    name: str
    address: str | None = None
    port: int | None = None
    user: str | None = None
    key_file: str | None = None
    python: str | None = None
    profile: str | None = None
    count: int | None = None  # None: one host
    prosumers: tuple[int, ...] | None = None
    netem: NetemConfig | None = None
    placement: tuple[str, ...] | None = None  # swarm: node constraints


@dataclass(frozen=True, slots=True)
class SshConfig:
    known_hosts: str = "~/.ssh/known_hosts"
    accept_new_host_keys: bool = False
    key_file: str | None = None
    bind_address: str = "auto"
    services_host: str | None = None
    remote_dir: str = ".testbed"
    wheelhouse: str | None = None
    max_clock_offset_fraction: float = 0.05
    min_free_disk_mb: int = 300
    connect_timeout_seconds: float = 10


@dataclass(frozen=True, slots=True)
class DeploymentConfig:
    backend: str = "local"
    prosumers_per_host: int | None = None
    hosts: tuple[HostConfig, ...] = ()
    ssh: SshConfig = SshConfig()
    swarm: SwarmConfig = SwarmConfig()  # noqa: RUF009 (frozen)


@dataclass(frozen=True, slots=True)
class PrometheusConfig:
    enabled: bool = True
    scrape_interval_seconds: float = 5


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    prometheus: PrometheusConfig = PrometheusConfig()


@dataclass(frozen=True, slots=True)
class Spec:
    """A validated experiment spec. `source` is the file it was loaded from,
    `warnings` what its validation allowed but noticed (neither is part of
    `to_dict()`: the resolved spec stands on its own)."""

    name: str
    seed: int
    microgrid: MicrogridConfig
    market: MarketConfig = field(default_factory=MarketConfig)
    chain: ChainConfig = ChainConfig()
    solvers: tuple[SolverConfig, ...] = (SolverConfig("solver-1"),)
    deployment: DeploymentConfig = DeploymentConfig()
    metrics: MetricsConfig = MetricsConfig()
    # dotted key -> values; None: a single experiment (orchestrator/sweep.py expands it)
    sweep: Mapping[str, tuple[Any, ...]] | None = field(default=None, hash=False)
    faults: tuple[FaultConfig, ...] = ()  # orchestrator/faults/
    source: str | None = field(default=None, compare=False, metadata={"serialize": False})
    # what validation noticed but allows (`file:line:col: path: message`), e.g. a large scale
    warnings: tuple[str, ...] = field(default=(), compare=False, metadata={"serialize": False})
    # dotted path -> file:line:col of the values the dataset is checked against (`where`)
    positions: Mapping[str, str] = field(
        default_factory=dict, compare=False, hash=False, metadata={"serialize": False}
    )

    def feeder(self, feeder_id: int) -> Feeder:
        """Feeder `feeder_id` with its limits in Wh per interval."""
        c_ext, c_int = self.microgrid.feeders.limits_kw(feeder_id)
        return Feeder(feeder_id, self.market.wh(c_ext), self.market.wh(c_int))

    def where(self, dotted: str) -> str:
        """`file:line:col: dotted` of a spec value, for errors found after
        loading (e.g. a prosumer id the dataset lacks)."""
        origin = self.positions.get(dotted) or self.source or "<spec>"
        return f"{origin}: {dotted}"

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec (defaults filled in, paths absolute) as plain
        data: loading it back gives an equal Spec."""
        plain = _to_plain(self)
        assert isinstance(plain, dict)
        return plain


T = TypeVar("T")


def build(cls: type[T], data: dict[str, Any]) -> T:
    """Instance of dataclass `cls` from validated plain data."""
    hints = typing.get_type_hints(cls)
    kwargs = {
        f.name: _convert(hints[f.name], data[f.name])
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.name in data
    }
    return cls(**kwargs)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return tuple(_convert(item, v) for v in value)
    if origin in (dict, Mapping):
        item = typing.get_args(hint)[1]
        return {k: _convert(item, v) for k, v in value.items()}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return build(hint, value)
    return value


def _to_plain(value: Any) -> Any:
    """Dataclasses as dicts, without None values (the schema's "absent")."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        skip: tuple[str, ...] = getattr(value, "_unserialized", tuple)()
        return {
            f.name: _to_plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("serialize", True)
            and f.name not in skip
            and getattr(value, f.name) is not None
        }
    if isinstance(value, tuple | list):
        return [_to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _to_plain(v) for k, v in value.items()}
    return value
