"""The swarm as the backend sees it: the manager's engine, the run's layout
(which node runs which unit, which ports it publishes there, hence where the
orchestrator reaches it), the images every node can pull, and the cleanup of
runs whose orchestrator died."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.backends.base import BackendError, Leftover
from orchestrator.backends.docker.containers import (
    CHAIN_PORT,
    CLOCK_PUB_PORT,
    CLOCK_PULL_PORT,
    CONFIG_DIR,
    DSO_PORT,
    OUT_DIR,
    ContainerSpec,
)
from orchestrator.backends.docker.engine import (
    API_TIMEOUT_SECONDS,
    MAX_POOL_SIZE,
    DockerUnavailable,
    orchestrator_alive,
)
from orchestrator.backends.swarm import metricsgw
from orchestrator.backends.swarm.nodes import Node, eligible, node_of, spread
from orchestrator.backends.swarm.resources import remove_swarm_resources, swarm_resources
from orchestrator.hosts import expand_hosts
from orchestrator.placement import Address, Addresses, AgentAddress, Placement, placement
from orchestrator.plan import Plan
from orchestrator.spec.model import DeploymentConfig
from orchestrator.spec.swarm import PROSUMER_LABEL, PROSUMER_LABEL_VALUE
from orchestrator.swarm.tls import docker_client

ANY = "0.0.0.0"
MANAGER_ROLES = ("chain", "prometheus")  # the orchestrator's side: on the manager it talks to
DEFAULT_GROUP = "prosumers"  # the planner's default hosts (prosumers-01, ...)


def manager_url(manager: str | None) -> str:
    return manager or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def tls_options(url: str) -> dict[str, Any]:
    """A tcp:// manager's TLS settings from the environment, as the docker CLI
    reads them (DOCKER_TLS_VERIFY, DOCKER_CERT_PATH): `tcp://10.0.0.1:2376`."""
    from docker.utils import kwargs_from_env

    if not url.startswith(("tcp://", "https://")):
        return {}
    tls = kwargs_from_env().get("tls")
    return {"tls": tls} if tls else {}


def address_towards(host: str) -> str:
    """This machine's address on its route to `host` (the local end of a UDP
    socket connected there: nothing is sent): where the manager's nodes reach
    the orchestrator, whether it runs on the manager or not."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))
            return str(probe.getsockname()[0])
    except OSError:  # no route (or no IPv4 address): the manager's, as before
        return host


def connect_manager(manager: str | None, timeout: float = API_TIMEOUT_SECONDS) -> Any:
    """A docker.DockerClient of a swarm manager (pinged; BackendError if this
    engine is no manager of an active swarm)."""
    import docker
    import docker.errors

    url = manager_url(manager)
    try:
        client = docker_client(url, timeout, tls_options(url).get("tls"), MAX_POOL_SIZE)
        info = client.info()
    except (docker.errors.DockerException, OSError) as exc:
        raise DockerUnavailable(f"no Docker Engine answers at {url} ({exc})") from exc
    swarm = info.get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        client.close()
        raise BackendError(
            f"the engine at {url} is not a swarm manager (docker swarm init, or `testbed lab "
            "up` for a swarm on this machine; deployment.swarm.manager names another)"
        )
    return client


@dataclass
class Layout:
    """Where a run's units go: nodes by unit, published ports by unit."""

    nodes: list[Node]
    manager: Node
    units: dict[str, Node] = field(default_factory=dict)
    user_constraints: dict[str, tuple[str, ...]] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)
    # published on the nodes, picked there before anything starts (ports.py)
    chain_port: int = 0
    prometheus_port: int = 0
    clock_ports: tuple[int, int] = (CLOCK_PUB_PORT, CLOCK_PULL_PORT)  # pub, pull
    gateway_port: int = 0  # the metrics gateway's, on the manager (metricsgw.py)
    behind_gateway: frozenset[str] = frozenset()  # units that publish no port (the hosts)

    def node_of(self, unit: str) -> Node:
        return self.units.get(unit, self.manager)

    def constraints(self, unit: str) -> tuple[str, ...]:
        return (*self.user_constraints.get(unit, ()), f"node.id=={self.node_of(unit).id}")

    def ports(self, unit: str, container: ContainerSpec) -> dict[int, int]:
        """{container port: published port} on the unit's node (host mode)."""
        if container.role == "chain":
            return {CHAIN_PORT: self.chain_port}
        if unit in self.behind_gateway:
            return {}
        if unit in self.metrics_ports:
            port = self.metrics_ports[unit]
            return {port: port}
        return dict(container.published)

    def placement(self, plan: Plan, bundle: Path) -> Placement:
        """Agents bind their metrics on every interface of their container (the
        node's published port arrives on the container's gateway bridge, not on
        the overlay); the orchestrator reaches them at their node's address, the
        prosumer hosts through the metrics gateway on the manager."""
        agents = {
            a.name: AgentAddress(
                Address(ANY, self.metrics_ports[a.name]),
                self.node_of(a.name).address,
                f"{CONFIG_DIR}/{a.name}.json",
                OUT_DIR,
                self._gateway_url(a.name),
            )
            for a in plan.agents
        }
        addresses = Addresses(
            chain=Address("chain", CHAIN_PORT),
            chain_local=Address(self.manager.address, self.chain_port),
            dso=Address("dso", DSO_PORT),
            clock_pub=Address("clock", self.clock_ports[0]),
            clock_pull=Address("clock", self.clock_ports[1]),
            agents=agents,
        )
        return placement(addresses, bundle)

    def gateway_units(self) -> dict[str, int]:
        """{unit: its metrics port} of the units the metrics gateway serves."""
        return {u: p for u, p in self.metrics_ports.items() if u in self.behind_gateway}

    def _gateway_url(self, unit: str) -> str | None:
        if unit not in self.behind_gateway:
            return None
        return metricsgw.metrics_url(self.manager.address, self.gateway_port, unit)


def host_groups(plan: Plan, deployment: DeploymentConfig) -> dict[str, list[str]]:
    """{group: its prosumer host units} (a spec entry with count N is one group)."""
    hosts = [a.name for a in plan.by_role("prosumer")]
    groups: dict[str, list[str]] = {}
    placed: set[str] = set()
    for entry in deployment.hosts:
        names = [h.name for h in expand_hosts([entry]) if h.name in hosts]
        groups[entry.name] = names
        placed.update(names)
    rest = [h for h in hosts if h not in placed]
    if rest:
        groups.setdefault(DEFAULT_GROUP, []).extend(rest)
    return groups


def plan_layout(client: Any, plan: Plan, deployment: DeploymentConfig) -> Layout:
    """Pin every unit to a node: chain and Prometheus on the manager, the other
    services on nodes matching deployment.swarm.services, each prosumer host
    group spread over the nodes matching deployment.swarm.prosumers (default:
    nodes labelled testbed.role=prosumers, else all) and its own placement."""
    settings = deployment.swarm
    nodes = [node_of(n) for n in client.api.nodes()]
    me = (client.info().get("Swarm") or {}).get("NodeID")
    manager = next((n for n in nodes if n.id == me), None)
    if manager is None:
        raise BackendError("swarm: the manager is not among the swarm's nodes")
    layout = Layout(nodes, manager)
    prosumer_rule = list(settings.prosumers)
    if not prosumer_rule:
        labelled = f"node.labels.{PROSUMER_LABEL}=={PROSUMER_LABEL_VALUE}"
        prosumer_rule = [labelled] if eligible(nodes, [labelled]) else []
    own = {e.name: tuple(e.placement or ()) for e in deployment.hosts}
    groups = host_groups(plan, deployment)
    candidates = {g: eligible(nodes, [*prosumer_rule, *own.get(g, ())]) for g in groups}
    load: dict[str, int] = {}
    layout.units.update(spread(groups, candidates, load))
    for group, units in groups.items():
        for unit in units:
            layout.user_constraints[unit] = (*prosumer_rule, *own.get(group, ()))
    services = [a.name for a in plan.agents if a.role != "prosumer"]
    service_nodes = eligible(nodes, list(settings.services))
    layout.units.update(spread({"services": services}, {"services": service_nodes}, load))
    for unit in services:
        layout.user_constraints[unit] = tuple(settings.services)
    layout.behind_gateway = frozenset(a.name for a in plan.by_role("prosumer"))
    return layout  # its ports are picked on the nodes: ports.pick_ports


@dataclass
class NodeImages:
    refs: dict[str, str]  # {kind: reference every node can use}
    registry: str | None = None  # the address they were pushed to
    started: Any = None  # orchestrator.swarm.registry.Registry, if this run started it


def images_for_nodes(
    client: Any, setting: str, layout: Layout, state_dir: Path, say: Callable[[str], None]
) -> NodeImages:
    """The images every node can use, and the registry this run started (if any).
    Images are built (or found) on the manager's engine; "none" uses them as they
    are (they must be on every node), otherwise they are pushed to a registry."""
    from orchestrator.backends.docker.backend import image_overrides
    from orchestrator.images import KINDS, ensure_images

    built = ensure_images(client, say=say, overrides=image_overrides())
    local = {kind: built.of(kind) for kind in KINDS}
    used = {n.id for n in layout.units.values()} | {layout.manager.id}
    if setting == "none" or (setting == "auto" and used == {layout.manager.id}):
        return NodeImages(local)
    from orchestrator.swarm.registry import Registry, docker0_address

    started = None
    if setting in ("auto", "start"):
        existing = Registry.given(f"{docker0_address(client)}:5000")
        if existing.answers():
            registry = existing  # e.g. the one `testbed lab up` started
        else:
            registry = started = Registry.start(client, state_dir / "registry", say=say)
    else:
        registry = Registry.given(setting)
    try:
        return NodeImages(registry.push_images(client, local, say), registry.address, started)
    except BaseException:
        if started is not None:
            started.stop()
        raise


def clean_dead_runs(manager: str | None, state: str) -> list[Leftover]:
    """Remove what the manager holds of this state directory's runs whose
    orchestrator is gone (nothing when no manager answers there)."""
    try:
        client = connect_manager(manager, timeout=30)
    except BackendError:
        return []
    report: list[Leftover] = []
    try:
        for found in swarm_resources(client, state=state).values():
            if not orchestrator_alive(found.orchestrator()):
                report += remove_swarm_resources(client, found)
    finally:
        client.close()
    return report


def stop_registry(run_id: str, saved: Mapping[str, Any] | None) -> list[Leftover]:
    """Stop a registry that a dead run started (its state recorded it)."""
    if not saved or not saved.get("pid"):
        return []
    from orchestrator.swarm.registry import Registry

    registry = Registry.from_dict(saved)
    registry.stop()
    return [Leftover(run_id, f"registry {registry.address}", "stopped")]
