"""The run's overlay networks, each with a subnet of its own (the engine's
default overlay pool hands out /24s: too small for 10x the paper's hosts).

- the run's network (`testbed-<run id>`, labelled with the run id: agents reach
  each other on it by unit name, Prometheus scrapes them there) is **internal**:
  a task on it alone gets no endpoint on its node's docker_gwbridge, so no veth,
  no NAT and no iptables rules per container on the node (bench/swarmcost.py).
  The prosumer hosts are on it alone: they talk to the run's units only;
- the **edge** network (`testbed-<run id>-edge`, not internal) is joined by the
  services that publish a port (a host-mode port is mapped on the gateway
  bridge), all of them manager-side units: the chain, Prometheus (it also
  scrapes the orchestrator on its machine), the gateways, DSO, clock, solvers,
  recorder. It carries the run's labels but the run id under LABEL_EDGE, not
  LABEL_RUN: Prometheus keeps a task's address on the network labelled with
  the run id only (observability/swarmsd.py), so it scrapes each task once, on
  the run's network.

On a task with both, the run's network need not be eth0 nor the address the
container's hostname resolves to: agents that serve bind every address
(agents/common/transport.py), netem finds the run's interface by its subnet
(services.py, images/common/entrypoint.sh).
"""

from __future__ import annotations

import ipaddress
import os
import zlib
from dataclasses import dataclass
from typing import Any

from orchestrator.backends.base import BackendError
from orchestrator.backends.docker.engine import LABEL_RUN
from orchestrator.backends.docker.network import _engine_subnets, _taken

DEFAULT_POOL = "10.214.0.0/16"
PREFIX = 22  # 1,022 addresses: 10x the paper's 310 hosts with room for tasks' restarts
EDGE_PREFIX = 24  # the services with ports: chain, Prometheus, gateways, DSO, clock, solvers...
LABEL_EDGE = "testbed.edge_of"  # the edge network's run (not LABEL_RUN: see above)


@dataclass(frozen=True, slots=True)
class RunNetworks:
    id: str  # the run's (internal) network
    subnet: str
    edge_id: str  # for the services that publish a port
    edge_subnet: str


def edge_name(run_id: str) -> str:
    return f"testbed-{run_id}-edge"


def create_run_networks(client: Any, run_id: str, labels: dict[str, str]) -> RunNetworks:
    """The run's internal network and its edge network (see above)."""
    network_id, subnet = create_overlay(client, f"testbed-{run_id}", run_id, labels, internal=True)
    edge_labels = {k: v for k, v in labels.items() if k != LABEL_RUN}
    edge_labels[LABEL_EDGE] = run_id
    edge_id, edge_subnet = create_overlay(
        client, edge_name(run_id), f"{run_id}-edge", edge_labels, prefix=EDGE_PREFIX
    )
    return RunNetworks(network_id, subnet, edge_id, edge_subnet)


def create_overlay(
    client: Any,
    name: str,
    run_id: str,
    labels: dict[str, str],
    *,
    internal: bool = False,
    prefix: int = PREFIX,
) -> tuple[str, str]:
    """(id, subnet) of a new attachable overlay network; tries subnets from
    $TESTBED_SWARM_SUBNETS (default 10.214.0.0/16) that nothing here uses.
    `internal`: its tasks get no way out (no docker_gwbridge endpoint)."""
    import docker.errors
    import docker.types

    pool = ipaddress.IPv4Network(os.environ.get("TESTBED_SWARM_SUBNETS", DEFAULT_POOL))
    subnets = list(pool.subnets(new_prefix=max(prefix, pool.prefixlen)))
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
