"""Prometheus scrape targets and prometheus.yml, rendered from a run's plan.

Pure: the caller says how Prometheus reaches each agent (`address_of`), so
the local backend (127.0.0.1:port), a docker backend (container DNS names)
and an ssh backend (board addresses) render their configs the same way.

Every series carries the target labels `run_id`, `spec`, `agent` and `role`
(bounded: one value per agent process), so dashboards filter and group by
them without the agents knowing anything about Prometheus.

It sits beside plan.py, below both the backends (docker's compose export renders
a prometheus.yml) and orchestrator.observability (the run's Prometheus), so
either may import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import yaml

from agents.common.market import MarketConfig
from orchestrator.plan import Plan

JOB = "testbed"
ORCHESTRATOR_TARGET = "orchestrator"  # the orchestrator's own exporter (exporter.py)

# Scrape interval bounds: at least this many scrapes per simulated interval Δ̂
# in wallclock runs (a dashboard then resolves every interval), never faster
# than MIN_SCRAPE_SECONDS (Prometheus and the agents' HTTP servers stay idle).
SCRAPES_PER_INTERVAL = 4
MIN_SCRAPE_SECONDS = 0.25
# ... and at least this many scrapes over the run's expected length (a rate() over a
# short run needs several samples; a 9 s run scraped every 5 s has none to speak of).
SCRAPES_PER_RUN = 20
# ... and never more than this many scrapes a second over all targets: a scrape costs
# the agent about 1 ms of CPU (bench/hoststart.py: 0.65-0.85 ms per /metrics read) and
# Prometheus its own. A one-interval run at 10x (315 targets) scraped every 0.25 s made
# about 1,260 scrapes a second: both cores of the swarm lab, and its hosts never got ready.
# At 100 a second a swarm bring-up of 93 hosts cost Prometheus 4.4 CPU-s in 66 s (0.67 ms
# a scrape; 10x: 16 CPU-s to ready), the hosts as much again, while nothing trades yet.
MAX_SCRAPES_PER_SECOND = 50
MAX_SCRAPE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class ScrapeTarget:
    address: str  # host:port, as Prometheus reaches it
    labels: Mapping[str, str] = field(default_factory=dict)


def expected_run_seconds(
    clock: str, simulated_interval_seconds: float, intervals: int, solver_period_seconds: float
) -> float:
    """How long the market part of a run takes, roughly: wallclock intervals
    last Δ̂; a lockstep interval at least one solver period."""
    per_interval = simulated_interval_seconds if clock == "wallclock" else solver_period_seconds
    return max(0, intervals) * max(0.0, per_interval)


def scrape_interval(
    configured: float,
    clock: str,
    simulated_interval_seconds: float,
    *,
    intervals: int | None = None,
    solver_period_seconds: float = 0.0,
    targets: int = 0,
) -> float:
    """The spec's scrape interval, shortened in wallclock runs to resolve
    every interval Δ̂ (SCRAPES_PER_INTERVAL scrapes per interval) and, when
    the run's `intervals` are given, to scrape SCRAPES_PER_RUN times over its
    expected length (`expected_run_seconds`); never below MIN_SCRAPE_SECONDS,
    nor so short that the `targets` are scraped more than MAX_SCRAPES_PER_SECOND
    times a second in all."""
    seconds = float(configured)
    if clock == "wallclock" and simulated_interval_seconds > 0:
        seconds = min(seconds, simulated_interval_seconds / SCRAPES_PER_INTERVAL)
    if intervals is not None:
        run = expected_run_seconds(
            clock, simulated_interval_seconds, intervals, solver_period_seconds
        )
        if run > 0:
            seconds = min(seconds, run / SCRAPES_PER_RUN)
    return max(MIN_SCRAPE_SECONDS, targets / MAX_SCRAPES_PER_SECOND, seconds)


def run_scrape_interval(configured: float, market: MarketConfig, targets: int = 0) -> float:
    """`scrape_interval` for a spec's or plan's `market` (the run's length known)
    and its number of scrape `targets`."""
    return scrape_interval(
        configured,
        market.clock,
        market.simulated_interval_seconds,
        intervals=market.last_interval - market.first_interval + 1,
        solver_period_seconds=market.solver_period_seconds,
        targets=targets,
    )


def duration(seconds: float) -> str:
    """A Prometheus duration: whole seconds as "5s", else milliseconds ("250ms")."""
    ms = max(1, round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def run_labels(plan: Plan) -> dict[str, str]:
    return {"run_id": plan.run_id, "spec": plan.spec_name}


def agent_targets(plan: Plan, address_of: Callable[[str], str]) -> list[ScrapeTarget]:
    """One target per agent process of the plan; `address_of(agent name)`
    gives the host:port Prometheus scrapes."""
    base = run_labels(plan)
    return [
        ScrapeTarget(address_of(a.name), {**base, "agent": a.name, "role": a.role})
        for a in plan.agents
    ]


def orchestrator_target(plan: Plan, address: str) -> ScrapeTarget:
    labels = {**run_labels(plan), "agent": ORCHESTRATOR_TARGET, "role": ORCHESTRATOR_TARGET}
    return ScrapeTarget(address, labels)


def render_config(targets: Iterable[ScrapeTarget], *, interval_seconds: float, run_id: str) -> str:
    """prometheus.yml scraping `targets` every `interval_seconds`."""
    interval = duration(interval_seconds)
    timeout = duration(min(interval_seconds, MAX_SCRAPE_TIMEOUT_SECONDS))
    config = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": timeout,
            "evaluation_interval": interval,
            "external_labels": {"testbed_run": run_id},
        },
        "scrape_configs": [
            {
                "job_name": JOB,
                "honor_labels": False,
                "static_configs": [
                    {"targets": [t.address], "labels": dict(t.labels)} for t in targets
                ],
            }
        ],
    }
    header = f"# Rendered by the testbed for run {run_id}; scrapes every agent of the plan.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def empty_config() -> str:
    """A config with nothing to scrape (a Prometheus that only serves stored data)."""
    return yaml.safe_dump({"global": {"scrape_interval": "1m"}, "scrape_configs": []})
