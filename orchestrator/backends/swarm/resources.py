"""A swarm run's resources on the manager, found by label (engine.py's labels):
services, the overlay networks (the run's and its edge network: network.py),
secrets and configs. `testbed clean` and
`cleanup` remove exactly what these queries name."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from orchestrator.backends.base import Leftover
from orchestrator.backends.docker.engine import LABEL_ORCHESTRATOR, LABEL_RUN
from orchestrator.backends.swarm.network import LABEL_EDGE

# The state directory of the run, under a key of its own: the docker backend's
# `testbed clean` selects testbed.state=<dir> and must not take a swarm run's
# containers (on the manager's engine) or its network for its own.
LABEL_SWARM_STATE = "testbed.swarm_state"

NETWORK_REMOVE_SECONDS = 60.0  # tasks' containers leave the network asynchronously
POLL_SECONDS = 0.5
KINDS = ("services", "networks", "secrets", "configs")


@dataclass
class SwarmResources:
    run_id: str
    services: list[dict[str, Any]] = field(default_factory=list)
    networks: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[dict[str, Any]] = field(default_factory=list)
    configs: list[dict[str, Any]] = field(default_factory=list)

    def orchestrator(self) -> str | None:
        for item in (*self.services, *self.networks):
            owner = labels_of(item).get(LABEL_ORCHESTRATOR)
            if owner:
                return owner
        return None

    def empty(self) -> bool:
        return not any(getattr(self, kind) for kind in KINDS)


def labels_of(item: dict[str, Any]) -> dict[str, str]:
    spec = item.get("Spec") or {}
    return dict(spec.get("Labels") or item.get("Labels") or {})


def name_of(item: dict[str, Any]) -> str:
    return str((item.get("Spec") or {}).get("Name") or item.get("Name") or item.get("ID"))


def swarm_resources(
    client: Any, run_id: str | None = None, state: str | None = None
) -> dict[str, SwarmResources]:
    """{run id: what the manager holds of it} (one run, or every run; with
    `state`, only the runs of that state directory)."""
    selector = [f"{LABEL_RUN}={run_id}" if run_id else LABEL_RUN]
    if state is not None:
        selector.append(f"{LABEL_SWARM_STATE}={state}")
    edge = [f"{LABEL_EDGE}={run_id}" if run_id else LABEL_EDGE, *selector[1:]]
    api = client.api
    found: dict[str, SwarmResources] = {}
    listed = {
        "services": api.services(filters={"label": selector}),
        "networks": [
            *api.networks(filters={"label": selector, "driver": "overlay"}),
            *api.networks(filters={"label": edge, "driver": "overlay"}),
        ],
        "secrets": api.secrets(filters={"label": selector}),
        "configs": api.configs(filters={"label": selector}),
    }
    for kind, items in listed.items():
        for item in items:
            rid = labels_of(item).get(LABEL_RUN) or labels_of(item).get(LABEL_EDGE)
            if rid and (run_id is None or rid == run_id):
                getattr(found.setdefault(rid, SwarmResources(rid)), kind).append(item)
    return found


def remove_swarm_resources(client: Any, found: SwarmResources) -> list[Leftover]:
    """Services first (their tasks leave the network), then the network (retried
    until the tasks' containers are gone), secrets and configs."""
    import docker.errors

    api, rid = client.api, found.run_id
    report: list[Leftover] = []

    def attempt(what: str, remove: Any, *args: Any) -> None:
        try:
            remove(*args)
            report.append(Leftover(rid, what, "removed"))
        except docker.errors.NotFound:
            report.append(Leftover(rid, what, "already gone"))
        except docker.errors.APIError as exc:
            report.append(Leftover(rid, what, f"failed: {exc}"))

    for service in found.services:
        attempt(f"service {name_of(service)}", api.remove_service, service["ID"])
    for network in found.networks:
        _remove_network(api, network, rid, report)
    for secret in found.secrets:
        attempt(f"secret {name_of(secret)}", api.remove_secret, secret["ID"])
    for config in found.configs:
        attempt(f"config {name_of(config)}", api.remove_config, config["ID"])
    return report


def _remove_network(api: Any, network: dict[str, Any], rid: str, report: list[Leftover]) -> None:
    import docker.errors

    what = f"network {name_of(network)}"
    deadline = time.monotonic() + NETWORK_REMOVE_SECONDS
    while True:
        try:
            api.remove_network(network["Id"])
            report.append(Leftover(rid, what, "removed"))
            return
        except docker.errors.NotFound:
            report.append(Leftover(rid, what, "already gone"))
            return
        except docker.errors.APIError as exc:
            if time.monotonic() > deadline:
                report.append(Leftover(rid, what, f"failed: {exc}"))
                return
            time.sleep(POLL_SECONDS)  # "in use by task ...": its containers are going
