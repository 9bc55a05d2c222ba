"""What swarm service runs a unit (pure: no engine calls).

A `ServiceSpec` is the docker backend's `ContainerSpec` (image kind, command,
mounts, profile limits, netem, labels: containers.py builds it) plus what a
swarm adds: the node it is pinned to and the user's constraints, host-mode
published ports, and the run's overlay network with the unit's name as alias.
The run's network is internal (network.py): a task there gets no endpoint on
its node's docker_gwbridge (no veth, no NAT rules per container: all the
prosumer hosts need); a service that publishes a port also joins the run's
edge network, whose gateway bridge carries the port.
`task_template`/`endpoint` turn it into Engine API objects for the backend;
stack.py writes the same specs as a stack file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.backends.docker.containers import ContainerSpec
from orchestrator.backends.swarm.files import InputFile

NANOSECONDS = 1_000_000_000


def service_name(run_id: str, unit: str) -> str:
    """Swarm service names are global to the swarm: the run id keeps runs apart
    (agents use the unit name, the service's alias on the run's network)."""
    return f"testbed-{run_id}-{unit}"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    container: ContainerSpec
    image: str  # the reference every node can pull (or has)
    labels: Mapping[str, str]
    constraints: tuple[str, ...] = ()  # the user's, plus node.id== of the chosen node
    ports: Mapping[int, int] = field(default_factory=dict)  # target -> published (host mode)
    stop_grace_seconds: float = 10.0
    files: tuple[InputFile, ...] = ()  # inputs as swarm configs (files.py)

    @property
    def unit(self) -> str:
        return self.container.unit

    def mounts(self) -> list[dict[str, Any]]:
        return [
            {"Type": "bind", "Source": m.source, "Target": m.target, "ReadOnly": m.read_only}
            for m in self.container.mounts
        ]

    def resources(self) -> dict[str, Any]:
        profile = self.container.profile
        limits: dict[str, int] = {}
        if profile.memory_bytes:
            limits["MemoryBytes"] = profile.memory_bytes
        if profile.nano_cpus:
            limits["NanoCPUs"] = profile.nano_cpus
        return {"Limits": limits} if limits else {}

    def task_template(
        self,
        run_id: str,
        network_id: str,
        files: Mapping[str, Any] | None = None,
        *,
        edge_id: str | None = None,
        subnet: str | None = None,
    ) -> dict[str, Any]:
        """The service's TaskTemplate (Engine API 1.41: CapabilityAdd for netem);
        `files`: the `Configs` entries of its input files; `edge_id`: the network
        a service that publishes a port joins too; `subnet`: the run network's,
        where netem finds its interface on a task with both."""
        c = self.container
        env = c.env(run_id)
        networks = self.networks(network_id, edge_id)
        if len(networks) > 1 and subnet and c.netem.active:  # eth0 need not be the run's
            env["TESTBED_NETEM_SUBNET"] = subnet  # images/common/entrypoint.sh
        container: dict[str, Any] = {
            "Image": self.image,
            "Args": list(c.command),  # the image's entrypoint stays (it applies netem)
            "Hostname": c.unit,
            "Env": [f"{k}={v}" for k, v in env.items()],
            "Labels": dict(self.labels),
            "Mounts": self.mounts(),
            "Init": True,  # forwards SIGTERM to the agent, reaps its children
            "StopGracePeriod": int(self.stop_grace_seconds * NANOSECONDS),
        }
        if c.cap_add:
            container["CapabilityAdd"] = list(c.cap_add)
        container.update({k: list(v) for k, v in (files or {}).items() if v})
        return {
            "ContainerSpec": container,
            "Resources": self.resources(),
            "RestartPolicy": {"Condition": "none"},  # a crash ends the run, as elsewhere
            "Placement": {"Constraints": list(self.constraints)},
            "Networks": networks,
        }

    def networks(self, network_id: str, edge_id: str | None) -> list[dict[str, Any]]:
        """The run's network (the unit's name is its alias there: agents reach
        it and Prometheus scrapes it on it), then the edge network if the
        service publishes a port (the order does not make it eth0)."""
        networks: list[dict[str, Any]] = [{"Target": network_id, "Aliases": [self.unit]}]
        if self.ports and edge_id:
            networks.append({"Target": edge_id})
        return networks

    def endpoint(self) -> dict[str, Any]:
        """dnsrr (the kernels of small boards often lack IPVS, which VIPs need);
        ports published on the task's node only (no routing mesh)."""
        return {
            "Mode": "dnsrr",
            "Ports": [
                {"Protocol": "tcp", "TargetPort": t, "PublishedPort": p, "PublishMode": "host"}
                for t, p in self.ports.items()
            ],
        }
