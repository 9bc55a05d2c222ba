"""The Docker Engine as the docker backend sees it: the connection, the labels
every run resource carries, and finding and removing resources by label.

Labels (docker/compose style: cleanup and "what is running" are label queries):
- `testbed.run`: the run id (containers, networks, volumes, images a run built)
- `testbed.unit`: the unit (agent, chain, prometheus) a container runs
- `testbed.role`: its role
- `testbed.orchestrator`: `<hostname>:<pid>:<process start time>` of the
  orchestrator that made it, so `testbed clean` leaves live runs alone;
- `testbed.state`: the orchestrator's state directory ($TESTBED_STATE_DIR):
  `testbed clean` cleans the runs of its own state directory, as the local
  backend does with its pidfiles.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psutil

from orchestrator.backends.base import BackendError, Leftover

LABEL_RUN = "testbed.run"
LABEL_UNIT = "testbed.unit"
LABEL_ROLE = "testbed.role"
LABEL_ORCHESTRATOR = "testbed.orchestrator"
LABEL_SPEC = "testbed.spec"
LABEL_STATE = "testbed.state"
# A swarm service's port its agent serves /metrics on (Prometheus's swarm discovery
# reads it: observability/swarmsd.py), and the engine socket that discovery mounts.
LABEL_METRICS_PORT = "testbed.metrics_port"
DOCKER_SOCKET = "/var/run/docker.sock"
API_TIMEOUT_SECONDS = 120
MAX_POOL_SIZE = 128  # one streaming connection per container's log follower


class DockerUnavailable(BackendError):
    """No Docker Engine answers (or the SDK is missing)."""


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect(timeout: float = API_TIMEOUT_SECONDS) -> Any:
    """A docker.DockerClient for $DOCKER_HOST (else the local socket), pinged."""
    try:
        import docker
        import docker.errors
    except ImportError as exc:  # pragma: no cover - docker is a pinned dependency
        raise DockerUnavailable(f"the Docker SDK for Python is not installed: {exc}") from exc
    try:
        client = docker.from_env(timeout=int(timeout), max_pool_size=MAX_POOL_SIZE)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        raise DockerUnavailable(
            f"no Docker Engine answers at {engine_address()} ({exc}); start dockerd "
            "(scripts/setup.sh does as root) or set DOCKER_HOST"
        ) from exc
    return client


def engine_reachable() -> bool:
    try:
        connect(timeout=10).close()
        return True
    except DockerUnavailable:
        return False


def orchestrator_label() -> str:
    me = psutil.Process()
    return f"{socket.gethostname()}:{me.pid}:{me.create_time():.3f}"


def orchestrator_alive(label: str | None) -> bool:
    """True when `label` names a process of this machine that still runs."""
    if not label:
        return False
    try:
        host, pid, created = label.rsplit(":", 2)
        if host != socket.gethostname():
            return True  # another machine's run: never ours to judge
        proc = psutil.Process(int(pid))
        return abs(proc.create_time() - float(created)) < 0.01 and (
            proc.status() != psutil.STATUS_ZOMBIE
        )
    except (ValueError, psutil.Error):
        return False


@dataclass
class RunResources:
    """Everything of one run the engine holds, found by label."""

    run_id: str
    containers: list[Any] = field(default_factory=list)
    networks: list[Any] = field(default_factory=list)
    volumes: list[Any] = field(default_factory=list)

    def orchestrator(self) -> str | None:
        for item in (*self.containers, *self.networks):
            labels = _labels(item)
            if labels.get(LABEL_ORCHESTRATOR):
                return str(labels[LABEL_ORCHESTRATOR])
        return None

    def empty(self) -> bool:
        return not (self.containers or self.networks or self.volumes)


def _labels(item: Any) -> dict[str, str]:
    attrs = item.attrs
    labels = attrs.get("Labels") or attrs.get("Config", {}).get("Labels") or {}
    return dict(labels)


def run_resources(
    client: Any, run_id: str | None = None, state: str | None = None
) -> dict[str, RunResources]:
    """{run id: its containers, networks, volumes} (one run, or every run;
    with `state`, only runs of that state directory)."""
    selector = [f"{LABEL_RUN}={run_id}" if run_id else LABEL_RUN]
    if state is not None:
        selector.append(f"{LABEL_STATE}={state}")
    found: dict[str, RunResources] = {}

    def add(items: Iterable[Any], kind: str) -> None:
        for item in items:
            rid = _labels(item).get(LABEL_RUN)
            if rid:
                getattr(found.setdefault(rid, RunResources(rid)), kind).append(item)

    add(
        client.containers.list(all=True, filters={"label": selector}, ignore_removed=True),
        "containers",
    )
    add(client.networks.list(filters={"label": selector}), "networks")
    add(client.volumes.list(filters={"label": selector}), "volumes")
    return found


def remove_resources(resources: RunResources) -> list[Leftover]:
    """Force-remove the containers, then the networks and volumes of a run."""
    import docker.errors

    report: list[Leftover] = []
    rid = resources.run_id
    for container in resources.containers:
        what = f"container {container.name}"
        try:
            container.remove(force=True, v=True)
            report.append(Leftover(rid, what, "removed"))
        except docker.errors.NotFound:
            report.append(Leftover(rid, what, "already gone"))
        except docker.errors.APIError as exc:
            report.append(Leftover(rid, what, f"failed: {exc}"))
    for kind, items in (("network", resources.networks), ("volume", resources.volumes)):
        for item in items:
            what = f"{kind} {item.name}"
            try:
                item.remove()
                report.append(Leftover(rid, what, "removed"))
            except docker.errors.NotFound:
                report.append(Leftover(rid, what, "already gone"))
            except docker.errors.APIError as exc:
                report.append(Leftover(rid, what, f"failed: {exc}"))
    return report


def clean_dead_runs(client: Any, state: str) -> list[Leftover]:
    """Remove every labelled resource of the runs of state directory `state`
    whose orchestrator is gone."""
    report: list[Leftover] = []
    for resources in run_resources(client, state=state).values():
        if orchestrator_alive(resources.orchestrator()):
            continue
        report.extend(remove_resources(resources))
    return report
