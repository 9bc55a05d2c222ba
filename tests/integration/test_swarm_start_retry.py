"""A task that failed to start gets one more try on the swarm lab
(orchestrator/backends/swarm/unitstatus.py), driven through SwarmBackend itself.

Two prosumer hosts of a run prepared on the lab, each a unit of this test's own
(a program that reads its config, a read-only bind mount, and writes into its output
folder, a bind mount from the shared results folder). Both output folders are
removed before the units start, so the engine rejects both tasks ("bind source
path does not exist"), as it would on a node whose share is not mounted yet.
One folder comes back once the engine has rejected its task, before the backend
looks: that unit's second task runs. The other stays missing: the backend
reports it exited after two tries, its log naming the node and the engine's
reason. Run under `flock /tmp/swarm-dev.lock` (one engine, one swarm)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.base import Unit, UnitStatus
from orchestrator.backends.docker.containers import CONFIG_DIR, OUT_DIR
from orchestrator.backends.swarm.backend import SwarmBackend
from orchestrator.backends.swarm.resources import swarm_resources
from orchestrator.backends.swarm.services import service_name
from orchestrator.plan import Plan, build_plan
from orchestrator.results.bundle import Bundle
from orchestrator.scenario import build_scenario
from orchestrator.spec import parse_spec
from orchestrator.swarm import Lab
from tests.integration.docker_support import wait_for
from tests.swarm_support import docker_engine, docker_images

__all__ = ["docker_engine", "docker_images"]  # swarm_lab, swarm_images: tests/conftest.py

SPEC = """\
name: startretry
microgrid:
  dataset: {{kind: synthetic, prosumers: [101, 103]}}
market: {{first_interval: 49, last_interval: 52, prediction_window: 2}}
deployment:
  backend: swarm
  swarm: {{registry: "{registry}", prosumers: ["node.labels.testbed.lab=={lab}"]}}
  hosts: [{{name: prosumers, count: 2}}]
"""
PROGRAM = """\
import json, pathlib, sys, time
note = json.loads(pathlib.Path(sys.argv[1]).read_text())["note"]
pathlib.Path(sys.argv[2], "ran").write_text(note)
print("ran:", note, flush=True)
time.sleep(3600)
"""
TIMEOUT = 240.0  # a busy machine, nodes pulling the image
REJECTED = "bind source path does not exist"


@pytest.fixture
def prepared(
    state_dir: Path, swarm_lab: Lab, swarm_images: dict[str, str], tmp_path: Path
) -> Iterator[tuple[SwarmBackend, Plan, Bundle]]:
    del state_dir, swarm_images  # a fresh state folder; the images in the lab's registry
    assert swarm_lab.registry is not None
    spec = parse_spec(
        SPEC.format(registry=swarm_lab.registry.address, lab=swarm_lab.id), source="s.yaml", env={}
    )
    run_id = f"20261206T000000Z-{tmp_path.name[-4:]}"
    plan = build_plan(build_scenario(spec), "swarm", run_id)
    bundle = Bundle.create(tmp_path / "results", plan.spec_name, run_id)  # shared with the nodes
    backend = SwarmBackend(run_id, deployment=spec.deployment)
    try:
        backend.prepare(plan, bundle.path)
        yield backend, plan, bundle
    finally:
        backend.cleanup()
        assert swarm_resources(backend.client, run_id).get(run_id) is None


def test_a_task_that_failed_to_start_gets_one_more_try(
    prepared: tuple[SwarmBackend, Plan, Bundle], docker_engine: Any
) -> None:
    backend, plan, bundle = prepared
    later, never = sorted(plan.hosts)
    nodes = json.loads((bundle.path / "swarm.json").read_text())["placement"]
    for host in (later, never):
        bundle.config_file(host).write_text(json.dumps({"note": f"{host} ran"}))
        bundle.out_dir(host, "prosumer").rmdir()  # the engine rejects the bind mount
        argv = ("python3", "-c", PROGRAM, f"{CONFIG_DIR}/{host}.json", OUT_DIR)
        backend.start(Unit(host, "prosumer", argv, bundle.log_file(host)))

    def rejected(host: str) -> list[dict[str, Any]]:
        import docker.errors

        try:  # the backend creates its service in the background
            tasks = docker_engine.api.tasks(filters={"service": service_name(backend.run_id, host)})
        except docker.errors.NotFound:
            return []
        return [t for t in tasks if t["Status"]["State"] == "rejected"]

    # the engine rejects both first tasks before the backend looks (no status() yet)
    for host in (later, never):
        [task] = wait_for(f"{host}'s task rejected", partial(rejected, host), TIMEOUT)
        assert REJECTED in task["Status"]["Err"], task["Status"]
    bundle.out_dir(later, "prosumer").mkdir()  # the share is there now, for one of them

    status = backend.status()  # both seen failed to start: a new task each, pending meanwhile
    assert (status[later].state, status[never].state) == ("running", "running"), status

    ran = bundle.out_dir(later, "prosumer") / "ran"
    wait_for(f"{later}'s second task to run", ran.exists, TIMEOUT)
    assert ran.read_text() == f"{later} ran"
    gone: UnitStatus = wait_for(
        f"{never} to fail a second time", lambda: _exited(backend, never), TIMEOUT
    )
    assert gone.returncode is None, gone
    # the run's message says why (not "exited with None"): the engine's reason
    assert (gone.reason or "").startswith("task failed to start 2 times, last: "), gone
    assert "bind source path does not exist" in (gone.reason or ""), gone
    assert backend.status()[later].state == "running"
    assert len(rejected(never)) == 2 and len(rejected(later)) == 1

    again = f'task failed to start (invalid mount config for type "bind": {REJECTED}'
    for host in (later, never):
        log = bundle.log_file(host).read_text()
        line = f"testbed: {host} on node {nodes[host]}: {again}"
        assert f"{line}: {bundle.out_dir(host, 'prosumer')}); starting it once more" in log, log
    last = bundle.log_file(never).read_text().splitlines()[-1]
    assert last.startswith(f"testbed: {never} on node {nodes[never]}: task failed to start 2 "), (
        last
    )
    assert REJECTED in last, last
    # the second task's own output follows the note in its unit's log
    wait_for(
        f"{later}'s output in its log",
        lambda: _has(bundle.log_file(later), f"ran: {later} ran"),
        TIMEOUT,
    )
    backend.stop([later])  # the service of its second task stops as any other
    assert backend.status()[later].state == "exited"


def _has(log: Path, line: str) -> bool:
    return line in log.read_text().splitlines()


def _exited(backend: SwarmBackend, name: str) -> UnitStatus | None:
    status = backend.status()[name]
    return status if status.state == "exited" else None
