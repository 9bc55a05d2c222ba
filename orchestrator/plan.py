"""Plan a run: which agent processes exist, on which testbed host, with which
role settings, and in which order they start.

Pure data in, pure data out (no I/O, no ports, no keys): `build_plan` turns a
scenario (the resolved spec and dataset) into agents whose `settings` are the
agents' own config classes (agents.common.config: DsoSettings, ...); a backend
later decides where each agent listens (`backends.base.Placement`) and `render`
adds that wiring and writes one JSON config per agent process.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agents.common.config import (
    ClockSettings,
    DsoSettings,
    Prices,
    ProsumerHostSettings,
    ProsumerSpec,
    RecorderSettings,
    Role,
    RoleSettings,
    SolverSettings,
    TraceOffer,
)
from agents.common.market import MarketParams
from market.types import Feeder, Kind
from orchestrator.errors import TestbedError
from orchestrator.hosts import HostParams, HostsError, expand_hosts, place_prosumers
from orchestrator.scenario import Scenario
from orchestrator.spec.backends import backend_entry

# Start order (tiers start one after the other, each waits for readiness);
# teardown runs it backwards. The recorder comes first so it sees every event.
START_TIERS: tuple[Role, ...] = ("recorder", "dso", "clock", "solver", "prosumer")


# anvil's dev accounts (mnemonic "test test ... junk"): which index signs for whom.
DSO_ACCOUNT = 0
CLOCK_ACCOUNT = 1
FIRST_SOLVER_ACCOUNT = 2


def new_key_secret() -> bytes:
    """A run's own random secret behind its anonymous keys."""
    return secrets.token_bytes(32)


class PlanError(TestbedError):
    """The spec cannot be planned (e.g. no prosumers in the selected intervals)."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class AgentPlan:
    """One agent process. `settings` are its role's part of the config file (the
    agents' classes); addresses, keys and paths are added by `render`."""

    name: str
    role: Role
    host: str
    tier: int
    settings: RoleSettings
    account: int | None = None  # anvil dev account index, for agents that sign
    prosumer_count: int = 0

    @property
    def prosumers(self) -> tuple[ProsumerSpec, ...]:
        """The prosumers this agent knows (the DSO: all; a prosumer host: its own)."""
        s = self.settings
        return s.prosumers if isinstance(s, DsoSettings | ProsumerHostSettings) else ()


@dataclass(frozen=True, slots=True)
class Plan:
    run_id: str
    spec_name: str
    seed: int
    backend: str
    market: MarketParams  # epoch 0: fixed when the contract is deployed
    feeders: tuple[Feeder, ...]
    agents: tuple[AgentPlan, ...]
    block_time: float | None = None
    log_level: str = "INFO"
    hosts: Mapping[str, HostParams] = field(default_factory=dict)  # prosumer hosts by name
    # the run's secret behind the prosumers' anonymous keys: rendered into the prosumer
    # hosts' config files only (never the spec, manifest, summary or logs)
    key_secret: bytes = field(default_factory=lambda: new_key_secret(), repr=False, compare=False)

    def agent(self, name: str) -> AgentPlan:
        for a in self.agents:
            if a.name == name:
                return a
        raise KeyError(name)

    def by_role(self, role: Role) -> list[AgentPlan]:
        return [a for a in self.agents if a.role == role]

    def tiers(self) -> list[list[AgentPlan]]:
        """Agents grouped by start tier, in start order."""
        return [
            [a for a in self.agents if a.tier == i]
            for i in range(len(START_TIERS))
            if any(a.tier == i for a in self.agents)
        ]

    @property
    def prosumer_count(self) -> int:
        return sum(a.prosumer_count for a in self.agents)


def prosumers_per_host(requested: int | None, prosumers: int, backend: str) -> int:
    """The spec's value, or the backend's default when the spec leaves it open."""
    if requested is not None:
        if requested < 1:
            raise PlanError("deployment.prosumers_per_host: must be >= 1")
        return requested
    return backend_entry(backend).default_prosumers_per_host(max(1, prosumers))


def prosumer_traces(scenario: Scenario) -> tuple[ProsumerSpec, ...]:
    """Every prosumer with exactly the offers `testbed replay` trades (same window),
    in feeder order (neighbours share a host)."""
    traces = (
        ProsumerSpec(
            id=p.id,
            feeder=p.feeder,
            offers=tuple(
                TraceOffer(o.start, o.end, o.energy if o.kind is Kind.SELL else -o.energy)
                for o in scenario.offers_of(p.id)
            ),
        )
        for p in scenario.dataset.prosumers
    )
    return tuple(sorted(traces, key=lambda p: (p.feeder, p.id)))


def initial_balances(prosumers: Sequence[ProsumerSpec], prices: Prices) -> dict[int, int]:
    """{prosumer id: money}: what all of its buying offers cost at the buy price (so no
    withdrawal fails for money)."""
    return {
        p.id: sum(o.energy for o in p.offers if o.kind is Kind.BUY) * prices.buy for p in prosumers
    }


def chunk(items: Sequence[ProsumerSpec], size: int) -> list[tuple[ProsumerSpec, ...]]:
    """Consecutive groups of `size` (feeder order kept: neighbours share a host)."""
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]


def place_on_hosts(
    scenario: Scenario, backend: str, prosumers: Sequence[ProsumerSpec]
) -> list[tuple[HostParams, tuple[ProsumerSpec, ...]]]:
    """(host, its prosumers): the spec's hosts, or default hosts of
    prosumers_per_host each."""
    deployment = scenario.spec.deployment
    hosts = expand_hosts(deployment.hosts)
    if hosts:
        try:
            return place_prosumers(prosumers, hosts, deployment.prosumers_per_host)
        except HostsError as exc:
            raise PlanError(str(exc)) from exc
    per_host = prosumers_per_host(deployment.prosumers_per_host, len(prosumers), backend)
    groups = chunk(prosumers, per_host)
    width = max(2, len(str(len(groups))))
    return [(HostParams(f"prosumers-{i + 1:0{width}d}"), g) for i, g in enumerate(groups)]


def build_plan(
    scenario: Scenario, backend: str, run_id: str, key_secret: bytes | None = None
) -> Plan:
    """Turn a validated spec's scenario into agents and hosts. `key_secret`: the
    secret behind the anonymous keys (None: a fresh random one, as for every run
    that does not repeat another exactly)."""
    spec = scenario.spec
    if spec.market.last_interval < spec.market.first_interval:
        raise PlanError("market.last_interval: must be >= market.first_interval")
    market = MarketParams.of(spec.market)
    prosumers = prosumer_traces(scenario)
    if not prosumers:
        raise PlanError("microgrid: the dataset has no prosumers")
    names = [s.name for s in spec.solvers]
    if not names:
        raise PlanError("solvers: at least one solver is needed")
    if len(set(names)) != len(names):
        raise PlanError(f"solvers: duplicate names {sorted(names)}")
    placed = place_on_hosts(scenario, backend, prosumers)
    host_names = [host.name for host, _ in placed]
    clash = sorted({"recorder", "dso", "clock", "chain", "prometheus", *names} & set(host_names))
    if clash:
        raise PlanError(f"deployment.hosts: {', '.join(clash)}: name taken by a service")
    prices = Prices(sell=spec.microgrid.prices.sell, buy=spec.microgrid.prices.buy)
    tier = {role: i for i, role in enumerate(START_TIERS)}
    dso = DsoSettings(
        feeders=tuple(scenario.feeders),
        prosumers=prosumers,
        initial_balance=initial_balances(prosumers, prices),
    )
    agents = [
        AgentPlan("recorder", "recorder", "recorder", tier["recorder"], RecorderSettings()),
        AgentPlan("dso", "dso", "dso", tier["dso"], dso, account=DSO_ACCOUNT),
        AgentPlan(
            "clock",
            "clock",
            "clock",
            tier["clock"],
            ClockSettings(prosumer_hosts=tuple(host_names), solvers=tuple(names)),
            account=CLOCK_ACCOUNT,
        ),
    ]
    for i, s in enumerate(spec.solvers):
        settings = SolverSettings(engine=s.engine, behaviour=s.behaviour)
        agents.append(
            AgentPlan(s.name, "solver", s.name, tier["solver"], settings, FIRST_SOLVER_ACCOUNT + i)
        )
    for i, (host, group) in enumerate(placed):
        host_settings = ProsumerHostSettings(
            prosumers=group, prices=prices, seed=spec.seed * 1000 + i
        )
        agents.append(
            AgentPlan(
                host.name,
                "prosumer",
                host.name,
                tier["prosumer"],
                host_settings,
                prosumer_count=len(group),
            )
        )
    return Plan(
        run_id=run_id,
        spec_name=spec.name,
        seed=spec.seed,
        backend=backend,
        market=market,
        feeders=tuple(scenario.feeders),
        agents=tuple(agents),
        block_time=spec.chain.block_time_seconds or None,
        hosts={host.name: host for host, _ in placed},
        key_secret=new_key_secret() if key_secret is None else key_secret,
    )
