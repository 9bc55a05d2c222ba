"""A private bridge network per run, with a subnet of its own.

The subnet is chosen by the backend (not by the engine) so that every
container gets a fixed address before it starts: the orchestrator knows where
to probe readiness and scrape metrics the moment the plan is placed. Agents
reach each other by container DNS names (network aliases = unit names).
"""

from __future__ import annotations

import ipaddress
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psutil

from orchestrator.backends.base import BackendError

# Candidate subnets: $TESTBED_DOCKER_SUBNETS (an IPv4 network), split in /PREFIX.
DEFAULT_POOL = "10.213.0.0/16"
PREFIX = 23  # 510 addresses: a run of hundreds of hosts fits
FIRST_AGENT_OFFSET = 10


@dataclass(frozen=True)
class RunNetwork:
    id: str
    name: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address

    def address(self, index: int) -> str:
        """The index-th fixed address (1 is the gateway)."""
        host = self.subnet.network_address + index
        if host >= self.subnet.broadcast_address:
            raise BackendError(f"network {self.name}: subnet {self.subnet} is full")
        return str(host)


def _taken() -> list[ipaddress.IPv4Network]:
    """Subnets of this machine's interfaces (host routes must not be shadowed)."""
    nets = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family.name == "AF_INET" and a.netmask:
                nets.append(ipaddress.IPv4Network(f"{a.address}/{a.netmask}", strict=False))
    return nets


def _engine_subnets(client: Any) -> list[ipaddress.IPv4Network]:
    nets = []
    for network in client.api.networks():
        for cfg in (network.get("IPAM") or {}).get("Config") or []:
            subnet = cfg.get("Subnet")
            if subnet and ":" not in subnet:
                nets.append(ipaddress.IPv4Network(subnet, strict=False))
    return nets


def candidates(run_id: str) -> Iterator[ipaddress.IPv4Network]:
    pool = ipaddress.IPv4Network(os.environ.get("TESTBED_DOCKER_SUBNETS", DEFAULT_POOL))
    subnets = list(pool.subnets(new_prefix=max(PREFIX, pool.prefixlen)))
    start = zlib.crc32(run_id.encode()) % len(subnets)  # concurrent runs spread out
    for i in range(len(subnets)):
        yield subnets[(start + i) % len(subnets)]


def create_network(client: Any, name: str, run_id: str, labels: dict[str, str]) -> RunNetwork:
    import docker.errors
    import docker.types

    busy = _taken() + _engine_subnets(client)
    last_error = "no free subnet"
    for subnet in candidates(run_id):
        if any(subnet.overlaps(other) for other in busy):
            continue
        gateway = subnet.network_address + 1
        ipam = docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet=str(subnet), gateway=str(gateway))]
        )
        try:
            net = client.networks.create(
                name, driver="bridge", ipam=ipam, labels=labels, check_duplicate=True
            )
        except docker.errors.APIError as exc:
            last_error = str(exc)
            if "overlap" in last_error.lower():
                continue  # another run took it meanwhile
            raise BackendError(f"cannot create network {name}: {exc}") from exc
        return RunNetwork(net.id, name, subnet, gateway)
    raise BackendError(f"cannot create network {name}: {last_error}")
