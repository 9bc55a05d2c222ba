"""Worker nodes of the lab: containers that run their own dockerd and join this
machine's swarm. What works on these machines (no --privileged, cgroup v1):

- every capability but SYS_RESOURCE (which the bounding set lacks), seccomp and
  AppArmor unconfined;
- the host's cgroup namespace with /sys/fs/cgroup mounted read-write. Each
  node is a cgroup subtree /<node name> of its own, like a machine: the node
  container (its dockerd, containerd, shims) in /<node name>/<container id>
  with ENGINE_CPU_SHARES, and the containers its dockerd starts under
  /<node name>/containers with TASKS_CPU_SHARES (the entrypoint), so under load
  the engine is not starved by the tasks it starts (at 310 hosts the tasks'
  Python held the engines to ~0.5 containers started a second). The subtrees
  outlive the node container and are removed here, deepest first;
- an init (docker-init) as the node container's PID 1: dockerd is not one, and
  the shims it leaves would pile up as zombies (~180 per worker over a 10x run);
- a volume per node for /var/lib/docker (overlay2 on ext4 underneath);
- this machine's /etc/docker/certs.d mounted read-only: the registry's CA placed
  here is trusted by every node without restarting its engine;
- /proc/sys writable (no masked or read-only system paths): crun writes the
  containers' sysctls through it. The node's containers run with crun
  (DEFAULT_RUNTIME; runc is there too) and its Go programs with a lazier GC (the
  entrypoint: dockerd re-executes itself three times per container it starts).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import TestbedError
from orchestrator.swarm.registry import CERTS_D

LABEL_LAB = "testbed.lab"
LABEL_ROLE = "testbed.role"
CGROUP_ROOT = Path("/sys/fs/cgroup")
ENGINE_TIMEOUT_SECONDS = 180.0
READY_TIMEOUT_SECONDS = 180.0
CGROUP_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.25
# cpu.shares inside the node's subtree: the engine 4x the weight of all its tasks
# together (it uses little when idle; it gets the CPU when it has work)
ENGINE_CPU_SHARES = 4096
TASKS_CPU_SHARES = 1024
# The OCI runtimes a node's dockerd knows (images/node); which one runs its containers.
# crun (C) starts a container for less CPU than runc (Go, which re-executes itself
# as `runc init` inside every container): bench/swarmcost.py --workers, a prosumer
# host's service on a worker, engine + task cgroups to running, -20% (README).
RUNTIMES = ("runc", "crun")
DEFAULT_RUNTIME = "crun"

Say = Callable[[str], None]


class LabError(TestbedError):
    """The lab could not be brought up or taken down."""

    exit_code = 1


@dataclass
class LabNode:
    """A worker node: its container and volume (named after it) and, once it
    joined, its swarm node id."""

    name: str
    volume: str
    container: str | None = None
    node_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("name", "volume", "container", "node_id")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabNode:
        return cls(data["name"], data["volume"], data.get("container"), data.get("node_id"))


def start_node(
    client: Any,
    node: LabNode,
    image: str,
    labels: Mapping[str, str],
    shared: Sequence[str],
    *,
    entrypoint: Sequence[str] | None = None,
    args: Sequence[str] = (),
    read_only: Mapping[str, str] | None = None,
    runtime: str = DEFAULT_RUNTIME,
    engine_env: Mapping[str, str] | None = None,
) -> None:
    """Create the node's volume and start its container (its dockerd starts).
    `entrypoint`/`args`: instead of the image's, and dockerd's extra arguments;
    `read_only`: {folder here: path in the node} mounted read-only; `runtime`:
    the OCI runtime of the node's containers (RUNTIMES); `engine_env`: more
    environment for its dockerd (and so its containerd, shims and runtimes)."""
    if runtime not in RUNTIMES:
        raise LabError(f"runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    client.volumes.create(node.volume, labels=dict(labels))
    mounts: dict[str, dict[str, str]] = {
        node.volume: {"bind": "/var/lib/docker", "mode": "rw"},
        str(CGROUP_ROOT): {"bind": str(CGROUP_ROOT), "mode": "rw"},
        str(CERTS_D): {"bind": str(CERTS_D), "mode": "ro"},
    }
    for folder in shared:  # the same path on every node, as NFS would give
        Path(folder).mkdir(parents=True, exist_ok=True)
        mounts[folder] = {"bind": folder, "mode": "rw"}
    for folder, inside in (read_only or {}).items():
        mounts[folder] = {"bind": inside, "mode": "ro"}
    CERTS_D.mkdir(parents=True, exist_ok=True)
    host_config = client.api.create_host_config(
        binds=mounts,
        init=True,  # reaps what dockerd leaves (exited shims): dockerd is no init
        cgroup_parent=f"/{node.name}",
        cpu_shares=ENGINE_CPU_SHARES,
        cap_add=["ALL"],
        cap_drop=["SYS_RESOURCE"],
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        cgroupns="host",
    )
    # /proc/sys writable in the node (`--security-opt systempaths=unconfined`, which
    # the SDK lacks): crun sets the containers' sysctls through it
    host_config.update({"MaskedPaths": [], "ReadonlyPaths": []})
    environment = {
        **(engine_env or {}),
        "TESTBED_NODE_NAME": node.name,
        "TESTBED_NODE_RUNTIME": runtime,
        "TESTBED_TASKS_CPU_SHARES": str(TASKS_CPU_SHARES),
    }
    made = client.api.create_container(
        image,
        name=node.name,
        hostname=node.name,
        detach=True,
        environment=environment,
        labels=dict(labels),
        entrypoint=list(entrypoint) if entrypoint is not None else None,
        command=list(args) or None,
        volumes=[m["bind"] for m in mounts.values()],
        host_config=host_config,
    )
    node.container = str(made["Id"])
    client.api.start(node.container)


def node_docker(client: Any, node: LabNode, *argv: str) -> tuple[int, str]:
    """`docker ARGV...` inside the node (its own engine): (exit code, output)."""
    container = client.containers.get(node.container or node.name)
    code, output = container.exec_run(["docker", *argv])
    return int(code), output.decode(errors="replace").strip()


def wait_engine(client: Any, node: LabNode) -> None:
    """Poll until the node's own dockerd answers."""
    deadline = time.monotonic() + ENGINE_TIMEOUT_SECONDS
    while True:
        container = client.containers.get(node.container or node.name)
        if container.status == "exited":
            raise LabError(f"{node.name}: its dockerd exited:\n{_tail(container)}")
        code, _ = node_docker(client, node, "version", "--format", "{{.Server.Version}}")
        if code == 0:
            return
        if time.monotonic() > deadline:
            raise LabError(
                f"{node.name}: dockerd did not answer within {ENGINE_TIMEOUT_SECONDS:g} s:\n"
                f"{_tail(container)}"
            )
        time.sleep(POLL_SECONDS)


def join(client: Any, node: LabNode, token: str, manager: str) -> None:
    """The node joins the swarm as a worker; records its node id."""
    code, output = node_docker(client, node, "swarm", "join", "--token", token, manager)
    if code != 0:
        raise LabError(f"{node.name}: docker swarm join {manager} failed: {output}")
    code, output = node_docker(client, node, "info", "--format", "{{.Swarm.NodeID}}")
    if code != 0 or not output:
        raise LabError(f"{node.name}: joined, but its node id is unknown: {output}")
    node.node_id = output


def wait_ready(client: Any, node: LabNode) -> None:
    """Poll the manager until the node is Ready."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    state = "unknown"
    while True:
        state = str(client.nodes.get(node.node_id).attrs.get("Status", {}).get("State"))
        if state == "ready":
            return
        if time.monotonic() > deadline:
            raise LabError(
                f"{node.name}: not Ready after {READY_TIMEOUT_SECONDS:g} s (state {state})"
            )
        time.sleep(POLL_SECONDS)


def label(client: Any, node_id: str, labels: Mapping[str, str]) -> None:
    """Add `labels` to a swarm node's spec (the manager's API)."""
    swarm_node = client.nodes.get(node_id)
    spec = dict(swarm_node.attrs["Spec"])
    spec["Labels"] = {**(spec.get("Labels") or {}), **labels}
    if not swarm_node.update(spec):
        raise LabError(f"node {node_id}: its labels were not updated")


def remove_node(client: Any, node: LabNode, problems: list[str]) -> None:
    """Everything of `node`: swarm node entry, container, volume, cgroup subtrees."""
    import docker.errors

    node_ids = {node.node_id} if node.node_id else set()
    # a node whose join was cut short has no id in the state: find it by hostname
    try:
        entries = client.nodes.list()
    except docker.errors.APIError:  # this engine left the swarm: no node entries to remove
        entries, node_ids = [], set()
    for entry in entries:
        if entry.attrs.get("Description", {}).get("Hostname") == node.name:
            node_ids.add(entry.id)
    for node_id in sorted(i for i in node_ids if i):
        try:
            client.nodes.get(node_id).remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            problems.append(f"swarm node {node.name} ({node_id}): {exc.explanation}")
    try:
        client.containers.get(node.container or node.name).remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        problems.append(f"container {node.name}: {exc.explanation}")
    try:
        client.volumes.get(node.volume).remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        problems.append(f"volume {node.volume}: {exc.explanation}")
    problems.extend(remove_cgroups(node.name))


def cgroup_subtrees(name: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """/sys/fs/cgroup/<controller>/<name> of every controller (each once: cpu and
    cpuacct are links to one hierarchy)."""
    seen: set[str] = set()
    found: list[Path] = []
    if not root.is_dir():
        return found
    for controller in sorted(root.iterdir()):
        subtree = controller / name
        real = os.path.realpath(subtree)
        if real not in seen and subtree.is_dir():
            seen.add(real)
            found.append(subtree)
    return found


def remove_cgroups(name: str, root: Path = CGROUP_ROOT) -> list[str]:
    """rmdir the node's cgroup subtrees, deepest first; retried while the node's
    last processes exit. Returns what could not be removed."""
    deadline = time.monotonic() + CGROUP_TIMEOUT_SECONDS
    while True:
        left: list[str] = []
        for subtree in cgroup_subtrees(name, root):
            for dirpath, _dirs, _files in os.walk(subtree, topdown=False):
                try:
                    os.rmdir(dirpath)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    left.append(f"cgroup {dirpath}: {exc.strerror}")
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(POLL_SECONDS)


def _tail(container: Any, lines: int = 15) -> str:
    with contextlib.suppress(Exception):
        text = container.logs(tail=lines).decode(errors="replace").rstrip()
        return "\n".join(f"  | {line}" for line in text.splitlines())
    return "  | (no log)"
