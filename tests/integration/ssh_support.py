"""Fixtures of the ssh backend's tests: boards are containers running OpenSSH
(key-only logins as `testbed`) from images/board (the offline base image +
openssh-server), on a private Docker network made for the test session.

`ssh_boards`: two boards for the whole session (their virtualenvs are built
by the first run and reused), a client key pair and a known_hosts file with
their host keys, read from the boards over the network the way ssh-keyscan
does. Everything the fixtures create carries the docker backend's run labels
(testbed.run=<session id>, this process as orchestrator, the state directory):
removed at the end of the session, or by `testbed clean` if pytest was killed.
"""

from __future__ import annotations

import contextlib
import io
import secrets
import socket
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
import pytest

from orchestrator.backends.base import state_root
from orchestrator.backends.docker.engine import (
    LABEL_ORCHESTRATOR,
    LABEL_RUN,
    LABEL_STATE,
    orchestrator_label,
)
from orchestrator.images.base import LABEL_IMAGE, LABEL_INPUTS, ensure_offline_base
from orchestrator.images.inputs import Digest
from tests.conftest import REPO
from tests.integration.docker_support import BUILD_LOG, docker_engine

__all__ = ["docker_engine"]

BOARD_DIR = REPO / "images" / "board"
BOARD_USER = "testbed"
SSH_READY_SECONDS = 60.0


@dataclass
class Board:
    name: str
    address: str
    container: Any

    def host_entry(self, key_file: Path, **extra: Any) -> str:
        fields = {"name": self.name, "address": self.address, "user": BOARD_USER}
        fields.update({"key_file": str(key_file), **extra})
        return "{" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"


@dataclass
class SshLab:
    """The session's boards, keys and network."""

    client: Any
    session: str
    network: Any
    gateway: str
    image: str
    key_file: Path
    public_key: str
    known_hosts: Path
    wrong_key_file: Path
    labels: dict[str, str] = field(default_factory=dict)
    boards: list[Board] = field(default_factory=list)
    # one login per board for the tests' own checks, kept open (polls are many)
    logins: dict[str, paramiko.SSHClient] = field(default_factory=dict)

    def overrides(self, boards: list[Board] | None = None, **ssh: Any) -> list[str]:
        """--set lines that point a spec at `boards` (default: the first two)."""
        chosen = boards if boards is not None else self.boards[:2]
        hosts = ", ".join(b.host_entry(self.key_file) for b in chosen)
        lines = [
            "deployment.backend=ssh",
            f"deployment.hosts=[{hosts}]",
            f"deployment.ssh.known_hosts={self.known_hosts}",
            "deployment.ssh.connect_timeout_seconds=5",
        ]
        return lines + [f"deployment.ssh.{k}={v}" for k, v in ssh.items()]

    def start_board(self, name: str) -> Board:
        container = self.client.containers.run(
            self.image,
            name=f"testbed-ssh-{self.session}-{name}",
            hostname=name,
            detach=True,
            init=True,
            environment={"TESTBED_AUTHORIZED_KEY": self.public_key},
            labels={**self.labels, "testbed.unit": name},
            network=self.network.name,
        )
        container.reload()
        address = container.attrs["NetworkSettings"]["Networks"][self.network.name]["IPAddress"]
        board = Board(name, address, container)
        wait_for_sshd(address)
        key = scan_host_key(address)
        with open(self.known_hosts, "a") as f:
            f.write(f"{address} {key.get_name()} {key.get_base64()}\n")
        self.boards.append(board)
        return board

    def ssh(self, board: Board, command: str) -> str:
        """Run a command on a board (as the tests' own check, outside the backend)."""
        client = self.logins.get(board.name)
        transport = client.get_transport() if client is not None else None
        if client is None or transport is None or not transport.is_active():
            client = self.logins[board.name] = self._client(board)
        _, stdout, _ = client.exec_command(command, timeout=30)
        return str(stdout.read().decode())

    def close(self) -> None:
        for client in self.logins.values():
            client.close()
        self.logins.clear()

    def put_dir(self, board: Board, local: Path, remote: str) -> None:
        """Copy the files of `local` into `remote` (created) on a board."""
        self.ssh(board, f"mkdir -p {remote}")
        client = self._client(board)
        try:
            sftp = client.open_sftp()
            for path in sorted(local.iterdir()):
                if path.is_file():
                    sftp.put(str(path), f"{remote}/{path.name}")
        finally:
            client.close()

    def _client(self, board: Board) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            board.address,
            username=BOARD_USER,
            key_filename=str(self.key_file),
            allow_agent=False,
            look_for_keys=False,
            timeout=10,
        )
        return client

    def agent_processes(self, board: Board) -> list[str]:
        """Command lines of the testbed's agent processes running on `board`."""
        out = self.ssh(board, "ps -eo args=")
        return [line for line in out.splitlines() if "-m agents" in line and "ps -eo" not in line]


def wait_for_sshd(address: str, timeout: float = SSH_READY_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, 22), timeout=2) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"sshd on {address} did not answer in {timeout} s"
        time.sleep(0.2)


def scan_host_key(address: str, port: int = 22) -> paramiko.PKey:
    """The host key a server presents (what ssh-keyscan prints)."""
    transport = paramiko.Transport((address, port))
    try:
        transport.start_client(timeout=10)
        return transport.get_remote_server_key()
    finally:
        transport.close()


def board_image(client: Any) -> str:
    """testbed/board:<hash of its inputs>, built on the offline base when missing."""
    import docker.errors

    base = ensure_offline_base(client, BUILD_LOG.append)
    files = sorted(p for p in BOARD_DIR.iterdir() if p.is_file())
    digest = Digest().add("base", base.encode())
    for path in files:
        digest.add_file(path.name, path)
    tag = f"testbed/board:{digest.hexdigest()}"
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(tag)
        return tag
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for path in files:
            tar.add(path, arcname=path.name)
    context.seek(0)
    version = tag.partition(":")[2]
    client.images.build(
        fileobj=context,
        custom_context=True,
        tag=tag,
        buildargs={"BASE": base},
        labels={LABEL_IMAGE: "board", LABEL_INPUTS: version},
        rm=True,
        forcerm=True,
    )
    return tag


def write_key(path: Path) -> str:
    """A new RSA key pair at `path` (private, OpenSSH's PEM); returns the public line."""
    key = paramiko.RSAKey.generate(2048)
    key.write_private_key_file(str(path))
    path.chmod(0o600)
    return f"{key.get_name()} {key.get_base64()} testbed-tests"


@pytest.fixture(scope="session")
def ssh_lab(docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshLab]:
    client = docker_engine
    session = f"ssh-tests-{secrets.token_hex(4)}"
    keys = tmp_path_factory.mktemp("ssh-keys")
    key_file, wrong_key = keys / "id_rsa", keys / "wrong_rsa"
    public = write_key(key_file)
    write_key(wrong_key)
    known_hosts = keys / "known_hosts"
    known_hosts.write_text("")
    image = board_image(client)
    # the docker backend's run labels: `testbed clean` removes them if pytest is killed
    labels = {
        LABEL_RUN: session,
        LABEL_ORCHESTRATOR: orchestrator_label(),
        LABEL_STATE: str(state_root().resolve()),
    }
    network = client.networks.create(f"testbed-{session}", driver="bridge", labels=labels)
    network.reload()
    gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
    lab = SshLab(
        client, session, network, gateway, image, key_file, public, known_hosts, wrong_key, labels
    )
    try:
        lab.start_board("board-1")
        lab.start_board("board-2")
        yield lab
    finally:
        lab.close()
        for c in client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={session}"}):
            with contextlib.suppress(Exception):
                c.remove(force=True)
        with contextlib.suppress(Exception):
            network.remove()
