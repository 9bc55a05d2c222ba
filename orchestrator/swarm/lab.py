"""A Docker Swarm on one machine: this engine as manager, worker nodes as
containers running their own dockerd, and a private registry they pull from.

    lab = Lab.up(client, state_dir, workers=2, shared=["/abs/results"])
    lab.workers            # ["testbed-lab-<id>-w1", "testbed-lab-<id>-w2"]
    lab.registry.address   # "172.17.0.1:5000"
    lab.down(client)       # removes exactly what up() made

`up` makes this engine a swarm manager if it is not one (and remembers that it
did; its dispatcher heartbeat is then HEARTBEAT_SECONDS, not Docker's 5 s, so a
worker slow under load is not taken for lost; a swarm that exists is left as
it is), builds the node image (images/node/, offline base + Debian's docker.io),
starts the nodes, joins them with the swarm's worker token, labels them
`testbed.lab=<id>` and `testbed.role=prosumers`, and bind-mounts each `shared`
folder at the same path into every node: the results folder the bundle lives in
(on a real cluster that folder is an NFS mount on every machine).

The lab's state (`<state_dir>/labs/<id>.json`) is written as it is made, so
`down` (or `testbed lab down` from another process) removes what a failed or
killed `up` left: nodes removed from the swarm, containers, volumes, cgroup
subtrees, the registry process and its CA file, and the swarm itself only if
this lab initialised it.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.results.bundle import write_json
from orchestrator.swarm.nodeimage import node_image
from orchestrator.swarm.nodes import (
    DEFAULT_RUNTIME,
    LABEL_LAB,
    LABEL_ROLE,
    LabError,
    LabNode,
    label,
    node_docker,
    remove_node,
    start_node,
    wait_engine,
    wait_ready,
)
from orchestrator.swarm.nodes import join as join_swarm
from orchestrator.swarm.registry import DEFAULT_PORT, Registry, docker0_address

NAME_PREFIX = "testbed-lab-"
WORKER_ROLE = "prosumers"
SWARM_PORT = 2377
# A worker's agent sends the manager a heartbeat this often; the manager marks it
# Down after missing about three (swarmkit's grace multiplier). Docker's 5 s saw a
# live worker Down under load 150 (10x on 310 hosts); a node really lost is then
# seen Down after ~60 s instead of ~15 s.
HEARTBEAT_SECONDS = 20
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")

Say = Callable[[str], None]

__all__ = ["Lab", "LabError", "LabNode"]


def _quiet(_line: str) -> None:
    pass


@dataclass
class Lab:
    id: str
    state_dir: Path
    manager: str = ""  # the address:port the workers joined
    initialised_swarm: bool = False
    image: str = ""
    nodes: list[LabNode] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)
    registry: Registry | None = None
    owns_registry: bool = False  # started by up() (stopped by down()), not given
    runtime: str = DEFAULT_RUNTIME  # the OCI runtime of the workers' containers
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def workers(self) -> list[str]:
        return [node.name for node in self.nodes]

    @property
    def labels(self) -> dict[str, str]:
        """The labels of every worker node (swarm constraints match them)."""
        return {LABEL_LAB: self.id, LABEL_ROLE: WORKER_ROLE}

    @property
    def state_file(self) -> Path:
        return labs_folder(self.state_dir) / f"{self.id}.json"

    # -- up -------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        client: Any,
        state_dir: Path,
        *,
        workers: int = 2,
        name: str | None = None,
        shared: Sequence[Path | str] = (),
        registry: bool | Registry = True,
        registry_port: int = DEFAULT_PORT,
        runtime: str = DEFAULT_RUNTIME,
        say: Say = _quiet,
    ) -> Lab:
        """Bring a lab up; on any failure, what was made is removed again.
        `registry`: True starts one, a Registry is used as given, False none;
        `runtime`: the workers' OCI runtime (nodes.RUNTIMES)."""
        lab_id = name or secrets.token_hex(3)
        if not _ID.match(lab_id):
            raise LabError(f"lab name {lab_id!r}: use a-z, 0-9 and '-' (at most 31)")
        shared_paths = [str(Path(p).resolve()) for p in shared]
        lab = cls(lab_id, state_dir, shared=shared_paths, runtime=runtime)
        if lab.state_file.exists():
            raise LabError(f"lab {lab_id} exists ({lab.state_file}): `testbed lab down {lab_id}`")
        lab.save()
        try:
            lab._build(client, workers, registry, registry_port, say)
        except BaseException:
            say(f"lab {lab_id}: bring-up failed, removing what was made")
            lab.down(client, say=say, strict=False)
            raise
        return lab

    def _build(
        self, client: Any, workers: int, registry: bool | Registry, port: int, say: Say
    ) -> None:
        started = time.monotonic()
        self.image = node_image(client, say)
        self.timings["node_image_seconds"] = round(time.monotonic() - started, 2)
        self._ensure_manager(client, say)
        if isinstance(registry, Registry):
            self.registry = registry
        elif registry:
            self.owns_registry = True
            mark = time.monotonic()
            self.registry = Registry.start(
                client, self.state_dir / "labs" / self.id / "registry", port=port, say=say
            )
            self.timings["registry_seconds"] = round(time.monotonic() - mark, 2)
        self.save()
        mark = time.monotonic()
        token = str(client.swarm.attrs["JoinTokens"]["Worker"])
        labels = {LABEL_LAB: self.id}
        for index in range(1, workers + 1):
            name = f"{NAME_PREFIX}{self.id}-w{index}"
            node = LabNode(name=name, volume=f"{name}-docker")
            self.nodes.append(node)
            self.save()
            start_node(client, node, self.image, labels, self.shared, runtime=self.runtime)
            self.save()
        for node in self.nodes:  # the later nodes' engines start meanwhile
            wait_engine(client, node)
            join_swarm(client, node, token, self.manager)
            self.save()
            wait_ready(client, node)
            label(client, str(node.node_id), self.labels)
            say(f"lab {self.id}: {node.name} Ready (node {node.node_id})")
        self.timings["nodes_seconds"] = round(time.monotonic() - mark, 2)
        self.timings["up_seconds"] = round(time.monotonic() - started, 2)
        self.save()

    def _ensure_manager(self, client: Any, say: Say) -> None:
        swarm = client.info().get("Swarm") or {}
        state = swarm.get("LocalNodeState")
        if state == "inactive":
            address = docker0_address(client)
            client.swarm.init(
                advertise_addr=address,
                listen_addr=f"0.0.0.0:{SWARM_PORT}",
                dispatcher_heartbeat_period=HEARTBEAT_SECONDS * 1_000_000_000,  # ns
            )
            self.initialised_swarm = True
            self.save()
            say(f"lab {self.id}: this engine is now a swarm manager ({address})")
            swarm = client.info().get("Swarm") or {}
        elif state != "active" or not swarm.get("ControlAvailable"):
            raise LabError(
                f"this engine is not a swarm manager (swarm state {state!r}): the lab needs "
                "a manager or no swarm at all"
            )
        client.swarm.reload()
        if not self.initialised_swarm:
            _heartbeat_hint(client.swarm.attrs, say)
        self.manager = _manager_address(swarm)
        self.save()

    # -- down -----------------------------------------------------------------

    def down(self, client: Any, *, say: Say = _quiet, strict: bool = True) -> list[str]:
        """Remove what up() made; returns what could not be removed (strict: raise)."""
        problems: list[str] = []
        for node in reversed(self.nodes):
            remove_node(client, node, problems)
            say(f"lab {self.id}: {node.name} removed")
        if self.registry is not None and self.owns_registry:
            self.registry.stop()
            say(f"lab {self.id}: registry {self.registry.address} stopped")
        if self.initialised_swarm:
            self._leave_swarm(client, say, problems)
        if not problems:
            self.state_file.unlink(missing_ok=True)
            _remove_empty(labs_folder(self.state_dir) / self.id)
        if problems and strict:
            raise LabError(
                f"lab {self.id}: not everything was removed:\n  " + "\n  ".join(problems)
            )
        return problems

    def _leave_swarm(self, client: Any, say: Say, problems: list[str]) -> None:
        """Leave the swarm the lab made, unless others use it meanwhile (another
        lab's nodes, or services): leaving would take theirs down with it."""
        try:
            own = client.info()["Swarm"]["NodeID"]
            if not own:  # this engine is in no swarm any more: nothing to leave
                return
            others = [
                n
                for n in client.nodes.list()
                if n.id != own and n.attrs.get("Status", {}).get("State") != "down"
            ]
            services = client.services.list()
            if others or services:
                say(
                    f"lab {self.id}: the swarm it made is kept: {len(others)} other node(s) "
                    f"and {len(services)} service(s) use it (`docker swarm leave --force`)"
                )
                return
            client.swarm.leave(force=True)
            say(f"lab {self.id}: this engine left the swarm the lab had made")
        except Exception as exc:  # the API's errors and the SDK's own
            problems.append(f"swarm leave: {exc}")

    # -- status ---------------------------------------------------------------

    def status(self, client: Any) -> dict[str, Any]:
        """Each node's container state and swarm state; whether the registry answers."""
        import docker.errors

        nodes = []
        for node in self.nodes:
            entry: dict[str, Any] = {"name": node.name, "node_id": node.node_id}
            try:
                entry["container"] = client.containers.get(node.container or node.name).status
            except docker.errors.NotFound:
                entry["container"] = "missing"
            try:
                swarm_node = client.nodes.get(node.node_id) if node.node_id else None
            except docker.errors.NotFound:
                swarm_node = None
            attrs = swarm_node.attrs if swarm_node is not None else {}
            entry["state"] = attrs.get("Status", {}).get("State", "missing")
            entry["availability"] = attrs.get("Spec", {}).get("Availability", "")
            entry["labels"] = attrs.get("Spec", {}).get("Labels") or {}
            nodes.append(entry)
        registry = None
        if self.registry is not None:
            registry = {"address": self.registry.address, "answers": self.registry.answers()}
        return {
            "id": self.id,
            "manager": self.manager,
            "initialised_swarm": self.initialised_swarm,
            "image": self.image,
            "runtime": self.runtime,
            "shared": self.shared,
            "nodes": nodes,
            "registry": registry,
        }

    # -- state ----------------------------------------------------------------

    def save(self) -> None:
        data = {
            "id": self.id,
            "manager": self.manager,
            "initialised_swarm": self.initialised_swarm,
            "image": self.image,
            "nodes": [node.as_dict() for node in self.nodes],
            "shared": self.shared,
            "registry": self.registry.as_dict() if self.registry else None,
            "owns_registry": self.owns_registry,
            "runtime": self.runtime,
            "timings": self.timings,
        }
        write_json(self.state_file, data)

    @classmethod
    def load(cls, state_dir: Path, lab_id: str) -> Lab:
        path = labs_folder(state_dir) / f"{lab_id}.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            known = ", ".join(lab_ids(state_dir)) or "none"
            raise LabError(f"no lab {lab_id!r} in {path.parent} (labs: {known})") from None
        registry = data.get("registry")
        return cls(
            id=data["id"],
            state_dir=state_dir,
            manager=data.get("manager", ""),
            initialised_swarm=bool(data.get("initialised_swarm")),
            image=data.get("image", ""),
            nodes=[LabNode.from_dict(n) for n in data.get("nodes", [])],
            shared=list(data.get("shared", [])),
            registry=Registry.from_dict(registry) if registry else None,
            owns_registry=bool(data.get("owns_registry")),
            runtime=data.get("runtime", "runc"),  # a lab of before: Docker's default
            timings=dict(data.get("timings", {})),
        )

    def node_docker(self, client: Any, worker: str, *argv: str) -> tuple[int, str]:
        """`docker ARGV...` on a worker's own engine (for checks and tests)."""
        node = next((n for n in self.nodes if n.name == worker), None)
        if node is None:
            raise LabError(f"lab {self.id} has no worker {worker!r} (workers: {self.workers})")
        return node_docker(client, node, *argv)


def labs_folder(state_dir: Path) -> Path:
    return state_dir / "labs"


def lab_ids(state_dir: Path) -> list[str]:
    folder = labs_folder(state_dir)
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def _manager_address(swarm: dict[str, Any]) -> str:
    """The address:port workers join: this node's entry in RemoteManagers."""
    node_id = swarm.get("NodeID")
    for manager in swarm.get("RemoteManagers") or []:
        if manager.get("NodeID") == node_id and manager.get("Addr"):
            return str(manager["Addr"])
    address = swarm.get("NodeAddr") or socket.gethostbyname(socket.gethostname())
    return f"{address}:{SWARM_PORT}"


def _heartbeat_hint(attrs: dict[str, Any], say: Say) -> None:
    """A swarm the lab did not make keeps its heartbeat; say so if it is short."""
    period = (attrs.get("Spec", {}).get("Dispatcher") or {}).get("HeartbeatPeriod") or 0
    if period and period < HEARTBEAT_SECONDS * 1_000_000_000:
        say(
            f"the swarm's dispatcher heartbeat is {period / 1e9:g} s: under load a worker may "
            f"be seen Down (`docker swarm update --dispatcher-heartbeat {HEARTBEAT_SECONDS}s`)"
        )


def _remove_empty(folder: Path) -> None:
    """Remove the lab's state folder (registry config, certificate, log)."""
    import shutil

    with contextlib.suppress(OSError):
        shutil.rmtree(folder)
