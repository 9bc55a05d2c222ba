"""Node faults on the real 3-node swarm lab (tests/swarm_support.py): a worker's
engine stopped mid-run, scheduled (`faults:` action stop: the run goes on
without the prosumer host it carried and ends 0) and not scheduled (the test
kills its node container: exit 3 naming the node and the host). Either way the
run tears down and, once the node is back, nothing labelled with the run is
left on any node. And the node operations a scheduled `drain` / `stop` uses
(nodefaults.py) against the real manager.

The stopped worker is started again after each test (the session's other swarm
tests need it). Run under `flock /tmp/swarm-dev.lock`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.base import BackendError
from orchestrator.backends.swarm import nodefaults
from orchestrator.run import EXIT_AGENT_FAILED, EXIT_OK, RunOptions, run
from orchestrator.swarm import Lab
from tests.conformance.oracle import SMOKE
from tests.conformance.targets import SwarmTarget
from tests.conftest import start_cli
from tests.integration.docker_support import bundle_of, wait_for
from tests.swarm_support import docker_engine, docker_images

__all__ = [
    "docker_engine",
    "docker_images",
]  # fixtures used below (swarm_lab: tests/conftest.py)

RUN_SECONDS = 600.0  # generous: a busy 2-core machine, three engines
NODE_SECONDS = 300.0  # a stopped node seen Down, a killed one Ready again (its dockerd recovers)
LONG = ["market.first_interval=40", "market.last_interval=70"]
GWBRIDGE = ("network", "inspect", "docker_gwbridge", "--format", "{{json .Containers}}")


@pytest.fixture
def target(
    state_dir: Path,
    docker_engine: Any,
    swarm_lab: Lab,
    swarm_images: dict[str, str],
    tmp_path: Path,
) -> Iterator[SwarmTarget]:
    del swarm_images  # pushed once per session
    yield SwarmTarget(state_dir, docker_engine, swarm_lab, tmp_path.name[-12:])
    for worker in swarm_lab.workers:  # whatever a test stopped comes back
        start_worker(docker_engine, swarm_lab, worker)


def start_worker(client: Any, lab: Lab, worker: str) -> None:
    """Start the worker's node container (if stopped) and wait until it is Ready."""
    container = client.containers.get(worker)
    if container.status != "running":
        container.start()
    node_id = next(n.node_id for n in lab.nodes if n.name == worker)
    wait_for(
        f"{worker} Ready",
        lambda: client.nodes.get(node_id).attrs["Status"]["State"] == "ready",
        NODE_SECONDS,
    )


def hosts_on(bundle: Path, worker: str) -> list[str]:
    info = json.loads((bundle / "swarm.json").read_text())
    return sorted(host for host, where in info["hosts"].items() if where["node"] == worker)


def nothing_left(target: SwarmTarget, run_id: str) -> None:
    """Once every node is back: nothing of the run on the manager or any worker."""
    wait_for("the run's leftovers to go", lambda: not target.leftovers(run_id), NODE_SECONDS)


def test_a_scheduled_node_stop_loses_its_host_and_the_run_goes_on(
    target: SwarmTarget, swarm_lab: Lab, docker_engine: Any, tmp_path: Path
) -> None:
    victim = swarm_lab.workers[0]
    fault = f"faults=[{{at_interval: 51, action: stop, node: {victim}, note: scheduled}}]"
    overrides = [*target.smoke_overrides, fault]
    result = run(RunOptions(spec=SMOKE, overrides=overrides, out=tmp_path / "results"))
    assert result.exit_code == EXIT_OK, result.outcome
    lost = hosts_on(result.bundle, victim)
    assert len(lost) == 1  # the default placement spread the two hosts over the workers
    faults = result.summary["faults"]
    assert faults["lost_with_nodes"] == {victim: lost}
    assert faults["actions_applied"] == 1 and faults["crashed"] == []
    assert set(lost) <= set(faults["down_at_end"])
    (record,) = [
        json.loads(line)
        for line in (result.bundle / "faults.jsonl").read_text().splitlines()
        if '"node"' in line
    ]
    assert (record["action"], record["node"], record["ok"]) == ("stop", victim, True)
    assert record["clock_interval"] == 51 and record["note"] == "scheduled"
    start_worker(docker_engine, swarm_lab, victim)
    nothing_left(target, result.bundle.name)


def test_an_unscheduled_node_loss_is_exit_3_naming_node_and_host(
    target: SwarmTarget, swarm_lab: Lab, docker_engine: Any, tmp_path: Path
) -> None:
    victim = swarm_lab.workers[1]
    out = tmp_path / "results"
    argv = ["run", str(SMOKE), "--out", str(out)]
    for line in [*target.smoke_overrides, *LONG]:
        argv += ["--set", line]
    env = {**os.environ, "TESTBED_STATE_DIR": str(target.state)}
    with (tmp_path / "stdout").open("w") as stdout, (tmp_path / "stderr").open("w") as stderr:
        proc = start_cli(*argv, env=env, stdout=stdout, stderr=stderr)
    try:
        bundle = wait_for("the first finalized interval", lambda: finalized(proc, out), RUN_SECONDS)
        # the hosts publish no port: their readiness came through the one metrics gateway
        services = docker_engine.api.services(filters={"label": f"testbed.run={bundle.name}"})
        ports = {s["Spec"]["Labels"]["testbed.unit"]: published(s) for s in services}
        assert {h: ports[h] for h in target.hosts} == {h: [] for h in target.hosts}
        assert len(ports["metrics-gateway"]) == 1 and ports["dso"], ports
        check_networks(docker_engine, swarm_lab, services, target.hosts)
        # its engine gone at once, as when a board loses power: nothing on it can
        # still report its tasks' exits to the manager, which sees the node Down
        docker_engine.containers.get(victim).kill()
        proc.wait(timeout=RUN_SECONDS)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=RUN_SECONDS)
    stderr_text = (tmp_path / "stderr").read_text()
    assert proc.returncode == EXIT_AGENT_FAILED, stderr_text[-3000:]
    (host,) = hosts_on(bundle, victim)
    summary = json.loads((bundle / "summary.json").read_text())
    assert summary["status"] == "agent_failed"
    message = summary["outcome"]["message"]
    assert message == f"node {victim}: lost (down or drained), with {host}", message
    assert f"node {victim}" in stderr_text
    assert summary["offers"] > 0  # what was recorded is kept
    start_worker(docker_engine, swarm_lab, victim)
    nothing_left(target, bundle.name)


def check_networks(client: Any, lab: Lab, services: list[Any], hosts: tuple[str, ...]) -> None:
    """The hosts are on the run's internal network alone: no endpoint on their
    node's gateway bridge; the DSO publishes a port: on the edge network too."""
    tasks = {}
    for service in services:
        unit = service["Spec"]["Labels"]["testbed.unit"]
        if unit in (*hosts, "dso"):
            running = {"service": service["ID"], "desired-state": "running"}
            [tasks[unit]] = client.api.tasks(filters=running)
    for host in hosts:
        [net] = tasks[host]["NetworksAttachments"]
        assert net["Network"]["Spec"].get("Internal") is True, net
        worker = next(n.name for n in lab.nodes if n.node_id == tasks[host]["NodeID"])
        code, out = lab.node_docker(client, worker, *GWBRIDGE)
        if code != 0:  # a node where no task ever had a way out has no gateway bridge
            assert "no such network" in out.lower(), out
            continue
        container = tasks[host]["Status"]["ContainerStatus"]["ContainerID"]
        assert container not in json.loads(out), out
    names = {n["Network"]["Spec"]["Name"] for n in tasks["dso"]["NetworksAttachments"]}
    run_id = services[0]["Spec"]["Labels"]["testbed.run"]
    assert names == {f"testbed-{run_id}", f"testbed-{run_id}-edge"}, names
    # Prometheus keeps a task's address on the network labelled with the run (swarmsd.py)
    edge = client.api.inspect_network(f"testbed-{run_id}-edge")["Labels"]
    assert "testbed.run" not in edge and edge["testbed.edge_of"] == run_id, edge
    assert client.api.inspect_network(f"testbed-{run_id}")["Labels"]["testbed.run"] == run_id


def published(service: dict[str, Any]) -> list[int]:
    return [p["PublishedPort"] for p in service["Spec"].get("EndpointSpec", {}).get("Ports", [])]


def finalized(proc: subprocess.Popen[str], out: Path) -> Path | None:
    if proc.poll() is not None:
        raise AssertionError(f"testbed run ended early ({proc.returncode})")
    bundle = bundle_of(out)
    if bundle is None:
        return None
    path = bundle / "events" / "finalizations.csv"
    return bundle if path.exists() and len(path.read_text().splitlines()) > 1 else None


def test_nodes_are_found_drained_and_refused_as_the_manager_names_them(
    swarm_lab: Lab, docker_engine: Any
) -> None:
    worker = swarm_lab.workers[0]
    node_id = str(next(n.node_id for n in swarm_lab.nodes if n.name == worker))
    assert nodefaults.find_node(docker_engine, worker) == (node_id, worker)
    assert nodefaults.find_node(docker_engine, node_id[:12]) == (node_id, worker)
    with pytest.raises(BackendError, match="no swarm node 'nope' \\(nodes: "):
        nodefaults.find_node(docker_engine, "nope")
    # this machine's engine is no lab node: it is never stopped from here
    manager = docker_engine.info()["Name"]
    with pytest.raises(BackendError, match=f"node {manager}: only a lab node's engine"):
        nodefaults.stop_engine(docker_engine, manager)
    try:
        assert nodefaults.drain(docker_engine, worker) == (node_id, worker)
        spec = docker_engine.api.inspect_node(node_id)["Spec"]
        assert spec["Availability"] == "drain"
        assert spec["Labels"] == swarm_lab.labels  # the rest of its spec kept
    finally:
        node = docker_engine.api.inspect_node(node_id)
        active = {**node["Spec"], "Availability": "active"}
        docker_engine.api.update_node(node_id, node["Version"]["Index"], active)
