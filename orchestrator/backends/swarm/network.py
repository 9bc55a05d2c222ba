"""The run's attachable overlay network, with a subnet of its own (the engine's
default overlay pool hands out /24s: too small for 10x the paper's hosts)."""

from __future__ import annotations

import ipaddress
import os
import zlib
from typing import Any

from orchestrator.backends.base import BackendError
from orchestrator.backends.docker.network import _engine_subnets, _taken

DEFAULT_POOL = "10.214.0.0/16"
PREFIX = 22  # 1,022 addresses: 10x the paper's 310 hosts with room for tasks' restarts


def create_overlay(
    client: Any, name: str, run_id: str, labels: dict[str, str], *, internal: bool = False
) -> tuple[str, str]:
    """(id, subnet) of a new attachable overlay network; tries subnets from
    $TESTBED_SWARM_SUBNETS (default 10.214.0.0/16) that nothing here uses.
    `internal`: its tasks get no way out (no docker_gwbridge endpoint)."""
    import docker.errors
    import docker.types

    pool = ipaddress.IPv4Network(os.environ.get("TESTBED_SWARM_SUBNETS", DEFAULT_POOL))
    subnets = list(pool.subnets(new_prefix=max(PREFIX, pool.prefixlen)))
    busy = _taken() + _engine_subnets(client)
    start = zlib.crc32(run_id.encode()) % len(subnets)
    last = "no free subnet"
    for i in range(len(subnets)):
        subnet = subnets[(start + i) % len(subnets)]
        if any(subnet.overlaps(other) for other in busy):
            continue
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(subnet))])
        try:
            created = client.api.create_network(
                name,
                driver="overlay",
                attachable=True,
                internal=internal,
                ipam=ipam,
                labels=labels,
                check_duplicate=True,
            )
        except docker.errors.APIError as exc:
            last = str(exc)
            if "overlap" in last.lower():
                continue
            raise BackendError(f"cannot create overlay network {name}: {exc}") from exc
        return str(created["Id"]), str(subnet)
    raise BackendError(f"cannot create overlay network {name}: {last}")
