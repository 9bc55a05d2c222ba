"""Plan a run: which agent processes exist, on which testbed host, with which
role-specific settings, and in which order they start.

Pure data in, pure data out (no I/O, no ports, no keys): a backend later
decides where each agent listens (`backends.base.Placement`) and `render`
turns plan + placement into one JSON config per agent process
(notes: run-interfaces.md, "Config file").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from market.types import Feeder
from orchestrator.errors import TestbedError
from orchestrator.hosts import HostParams, HostsError, place_prosumers

Role = Literal["dso", "prosumer", "solver", "clock", "recorder"]
ClockMode = Literal["lockstep", "wallclock"]

# Start order (tiers start one after the other, each waits for readiness);
# teardown runs it backwards. The recorder comes first so it sees every event.
START_TIERS: tuple[Role, ...] = ("recorder", "dso", "clock", "solver", "prosumer")

# Local backend: with no explicit prosumers_per_host, spread the prosumers over
# at most this many host processes (each one a Python interpreter with web3:
# ~1 s of CPU to start and tens of MB of memory; this machine has 2 cores).
LOCAL_MAX_PROSUMER_HOSTS = 4
# Lockstep chain time: one interval per virtual hour of chain time is plenty;
# only the ordering of timestamps matters (run-interfaces.md "Time").
LOCKSTEP_INTERVAL_SECONDS = 3600

# anvil's dev accounts (mnemonic "test test ... junk"): which index signs for whom.
DSO_ACCOUNT = 0
CLOCK_ACCOUNT = 1
FIRST_SOLVER_ACCOUNT = 2


class PlanError(TestbedError):
    """The spec cannot be planned (e.g. no prosumers in the selected intervals)."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class TraceOffer:
    """One offer of a prosumer's trace: energy in Wh, > 0 selling, < 0 buying."""

    start: int
    end: int
    energy_wh: int


@dataclass(frozen=True, slots=True)
class ProsumerTrace:
    id: int
    feeder: int
    offers: tuple[TraceOffer, ...]

    def as_config(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "feeder": self.feeder,
            "offers": [
                {"start": o.start, "end": o.end, "energy_wh": o.energy_wh} for o in self.offers
            ],
        }


@dataclass(frozen=True, slots=True)
class MarketParams:
    first_interval: int
    last_interval: int
    prediction_window: int
    t_clear: int
    interval_minutes: int
    clock: ClockMode
    simulated_interval_seconds: float
    solver_period_seconds: float
    min_offer_energy_wh: int = 1  # contract parameters (issue 14)
    max_open_offers: int = 256
    settle_chunk: int = 400

    @property
    def chain_interval_seconds(self) -> int:
        """Chain seconds per interval: virtual hours in lockstep, Δ̂ in wallclock."""
        if self.clock == "lockstep":
            return LOCKSTEP_INTERVAL_SECONDS
        return max(1, round(self.simulated_interval_seconds))

    @property
    def clock_intervals(self) -> range:
        """Clock intervals t; at the end of t, delivery interval t + t_clear is fixed."""
        return range(self.first_interval - self.t_clear, self.last_interval - self.t_clear + 1)


@dataclass(frozen=True, slots=True)
class SolverParams:
    name: str
    engine: str = "glpk"
    behaviour: str = "honest"


@dataclass(frozen=True, slots=True)
class PlanInput:
    """Everything the planner needs, already extracted from a validated spec
    and its resolved dataset (see `run.plan_input`)."""

    spec_name: str
    seed: int
    market: MarketParams
    feeders: tuple[Feeder, ...]
    prosumers: tuple[ProsumerTrace, ...]
    solvers: tuple[SolverParams, ...]
    backend: str = "local"
    prosumers_per_host: int | None = None
    prices: Mapping[str, int] = field(default_factory=lambda: {"sell": 0, "buy": 0})
    address_rotation: str = "per_offer"
    # Money each prosumer's DSO account starts with; None = exactly what all of
    # its buying offers cost at the buy price (so no withdrawal fails for money).
    initial_balance: int | None = None
    log_level: str = "INFO"
    block_time: float | None = None
    # Testbed hosts from deployment.hosts (hosts.expand_hosts); empty: the
    # backend's default hosts ("prosumers-NN", prosumers_per_host each).
    hosts: tuple[HostParams, ...] = ()


@dataclass(frozen=True, slots=True)
class AgentPlan:
    """One agent process. `settings` are its role-specific config keys
    (JSON-ready); addresses, keys and paths are added by `render`."""

    name: str
    role: Role
    host: str
    tier: int
    settings: Mapping[str, Any]
    account: int | None = None  # anvil dev account index, for agents that sign
    prosumer_count: int = 0


@dataclass(frozen=True, slots=True)
class Plan:
    run_id: str
    spec_name: str
    seed: int
    backend: str
    market: MarketParams
    feeders: tuple[Feeder, ...]
    agents: tuple[AgentPlan, ...]
    block_time: float | None = None
    log_level: str = "INFO"
    hosts: Mapping[str, HostParams] = field(default_factory=dict)  # prosumer hosts by name

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


def prosumers_per_host(inp: PlanInput) -> int:
    """The spec's value, or the backend's default when the spec leaves it open."""
    if inp.prosumers_per_host is not None:
        if inp.prosumers_per_host < 1:
            raise PlanError("deployment.prosumers_per_host: must be >= 1")
        return inp.prosumers_per_host
    n = max(1, len(inp.prosumers))
    if inp.backend == "local":
        return math.ceil(n / LOCAL_MAX_PROSUMER_HOSTS)
    return 4  # docker/ssh: about the paper's 102 prosumers on 31 boards


def initial_balances(inp: PlanInput) -> dict[str, int]:
    """{prosumer id: money}: the spec's amount, or the cost of all its buying offers."""
    buy = int(inp.prices.get("buy", 0))
    return {
        str(p.id): (
            inp.initial_balance
            if inp.initial_balance is not None
            else sum(-o.energy_wh for o in p.offers if o.energy_wh < 0) * buy
        )
        for p in inp.prosumers
    }


def chunk(items: Sequence[ProsumerTrace], size: int) -> list[tuple[ProsumerTrace, ...]]:
    """Consecutive groups of `size` (feeder order kept: neighbours share a host)."""
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]


def place_on_hosts(
    inp: PlanInput, prosumers: Sequence[ProsumerTrace]
) -> list[tuple[HostParams, tuple[ProsumerTrace, ...]]]:
    """(host, its prosumers): the spec's hosts, or default hosts of
    prosumers_per_host each."""
    if inp.hosts:
        try:
            return place_prosumers(prosumers, inp.hosts, inp.prosumers_per_host)
        except HostsError as exc:
            raise PlanError(str(exc)) from exc
    groups = chunk(prosumers, prosumers_per_host(inp))
    width = max(2, len(str(len(groups))))
    return [(HostParams(f"prosumers-{i + 1:0{width}d}"), g) for i, g in enumerate(groups)]


def build_plan(inp: PlanInput, run_id: str) -> Plan:
    """Turn a validated spec's contents into agents and hosts."""
    m = inp.market
    if m.last_interval < m.first_interval:
        raise PlanError("market.last_interval: must be >= market.first_interval")
    if not inp.prosumers:
        raise PlanError("microgrid: the dataset has no prosumers")
    if not inp.solvers:
        raise PlanError("solvers: at least one solver is needed")
    names = [s.name for s in inp.solvers]
    if len(set(names)) != len(names):
        raise PlanError(f"solvers: duplicate names {sorted(names)}")

    prosumers = sorted(inp.prosumers, key=lambda p: (p.feeder, p.id))
    placed = place_on_hosts(inp, prosumers)
    host_names = [host.name for host, _ in placed]
    groups = [group for _, group in placed]
    clash = sorted({"recorder", "dso", "clock", "chain", "prometheus", *names} & set(host_names))
    if clash:
        raise PlanError(f"deployment.hosts: {', '.join(clash)}: name taken by a service")
    tier = {role: i for i, role in enumerate(START_TIERS)}

    agents: list[AgentPlan] = [
        AgentPlan("recorder", "recorder", "recorder", tier["recorder"], {}),
        AgentPlan(
            "dso",
            "dso",
            "dso",
            tier["dso"],
            {
                "feeders": [{"id": f.id, "c_ext": f.c_ext, "c_int": f.c_int} for f in inp.feeders],
                "prosumers": [p.as_config() for p in prosumers],
                "initial_balance": initial_balances(inp),
            },
            account=DSO_ACCOUNT,
        ),
        AgentPlan(
            "clock",
            "clock",
            "clock",
            tier["clock"],
            {"mode": m.clock, "prosumer_hosts": host_names, "solvers": names},
            account=CLOCK_ACCOUNT,
        ),
    ]
    for i, s in enumerate(inp.solvers):
        agents.append(
            AgentPlan(
                s.name,
                "solver",
                s.name,
                tier["solver"],
                {
                    "engine": s.engine,
                    "behaviour": s.behaviour,
                    "period_seconds": m.solver_period_seconds,
                },
                account=FIRST_SOLVER_ACCOUNT + i,
            )
        )
    for i, (name, group) in enumerate(zip(host_names, groups, strict=True)):
        agents.append(
            AgentPlan(
                name,
                "prosumer",
                name,
                tier["prosumer"],
                {
                    "prosumers": [p.as_config() for p in group],
                    "prices": dict(inp.prices),
                    "address_rotation": inp.address_rotation,
                    "seed": inp.seed * 1000 + i,
                },
                prosumer_count=len(group),
            )
        )
    return Plan(
        run_id=run_id,
        spec_name=inp.spec_name,
        seed=inp.seed,
        backend=inp.backend,
        market=m,
        feeders=tuple(inp.feeders),
        agents=tuple(agents),
        block_time=inp.block_time,
        log_level=inp.log_level,
        hosts={host.name: host for host, _ in placed},
    )
