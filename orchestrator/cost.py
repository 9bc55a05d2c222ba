"""What a run will cost, estimated before anything starts: processes, memory and
wall time on this machine (and on each board, for ssh), and the refusal of a run
whose memory this machine does not have.

Pure: `estimate` takes the run's plan (which agent processes, how many
prosumers each, how many offers) and `refusals` the memory available
(`available_memory_mb` reads MemAvailable in /proc/meminfo: what can be had
without swapping), so both are tested without running.

The figures are measured on this project's machine (2 cores, 24 GB, other jobs
running), sampling the peak RSS of every process of `testbed run` every 0.2 s:
  smoke.yaml                      6 prosumers,  55 offers,    255 transactions
  paper-c, lockstep, 44..47     102 prosumers, 408 offers,   2,026 transactions, one host
  paper-c x10, lockstep, 44..46 1,020 prosumers, 3,060 offers, 15,158 transactions, one host
  paper-c x10, lockstep, 44..51 1,020 prosumers, 8,250 offers, 40,744 transactions, 4 hosts
  paper-c x10, lockstep, 1..96  1,020 prosumers, 96,303 offers, 97,971 transactions, 8 hosts
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import SpecError

if TYPE_CHECKING:  # the plan is built from a spec: orchestrator.spec imports it lazily
    from orchestrator.plan import AgentPlan, Plan
    from orchestrator.scenario import Scenario
    from orchestrator.spec.model import Spec

# -- memory (MB of resident memory) -------------------------------------------
AGENT_MB = 50.0
"""One agent interpreter (web3, zmq, prometheus-client loaded): recorder 50.1, DSO 49.7,
clock 49.8, a prosumer host of 2 prosumers 50.1-50.6 (smoke)."""
SOLVER_MB = 84.0
"""A solver also loads HiGHS and Pyomo: 83.3 (smoke), 84.0 (408 offers), 88.8 (3,060)."""
MB_PER_OFFER = {"dso": 0.012, "prosumer": 0.006, "recorder": 0.001, "solver": 0.002}
"""Growth with the offers an agent handles: the DSO +4.9 MB for 408 offers and +32 MB
for 3,060 (its address links); a prosumer host +2.6 MB for 408, +11.2 MB for 3,060 (the
last two: 102 and 1,020 prosumers, so a prosumer itself costs ~0.01 MB, not per
interpreter; 4 hosts of 255 prosumers and 2,062 offers each: 56.2-56.8 MB); the recorder
+1.5 / +4.1 MB; the solver +0.7 / +5.5 MB."""
ORCHESTRATOR_MB = 260.0
ORCHESTRATOR_MB_PER_OFFER = 0.025
"""The `testbed` process itself (matplotlib for the report): 260.5 (smoke), 335 (3,060)."""
CHAIN_MB = 34.0
CHAIN_MB_PER_TRANSACTION = 0.022
"""anvil keeps every block, receipt and log in memory and, since the lockstep clock mines
on demand (agents/miner.py), the last 8 states (agents/chain/node.py STATES_KEPT): a
full day of ten times the paper in lockstep (bench/scale.py, intervals 1..96, 97,971
transactions in 730 blocks) had anvil at 1,505 MB after the last interval and at
2,112 MB at its peak, during the end-of-run reads (0.0216 MB a transaction). With 256
kept states and a block per transaction it was 0.047-0.062 MB a transaction and
~30 GB for that day."""
CHAIN_LAUNCHER_MB = 167.0
"""The npm package's node wrapper that starts anvil (local and ssh backends)."""
TRANSACTIONS_PER_OFFER = 1.1
"""Every offer is a postOffer; assets (batched `issue`), solutions, finalizations and
closes add little: 97,971 / 96,303 = 1.02 (10x, a day), 5,191 / 5,100 = 1.02 (10x,
40..44), 93 / 55 = 1.69 (smoke, where memory hardly matters)."""
PROMETHEUS_MB = 49.0
"""Prometheus with a run's few targets: 48.7-52.8."""
CONTAINER_MB = 6.0
"""docker: the containerd shim each container adds (5.8 MB average of 7 shims)."""

# -- wall time (seconds) -------------------------------------------------------
FIXED_SECONDS = 14.0
"""Start-up (imports, chain, contract deployment) and the end (collecting, the
report's figures): smoke takes 36 s in all, 19 s of them from start to last interval."""
START_SECONDS_PER_PROCESS = 0.5
"""An agent interpreter takes ~1 s of CPU to start, two cores start two at a time."""
LOCKSTEP_SECONDS_PER_INTERVAL = 2.0
TRANSACTIONS_PER_SECOND = 37.0
"""What a lockstep run gets through on this machine, other jobs running: a full day of
10x the paper (bench/scale.py, on-demand mining) took 2,741 s from the first to the
last finalization for 97,971 transactions (1-minute load average 17-129): (2,741 -
96 * 2) s / 97,971 = 38 transactions a second, the rest of each interval's work (solving,
finalizing, the agents' rounds) included."""


SERVICE_ROLES = frozenset({"dso", "clock", "solver"})  # ssh: on deployment.ssh.services_host


@dataclass(frozen=True)
class Cost:
    """A run's estimate. `memory_mb` is on this machine; `host_memory_mb` is the
    largest prosumer host process (a container under docker, a board under ssh),
    `host_limit_mb` the smallest memory limit a host profile gives it. ssh with
    `deployment.ssh.services_host`: `services_host_memory_mb` is all that board runs
    (DSO, clock, solvers and its own prosumer host, if any), `services_host_limit_mb`
    its profile's limit."""

    backend: str
    processes: int  # on this machine (docker: containers, plus the testbed process)
    remote_processes: int  # ssh: on the boards
    prosumer_hosts: int
    offers: int
    transactions: int
    memory_mb: float
    memory_by_part_mb: dict[str, float]
    host_memory_mb: float
    host_limit_mb: float | None
    wall_seconds: float
    services_host_memory_mb: float = 0.0
    services_host_limit_mb: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: round(v, 1) if isinstance(v, float) else v for k, v in asdict(self).items()}

    def describe(self) -> str:
        """`N processes (the largest parts), about <wall time>`."""
        parts = sorted(self.memory_by_part_mb.items(), key=lambda kv: -kv[1])
        listed = ", ".join(f"{k} {_mb(v)}" for k, v in parts)
        where = f" here and {self.remote_processes} on the hosts" if self.remote_processes else ""
        if self.services_host_memory_mb:
            where += f" (the services host {_mb(self.services_host_memory_mb)})"
        return f"{self.processes} processes{where} ({listed}), about {_duration(self.wall_seconds)}"


def run_cost(scenario: Scenario, backend: str | None = None) -> Cost:
    """The estimate of a scenario's run on `backend` (default: the spec's), from
    the plan the run would execute."""
    from orchestrator.plan import build_plan  # plan -> scenario -> spec: not at import

    spec = scenario.spec
    plan = build_plan(scenario, backend or spec.deployment.backend, "estimate")
    return estimate(spec, plan, len(scenario.offers))


def check_fits(
    scenario: Scenario, backend: str | None = None, *, force: bool = False
) -> tuple[Cost, list[str]]:
    """(the estimate, what does not fit as warnings when `force`); raises SpecError
    listing what does not fit this machine unless `force`."""
    cost = run_cost(scenario, backend)
    problems = refusals(scenario.spec, cost, available_memory_mb())
    if problems and not force:
        raise SpecError(problems)
    return cost, problems


def check_points_fit(
    points: Sequence[tuple[str, Scenario]], backend: str | None = None, *, force: bool = False
) -> tuple[Cost, list[str]]:
    """A sweep: every point estimated and checked on its own (a point may widen the
    window, scale the dataset or change the hosts). (the largest point's estimate,
    what does not fit as warnings when `force`); raises SpecError naming every point
    that does not fit, each line led by the point's label, unless `force`."""
    available = available_memory_mb()
    costs: list[Cost] = []
    problems: list[str] = []
    for label, scenario in points:
        cost = run_cost(scenario, backend)
        costs.append(cost)
        problems += [f"{label}: {p}" for p in refusals(scenario.spec, cost, available)]
    if problems and not force:
        raise SpecError(problems)
    return max(costs, key=lambda c: c.memory_mb), problems


def estimate(spec: Spec, plan: Plan, offers: int) -> Cost:
    """The cost of running `plan` (built from `spec`) with its `offers` offers."""
    transactions = math.ceil(offers * TRANSACTIONS_PER_OFFER)
    remote = _remote_roles(spec)
    prosumers = plan.prosumer_count
    parts: dict[str, float] = {}
    local = [a for a in plan.agents if a.role not in remote]
    for agent in local:
        key = "prosumer hosts" if agent.role == "prosumer" else agent.role
        parts[key] = parts.get(key, 0.0) + agent_mb(agent, offers, prosumers)
    hosts = [a for a in plan.agents if a.role == "prosumer"]
    profiles = [plan.hosts[a.name].profile for a in hosts if a.name in plan.hosts]
    limits = [p.memory_bytes / 2**20 for p in profiles if p.memory_bytes]
    parts["chain"] = CHAIN_MB + transactions * CHAIN_MB_PER_TRANSACTION
    services = 1  # the chain
    if plan.backend != "docker":
        parts["chain"] += CHAIN_LAUNCHER_MB
        services += 1
    if spec.metrics.prometheus.enabled:
        parts["prometheus"] = PROMETHEUS_MB
        services += 1
    if plan.backend == "docker":
        parts["containers"] = CONTAINER_MB * (len(local) + services)
    parts["testbed"] = ORCHESTRATOR_MB + offers * ORCHESTRATOR_MB_PER_OFFER
    market = spec.market
    intervals = market.last_interval - market.first_interval + 1
    services_mb, services_limit = _services_host(spec, plan, offers)
    return Cost(
        backend=plan.backend,
        processes=len(local) + services + 1,
        remote_processes=len(plan.agents) - len(local),
        prosumer_hosts=len(hosts),
        offers=offers,
        transactions=transactions,
        memory_mb=sum(parts.values()),
        memory_by_part_mb={k: round(v, 1) for k, v in parts.items()},
        host_memory_mb=max((agent_mb(a, offers, prosumers) for a in hosts), default=0),
        host_limit_mb=min(limits) if limits else None,
        wall_seconds=wall_seconds(
            len(plan.agents),
            intervals,
            transactions,
            market.simulated_interval_seconds if market.clock == "wallclock" else 0,
        ),
        services_host_memory_mb=services_mb,
        services_host_limit_mb=services_limit,
    )


def _services_host(spec: Spec, plan: Plan, offers: int) -> tuple[float, float | None]:
    """ssh with a services_host: (the memory of every agent on that board, its
    profile's limit); (0, None) otherwise."""
    from orchestrator.hosts import expand_hosts  # plan -> scenario -> spec: not at import

    deployment = spec.deployment
    name = deployment.ssh.services_host if deployment.backend == "ssh" else None
    if not name:
        return 0.0, None
    there = [
        a
        for a in plan.agents
        if a.role in SERVICE_ROLES or (a.role == "prosumer" and a.host == name)
    ]
    mb = sum(agent_mb(a, offers, plan.prosumer_count) for a in there)
    board = next((h for h in expand_hosts(deployment.hosts) if h.name == name), None)
    limit = board.profile.memory_bytes if board is not None else None
    return mb, limit / 2**20 if limit else None


def agent_mb(agent: AgentPlan, offers: int, all_prosumers: int) -> float:
    """One agent's memory; a prosumer host grows with its share of the offers."""
    base = SOLVER_MB if agent.role == "solver" else AGENT_MB
    if agent.role == "prosumer":
        offers = round(offers * agent.prosumer_count / max(1, all_prosumers))
    return base + offers * MB_PER_OFFER.get(agent.role, 0.0)


def wall_seconds(
    processes: int, intervals: int, transactions: int, interval_seconds: float = 0
) -> float:
    """Lockstep: as fast as the node takes the transactions. Wallclock
    (`interval_seconds` > 0): every interval lasts that long, unless the node is slower."""
    work = LOCKSTEP_SECONDS_PER_INTERVAL + transactions / intervals / TRANSACTIONS_PER_SECOND
    return (
        FIXED_SECONDS
        + processes * START_SECONDS_PER_PROCESS
        + intervals * max(work, interval_seconds)
    )


def _remote_roles(spec: Spec) -> frozenset[str]:
    """ssh: prosumer hosts run on the boards (the services too, with services_host)."""
    deployment = spec.deployment
    if deployment.backend != "ssh":
        return frozenset()
    if deployment.ssh.services_host:
        return SERVICE_ROLES | {"prosumer"}
    return frozenset({"prosumer"})


def available_memory_mb(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    """MemAvailable of this machine (None where /proc/meminfo does not say)."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def refusals(spec: Spec, cost: Cost, available_mb: float | None) -> list[str]:
    """Why the run cannot fit (empty: it fits), one line each, at the spec line
    that drives the cost (`file:line:col: dotted.path: message`)."""
    out = []
    if available_mb is not None and cost.memory_mb > available_mb:
        out.append(
            f"{spec.where(culprit(spec, cost))}: a run needs about {_mb(cost.memory_mb)} of "
            f"memory, this machine has {_mb(available_mb)} available: {cost.describe()}; "
            "--force runs it anyway"
        )
    if cost.host_limit_mb is not None and cost.host_memory_mb > cost.host_limit_mb:
        out.append(
            f"{spec.where('deployment.hosts')}: a prosumer host needs about "
            f"{_mb(cost.host_memory_mb)}, more than its profile's {_mb(cost.host_limit_mb)}; "
            "spread the prosumers over more hosts (--force runs it anyway)"
        )
    limit = cost.services_host_limit_mb
    if limit is not None and cost.services_host_memory_mb > limit:
        out.append(
            f"{spec.where('deployment.ssh.services_host')}: the services host "
            f"{spec.deployment.ssh.services_host} needs about "
            f"{_mb(cost.services_host_memory_mb)} (DSO, clock, solvers and its prosumers), "
            f"more than its profile's {_mb(limit)}; leave the services on this machine or "
            "give that host a larger profile (--force runs it anyway)"
        )
    return out


def culprit(spec: Spec, cost: Cost) -> str:
    """The spec key behind most of the memory: the number of prosumer host
    processes, or the chain's transactions (the dataset's size, the window)."""
    parts = cost.memory_by_part_mb
    hosts, chain = parts.get("prosumer hosts", 0.0), parts.get("chain", 0.0)
    deployment, dataset = spec.deployment, spec.microgrid.dataset
    if hosts >= chain and deployment.prosumers_per_host is not None:
        return "deployment.prosumers_per_host"
    if hosts >= chain and deployment.hosts:
        return "deployment.hosts"
    if dataset.kind == "synthetic" and dataset.scale > 1:
        return "microgrid.dataset.scale"
    return "market.last_interval" if chain > hosts else "microgrid.dataset"


def _mb(mb: float) -> str:
    return f"{mb / 1024:,.1f} GB" if mb >= 1024 else f"{mb:,.0f} MB"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
