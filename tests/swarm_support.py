"""The swarm tests' lab: a real 3-node Docker Swarm on this machine, made once per
test session and removed at its end (also when a test fails).

`swarm_lab`: this machine's engine as manager (made one if it was not, and left
again at the end only then), two worker nodes (containers running their own
dockerd, labelled `testbed.lab=<id>`, `testbed.role=prosumers`) and a private
registry (TLS, on a free port of docker0's address). The session's temporary
folder (every test's tmp_path lies under it) is mounted at the same path in every
node, so a run's results folder under tmp_path is shared as NFS would share it.

`swarm_images`: the testbed's images (docker_images) pushed to the lab's
registry once per session: {kind: reference every node can pull}.

Every swarm test session runs under `flock /tmp/swarm-dev.lock`: the machine
has one engine, hence one swarm. If pytest is killed, `testbed lab down <id>`
(the id is printed at the start) removes the lab.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.backends.base import state_root
from orchestrator.images import ImageSet
from orchestrator.swarm import Lab
from orchestrator.swarm.registry import docker0_address
from tests.conftest import require
from tests.integration.docker_support import docker_engine, docker_images

__all__ = ["docker_engine", "docker_images", "swarm_images", "swarm_lab"]

# resolved at import, before any test's monkeypatched TESTBED_STATE_DIR:
# `testbed lab down` finds the lab here if the session is killed
STATE_DIR = state_root()
WORKERS = 2
LAB_LOG: list[str] = []


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def swarm_lab(docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require(_is_root(), "root (the lab's nodes need cgroups and /etc/docker/certs.d)")
    host = docker0_address(docker_engine)
    lab = Lab.up(
        docker_engine,
        STATE_DIR,
        workers=WORKERS,
        shared=[tmp_path_factory.getbasetemp()],
        registry_port=free_port(host),
        say=LAB_LOG.append,
    )
    print(f"\nswarm lab {lab.id} up ({lab.timings}); if killed: testbed lab down {lab.id}")
    try:
        yield lab
    finally:
        problems = lab.down(docker_engine, say=LAB_LOG.append, strict=False)
        if problems:
            print(f"swarm lab {lab.id}: left behind: {problems}", file=sys.stderr)


@pytest.fixture(scope="session")
def swarm_images(swarm_lab: Lab, docker_images: ImageSet, docker_engine: Any) -> dict[str, str]:
    assert swarm_lab.registry is not None
    images = {kind: docker_images.of(kind) for kind in ("agent", "chain", "prometheus")}
    return swarm_lab.registry.push_images(docker_engine, images, say=LAB_LOG.append)


def _is_root() -> bool:
    import os

    return os.geteuid() == 0
