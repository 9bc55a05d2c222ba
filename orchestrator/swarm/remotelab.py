"""A swarm whose manager is not this machine's engine: every node a container
running its own dockerd, the manager's engine reached over TCP with TLS.

    lab = RemoteLab.up(client, state_dir, workers=1, shared=["/abs/results"])
    lab.url            # "tcp://172.17.0.5:2376": deployment.swarm.manager
    lab.env            # DOCKER_TLS_VERIFY=1, DOCKER_CERT_PATH=<the client's certificates>
    lab.seed_images(client, {"agent": "testbed/agent:1a2b", ...})  # via the lab's registry
    lab.down(client)   # removes exactly what up() made

It stands in for a cluster elsewhere (an orchestrator on a laptop, the manager
on a rack): nothing of the swarm runs on this engine, which only hosts the node
containers, so a bind mount of a path that exists only on this machine fails
there as it would on another machine. The `shared` folders are bind-mounted at
the same path into every node (NFS's stand-in). The manager's dockerd listens
on its container's address, port 2376, with `--tlsverify`; its certificate
names that address, so it is made once the container has one (the node's
entrypoint waits for it). Workers join with the real token and carry
`testbed.role=prosumers`, so prosumer hosts land there and the other services
on the manager. A registry on this machine (lab.registry) serves the images;
`seed_images` puts them on the manager's engine, as a user's build would.

Node containers, volumes and cgroup subtrees are orchestrator/swarm/nodes.py's
(the lab's); the state file (`<state_dir>/remotelabs/<id>.json`) lets `down`
remove what a failed `up` left.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.results.bundle import write_json
from orchestrator.swarm.nodeimage import node_image
from orchestrator.swarm.nodes import (
    LABEL_LAB,
    LABEL_ROLE,
    LabError,
    LabNode,
    join,
    label,
    node_docker,
    remove_node,
    start_node,
    wait_engine,
    wait_ready,
)
from orchestrator.swarm.registry import Registry
from orchestrator.swarm.tls import CA_FILE, CERT_FILE, KEY_FILE, Authority, docker_client

NAME_PREFIX = "testbed-rlab-"
TLS_PORT = 2376
SWARM_PORT = 2377
TLS_INSIDE = "/testbed-tls"  # the manager's certificate, in its container
ADDRESS_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.25
# the node's entrypoint, once the manager's certificate for its address is there
WAIT_FOR_CERTIFICATE = 'until [ -s "$0" ]; do sleep 0.1; done; exec node-entrypoint "$@"'

Say = Callable[[str], None]


def _quiet(_line: str) -> None:
    pass


@dataclass
class RemoteLab:
    id: str
    state_dir: Path
    image: str = ""
    address: str = ""  # the manager's address: its API (TLS_PORT) and its swarm port
    nodes: list[LabNode] = field(default_factory=list)  # the manager first
    shared: list[str] = field(default_factory=list)
    registry: Registry | None = None

    @property
    def folder(self) -> Path:
        return self.state_dir / "remotelabs" / self.id

    @property
    def state_file(self) -> Path:
        return self.state_dir / "remotelabs" / f"{self.id}.json"

    @property
    def url(self) -> str:
        return f"tcp://{self.address}:{TLS_PORT}"

    @property
    def cert_path(self) -> Path:
        return self.folder / "client"

    @property
    def env(self) -> dict[str, str]:
        """What a docker client (the CLI, the SDK, the orchestrator) needs besides the URL."""
        return {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(self.cert_path)}

    @property
    def workers(self) -> list[LabNode]:
        return self.nodes[1:]

    # -- up -------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        client: Any,
        state_dir: Path,
        *,
        workers: int = 1,
        shared: Sequence[Path | str] = (),
        registry_port: int,
        say: Say = _quiet,
    ) -> RemoteLab:
        """The manager, `workers` workers and a registry; on any failure what
        was made is removed again."""
        lab = cls(secrets.token_hex(3), state_dir, shared=[str(Path(p).resolve()) for p in shared])
        lab.save()
        try:
            lab._build(client, workers, registry_port, say)
        except BaseException:
            say(f"remote lab {lab.id}: bring-up failed, removing what was made")
            lab.down(client, strict=False)
            raise
        return lab

    def _build(self, client: Any, workers: int, registry_port: int, say: Say) -> None:
        started = time.monotonic()
        self.image = node_image(client, say)
        self.registry = Registry.start(
            client, self.folder / "registry", port=registry_port, say=say
        )
        self.save()
        authority = Authority.create()
        authority.write_client(self.cert_path)
        self._start_manager(client, authority)
        remote = self.connect()
        try:
            token = str(remote.swarm.attrs["JoinTokens"]["Worker"])
            for index in range(1, workers + 1):
                self._add_worker(client, remote, f"{NAME_PREFIX}{self.id}-w{index}", token)
        finally:
            remote.close()
        say(f"remote lab {self.id}: manager {self.url}, {workers} worker(s), "
            f"up in {time.monotonic() - started:.1f} s")  # fmt: skip

    def _start_manager(self, client: Any, authority: Authority) -> None:
        name = f"{NAME_PREFIX}{self.id}-m"
        node = LabNode(name=name, volume=f"{name}-docker")
        self.nodes.append(node)
        self.save()
        server = self.folder / "server"
        server.mkdir(parents=True, exist_ok=True)
        tls = [
            f"--host=tcp://0.0.0.0:{TLS_PORT}",
            "--tlsverify",
            f"--tlscacert={TLS_INSIDE}/{CA_FILE}",
            f"--tlscert={TLS_INSIDE}/{CERT_FILE}",
            f"--tlskey={TLS_INSIDE}/{KEY_FILE}",
        ]
        start_node(
            client, node, self.image, {LABEL_LAB: self.id}, self.shared,
            entrypoint=["/bin/sh", "-c", WAIT_FOR_CERTIFICATE, f"{TLS_INSIDE}/{KEY_FILE}"],
            args=tls, read_only={str(server): TLS_INSIDE},
        )  # fmt: skip
        self.save()
        self.address = _container_address(client, node)
        authority.write_server(server, self.address)
        self.save()
        wait_engine(client, node)
        code, output = node_docker(client, node, "swarm", "init", "--advertise-addr", self.address)
        if code != 0:
            raise LabError(f"{name}: docker swarm init failed: {output}")
        node.node_id = node_docker(client, node, "info", "--format", "{{.Swarm.NodeID}}")[1]
        self.save()

    def _add_worker(self, client: Any, remote: Any, name: str, token: str) -> None:
        node = LabNode(name=name, volume=f"{name}-docker")
        self.nodes.append(node)
        self.save()
        start_node(client, node, self.image, {LABEL_LAB: self.id}, self.shared)
        self.save()
        wait_engine(client, node)
        join(client, node, token, f"{self.address}:{SWARM_PORT}")
        self.save()
        wait_ready(remote, node)
        label(remote, str(node.node_id), {LABEL_LAB: self.id, LABEL_ROLE: "prosumers"})

    def connect(self, timeout: int = 120) -> Any:
        """A docker.DockerClient of the manager, over TCP with TLS."""
        import docker.tls

        tls = docker.tls.TLSConfig(
            client_cert=(str(self.cert_path / CERT_FILE), str(self.cert_path / KEY_FILE)),
            ca_cert=str(self.cert_path / CA_FILE),
            verify=True,
        )
        return docker_client(self.url, timeout, tls)

    # -- images ---------------------------------------------------------------

    def seed_images(self, client: Any, images: Mapping[str, str], say: Say = _quiet) -> None:
        """Put this engine's `images` ({name: tag}) on the manager's engine under
        the same tags (and ids), through the lab's registry."""
        assert self.registry is not None
        remote = self.connect(timeout=900)
        try:
            for local in images.values():
                ref = self.registry.push(client, local, say)
                repository, _, tag = ref.rpartition(":")
                remote.images.pull(repository, tag=tag)
                name, _, local_tag = local.rpartition(":")
                remote.images.get(ref).tag(name, local_tag)
                say(f"remote lab {self.id}: {local} on the manager")
        finally:
            remote.close()

    # -- down -----------------------------------------------------------------

    def down(self, client: Any, *, strict: bool = True) -> list[str]:
        """Remove the nodes (containers, volumes, cgroup subtrees), the registry
        and the lab's certificates; returns what could not be removed."""
        problems: list[str] = []
        for node in reversed(self.nodes):
            remove_node(client, node, problems)
        if self.registry is not None:
            self.registry.stop()
        if not problems:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.state_file.unlink(missing_ok=True)
        if problems and strict:
            raise LabError(f"remote lab {self.id}: not removed:\n  " + "\n  ".join(problems))
        return problems

    # -- state ----------------------------------------------------------------

    def save(self) -> None:
        data = {
            "id": self.id,
            "image": self.image,
            "address": self.address,
            "nodes": [node.as_dict() for node in self.nodes],
            "shared": self.shared,
            "registry": self.registry.as_dict() if self.registry else None,
        }
        write_json(self.state_file, data)

    @classmethod
    def load(cls, state_dir: Path, lab_id: str) -> RemoteLab:
        data = json.loads((state_dir / "remotelabs" / f"{lab_id}.json").read_text())
        registry = data.get("registry")
        return cls(
            id=data["id"],
            state_dir=state_dir,
            image=data.get("image", ""),
            address=data.get("address", ""),
            nodes=[LabNode.from_dict(n) for n in data.get("nodes", [])],
            shared=list(data.get("shared", [])),
            registry=Registry.from_dict(registry) if registry else None,
        )


def _container_address(client: Any, node: LabNode) -> str:
    """The node container's address on this engine's bridge (polled: it is set
    as the container starts)."""
    deadline = time.monotonic() + ADDRESS_TIMEOUT_SECONDS
    while True:
        container = client.containers.get(node.container or node.name)
        with contextlib.suppress(KeyError, TypeError):
            address = container.attrs["NetworkSettings"]["IPAddress"]
            if address:
                return str(address)
        if time.monotonic() > deadline:
            raise LabError(f"{node.name}: no address after {ADDRESS_TIMEOUT_SECONDS:g} s")
        time.sleep(POLL_SECONDS)
