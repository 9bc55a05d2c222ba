"""The swarm backend's short task listing (orchestrator/backends/swarm/tasks.py) on
the swarm lab: between two whole listings the manager is asked only for the tasks
that ended, and a task that exits on a worker is among them (its desired state is
`shutdown`), a task still running is not.

Run under `flock /tmp/swarm-dev.lock` (one engine, one swarm)."""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path
from typing import Any

from orchestrator.backends.swarm.tasks import ENDED, Listing, Record, newest_tasks
from orchestrator.swarm import Lab
from tests.integration.docker_support import wait_for
from tests.swarm_support import docker_engine, docker_images

__all__ = ["docker_engine", "docker_images"]  # swarm_lab, swarm_images: tests/conftest.py

DEADLINE_SECONDS = 180.0


def _service(client: Any, image: str, run: str, worker: str, argv: list[str]) -> str:
    created = client.api.create_service(
        {
            "ContainerSpec": {"Image": image, "Args": argv},
            "RestartPolicy": {"Condition": "none"},
            "Placement": {"Constraints": [f"node.hostname=={worker}"]},
        },
        name=f"{run}-{argv[0]}",
        labels={"testbed.run": run},
        mode={"replicated": {"Replicas": 1}},
    )
    return str(created["ID"])


def record(service_id: str) -> Record:
    """What the listing reads of a backend's record: its service id, not done."""
    return Record(None, Path("/dev/null"), None, service_id=service_id)  # type: ignore[arg-type]


def test_an_exited_task_is_in_the_short_listing_and_a_running_one_is_not(
    docker_engine: Any, swarm_lab: Lab, swarm_images: dict[str, str]
) -> None:
    run, worker = f"listing-{secrets.token_hex(3)}", swarm_lab.workers[0]
    image = swarm_images["agent"]
    made: list[str] = []
    try:
        made.append(_service(docker_engine, image, run, worker, ["false"]))
        made.append(_service(docker_engine, image, run, worker, ["sleep", "3600"]))
        exits, runs = (record(s) for s in made)

        def both_seen() -> dict[str, dict[str, Any]] | None:
            whole = newest_tasks(docker_engine, [exits, runs], run_id=run)
            states = {s: t["Status"]["State"] for s, t in whole.items()}
            return whole if states == {made[0]: "failed", made[1]: "running"} else None

        wait_for("one task failed, the other running", both_seen, timeout=DEADLINE_SECONDS)
        # asked by the run's label or by the services' ids, the same tasks
        assert newest_tasks(docker_engine, [exits, runs]).keys() == set(made)
        ended = newest_tasks(docker_engine, [exits, runs], desired=ENDED, run_id=run)
        assert set(ended) == {made[0]}
        assert ended[made[0]]["Status"]["ContainerStatus"]["ExitCode"] == 1
        assert newest_tasks(docker_engine, [runs], desired=ENDED, run_id=run) == {}
        # the backend's listing: the whole one first, then (within its time) the short one
        listing = Listing(docker_engine, run)
        tasks, lost = listing.current([exits, runs])
        assert tasks[made[0]]["Status"]["State"] == "failed" and lost == {}
        tasks, _ = listing.current([exits, runs])
        assert tasks[made[1]]["Status"]["State"] == "running"
    finally:
        for service in made:
            with contextlib.suppress(Exception):
                docker_engine.api.remove_service(service)
