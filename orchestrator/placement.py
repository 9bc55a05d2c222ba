"""Where a run's units listen and where their files go.

A backend decides addresses (`Addresses`: hosts and ports, in the agents' view
and in the orchestrator's); `placement` is the one function that turns them
into endpoints and URLs and adds the bundle's files (results/bundle.py owns
that layout). Everything downstream (render, lifecycle, faults,
observability) reads the resulting `Placement`. Pure data, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator.plan import Plan
from orchestrator.results.bundle import Bundle


@dataclass(frozen=True, slots=True)
class AgentPlacement:
    """Where one agent runs, in the agent's view and in the orchestrator's."""

    name: str
    metrics_host: str  # the agent binds its Prometheus endpoint here
    metrics_port: int
    metrics_url: str  # the orchestrator scrapes (and probes readiness) here
    config_path: str  # the path the agent is given (--config)
    config_file: Path  # where the orchestrator writes that file
    out_dir: str  # the agent's output folder, in its own view
    log_file: Path  # where its stdout/stderr end up, on the orchestrator's side


@dataclass(frozen=True, slots=True)
class Placement:
    """Addresses of the run's shared services and of every agent."""

    rpc_url: str  # the chain as agents reach it
    rpc_url_local: str  # the chain as the orchestrator reaches it
    chain_port: int
    dso_endpoint: str
    clock_pub_endpoint: str
    clock_pull_endpoint: str
    chain_log: Path
    agents: Mapping[str, AgentPlacement]


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class AgentAddress:
    """Where a backend puts one agent."""

    bind: Address  # the agent serves its metrics here (its own view)
    scrape_host: str  # the orchestrator reaches that port at this host
    config_path: str  # its config file, in its own view
    out_dir: str  # its output folder, in its own view
    scrape_url: str | None = None  # where its /metrics is read, if not scrape_host:port


@dataclass(frozen=True, slots=True)
class Addresses:
    """What a backend decides in `prepare`: the services' addresses as the
    agents reach them, the chain's as the orchestrator does, every agent's."""

    chain: Address
    chain_local: Address
    dso: Address
    clock_pub: Address
    clock_pull: Address
    agents: Mapping[str, AgentAddress]


def tcp(address: Address) -> str:
    return f"tcp://{address.host}:{address.port}"


def http(address: Address) -> str:
    return f"http://{address.host}:{address.port}"


def placement(addresses: Addresses, bundle: Path) -> Placement:
    """Endpoints and URLs from `addresses`; config and log files in `bundle`."""
    layout = Bundle(bundle)
    agents = {
        name: AgentPlacement(
            name=name,
            metrics_host=a.bind.host,
            metrics_port=a.bind.port,
            metrics_url=a.scrape_url or http(Address(a.scrape_host, a.bind.port)) + "/metrics",
            config_path=a.config_path,
            config_file=layout.config_file(name),
            out_dir=a.out_dir,
            log_file=layout.log_file(name),
        )
        for name, a in addresses.agents.items()
    }
    return Placement(
        rpc_url=http(addresses.chain),
        rpc_url_local=http(addresses.chain_local),
        chain_port=addresses.chain.port,
        dso_endpoint=tcp(addresses.dso),
        clock_pub_endpoint=tcp(addresses.clock_pub),
        clock_pull_endpoint=tcp(addresses.clock_pull),
        chain_log=layout.log_file("chain"),
        agents=agents,
    )


def local_out_dirs(plan: Plan, bundle: Path) -> dict[str, Path]:
    """Every agent's output folder in the bundle, created."""
    layout = Bundle(bundle).make_dirs()
    outs = {a.name: layout.out_dir(a.name, a.role) for a in plan.agents}
    for out in outs.values():
        out.mkdir(parents=True, exist_ok=True)
    return outs
