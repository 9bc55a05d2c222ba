"""The swarm backend's pull-ahead (orchestrator/backends/swarm/prepull.py) on the
swarm lab: a global job puts the agent image on every worker, which did not have it.

Run under `flock /tmp/swarm-dev.lock` (one engine, one swarm)."""

from __future__ import annotations

import contextlib
from typing import Any

from orchestrator.backends.swarm.prepull import prepull, pulled
from orchestrator.swarm import Lab
from tests.integration.docker_support import wait_for
from tests.swarm_support import docker_engine, docker_images

__all__ = ["docker_engine", "docker_images"]  # swarm_lab, swarm_images: tests/conftest.py

PULL_SECONDS = 300.0


def test_prepull_puts_the_agent_image_on_every_worker(
    docker_engine: Any, swarm_lab: Lab, swarm_images: dict[str, str]
) -> None:
    ref = swarm_images["agent"]
    for worker in swarm_lab.workers:  # as on a fresh node
        swarm_lab.node_docker(docker_engine, worker, "image", "rm", "--force", ref)
        assert swarm_lab.node_docker(docker_engine, worker, "image", "inspect", ref)[0] != 0
    service = prepull(docker_engine, f"prepull-{swarm_lab.id}", ref, {"testbed.lab": swarm_lab.id})
    try:
        workers = {node.node_id for node in swarm_lab.nodes}

        def done() -> dict[str, str] | None:
            states = {n: s for n, s in pulled(docker_engine, service).items() if n in workers}
            assert not {"failed", "rejected"} & set(states.values()), states
            finished = set(states) == workers and set(states.values()) == {"complete"}
            return states if finished else None

        wait_for("the pull job on every node", done, timeout=PULL_SECONDS)
        for worker in swarm_lab.workers:
            code, out = swarm_lab.node_docker(docker_engine, worker, "image", "inspect", ref)
            assert code == 0, f"{worker}: {out}"
    finally:
        with contextlib.suppress(Exception):
            docker_engine.api.remove_service(service)
