"""Prometheus finds a run's agents on a real swarm (dockerswarm_sd_configs).

An attachable overlay network of the run and services labelled as the swarm
backend labels them: an agent serving /metrics on the port its service label
names, a service of the run without that label (the chain), an agent of
another run. A real Prometheus service from the testbed's image, on the
manager with the rendered config and the manager's socket, must scrape exactly
this run's agents (labels as on every backend, plus the node) and the
orchestrator's static exporter on this machine.

Twice: on this machine's engine as a single-node swarm (initialised here if it
is not one, and left again right after the test only then), and on the 3-node
lab (tests/swarm_support.py) with an agent on each worker, scraped across the
overlay. Run under `flock /tmp/swarm-dev.lock` (one engine, one swarm).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from orchestrator.backends.local import free_ports
from orchestrator.observability.server import PrometheusApi
from orchestrator.observability.swarmsd import (
    DOCKER_SOCKET,
    LABEL_METRICS_PORT,
    render_swarm_config,
)
from orchestrator.plan import Plan, build_plan
from orchestrator.scenario import build_scenario
from orchestrator.scrapetargets import orchestrator_target
from orchestrator.spec import parse_spec
from orchestrator.swarm import Lab
from tests.integration.docker_support import wait_for
from tests.swarm_support import docker_engine, docker_images

__all__ = [
    "docker_engine",
    "docker_images",
]  # fixtures used below (swarm_lab: tests/conftest.py)

SPEC = """\
name: swarmsd
microgrid:
  dataset: {kind: synthetic, prosumers: [101, 103]}
market: {first_interval: 49, last_interval: 52, prediction_window: 2}
"""
ADVERTISE = "172.17.0.1"  # docker0: where containers (and the lab's nodes) reach this machine
PROBE = (
    "import time, prometheus_client as p; p.start_http_server(PORT); "
    "p.Gauge('testbed_probe', 'a probe').set(7); time.sleep(3600)"
)
TIMEOUT = 300.0  # images pulled by the nodes, a busy machine


@pytest.fixture
def single_node(docker_engine: Any) -> Iterator[Any]:
    """This engine as a swarm manager (left right after the test only if made one here)."""
    swarm = docker_engine.info()["Swarm"]
    made = swarm["LocalNodeState"] != "active"
    if made:
        docker_engine.swarm.init(advertise_addr=ADVERTISE)
    elif not swarm.get("ControlAvailable"):
        pytest.fail("this engine is a swarm worker, not a manager")
    try:
        yield docker_engine
    finally:
        if made:
            docker_engine.swarm.leave(force=True)


def test_prometheus_discovers_exactly_the_runs_agents(
    single_node: Any, docker_images: Any, tmp_path: Path
) -> None:
    here = single_node.info()["Name"]
    images = {"agent": docker_images.agent, "prometheus": docker_images.prometheus}
    scraped = scrape(single_node, images, {"prosumers-01": here}, tmp_path)
    assert scraped == {"prosumers-01": here}


def test_prometheus_on_the_manager_scrapes_agents_on_every_worker(
    swarm_lab: Lab, swarm_images: dict[str, str], docker_engine: Any, tmp_path: Path
) -> None:
    hosts = {f"prosumers-0{i + 1}": worker for i, worker in enumerate(swarm_lab.workers)}
    assert scrape(docker_engine, swarm_images, hosts, tmp_path) == hosts


def scrape(
    client: Any, images: dict[str, str], hosts: dict[str, str], folder: Path
) -> dict[str, str]:
    """Agents `hosts` ({unit: node hostname}) and the decoys as services, a
    Prometheus service on the manager: {agent: node} as Prometheus labels the
    targets it scrapes (each probe's value checked)."""
    run, other = f"sd{uuid.uuid4().hex[:8]}", f"sd{uuid.uuid4().hex[:8]}"
    plan = plan_of(run)
    server, thread = exporter(ADVERTISE)
    static = [orchestrator_target(plan, f"{ADVERTISE}:{server.server_port}")]
    (folder / "prometheus.yml").write_text(
        render_swarm_config(plan, static, interval_seconds=1, refresh_seconds=1)
    )
    network = f"testbed-{run}"
    run_label = {"testbed.run": run}
    net = client.networks.create(network, driver="overlay", attachable=True, labels=run_label)
    made: list[Any] = []
    try:
        for unit, node in hosts.items():
            labels = {"testbed.run": run, "testbed.unit": unit, "testbed.role": "prosumer"}
            labels[LABEL_METRICS_PORT] = "9100"
            made.append(probe(client, images["agent"], f"{network}-{unit}", network, labels, node))
        chain = {"testbed.run": run, "testbed.unit": "chain", "testbed.role": "chain"}
        made.append(probe(client, images["agent"], f"{network}-chain", network, chain))
        decoy = {"testbed.run": other, "testbed.unit": "prosumers-01", LABEL_METRICS_PORT: "9100"}
        made.append(probe(client, images["agent"], f"testbed-{other}-p", network, decoy))
        port = free_ports(1)[0]
        made.append(prometheus(client, images["prometheus"], network, folder, port, run))
        api = PrometheusApi(f"http://127.0.0.1:{port}")
        api.wait_ready(TIMEOUT)
        count = len(hosts) + 1
        up = wait_for("every target up", lambda: _healthy(api, count), timeout=TIMEOUT)
        labels_of = {t["labels"]["agent"]: t["labels"] for t in up}
        assert labels_of["orchestrator"]["job"] == "testbed"
        for unit in hosts:
            labels = labels_of[unit]
            assert (labels["job"], labels["role"]) == ("testbed", "prosumer")
            assert (labels["run_id"], labels["spec"]) == (run, "swarmsd")
        values = wait_for(
            "every probe scraped",
            lambda: _all(api.query(f'testbed_probe{{run_id="{run}"}}'), len(hosts)),
            timeout=TIMEOUT,
        )
        assert sorted(s.finite[0] for s in values) == [7.0] * len(hosts)
        # the chain (no metrics port label) and the other run (both in the same
        # task lists as the agents) are no targets
        found = {t["labels"].get("agent") for t in api.active_targets()}
        assert found == {*hosts, "orchestrator"}
        assert api.query(f'testbed_probe{{run_id="{other}"}}') == []
        return {unit: labels_of[unit]["node"] for unit in hosts}
    finally:
        for service in made:
            service.remove()
        wait_for("the tasks' containers gone", lambda: not _containers(client, run, other), TIMEOUT)
        net.remove()
        server.shutdown()
        thread.join(10)


def plan_of(run_id: str) -> Plan:
    return build_plan(build_scenario(parse_spec(SPEC, source="s.yaml", env={})), "docker", run_id)


def probe(
    client: Any, image: str, name: str, network: str, labels: dict[str, str], node: str = ""
) -> Any:
    from docker.types import EndpointSpec, RestartPolicy

    port = labels.get(LABEL_METRICS_PORT, "9100")
    return client.services.create(
        image,
        command=["python", "-c", PROBE.replace("PORT", port)],
        name=name,
        labels=labels,
        networks=[network],
        constraints=[f"node.hostname=={node}"] if node else [],
        endpoint_spec=EndpointSpec(mode="dnsrr"),
        restart_policy=RestartPolicy(condition="none"),
    )


def prometheus(client: Any, image: str, network: str, folder: Path, port: int, run: str) -> Any:
    from docker.types import EndpointSpec, Mount, RestartPolicy

    return client.services.create(
        image,
        command=[
            "prometheus",
            f"--config.file={folder}/prometheus.yml",
            "--storage.tsdb.path=/tmp/tsdb",
            f"--web.listen-address=0.0.0.0:{port}",
        ],
        name=f"{network}-prometheus",
        labels={"testbed.run": run, "testbed.unit": "prometheus"},
        networks=[network],
        mounts=[
            Mount(str(folder), str(folder), type="bind", read_only=True),
            Mount(DOCKER_SOCKET, DOCKER_SOCKET, type="bind"),
        ],
        constraints=["node.role==manager"],
        endpoint_spec=EndpointSpec(mode="dnsrr", ports={port: (port, "tcp", "host")}),
        restart_policy=RestartPolicy(condition="none"),
    )


def exporter(address: str) -> tuple[Any, Any]:
    """The orchestrator's exporter stand-in: a real HTTP exporter on this machine."""
    registry = CollectorRegistry()
    Gauge("testbed_finalized_interval", "x", registry=registry).set(49)
    return start_http_server(free_ports(1, address)[0], addr=address, registry=registry)


def _healthy(api: PrometheusApi, count: int) -> list[dict[str, Any]] | None:
    targets = [t for t in api.active_targets() if t.get("health") == "up"]
    return targets if len(targets) >= count else None


def _all(series: list[Any], count: int) -> list[Any] | None:
    return series if len(series) >= count else None


def _containers(client: Any, *runs: str) -> list[str]:
    # one list call (the SDK's objects inspect each container: one may be gone by then)
    names = [n for c in client.api.containers(all=True) for n in c.get("Names") or []]
    return [n for n in names if any(run in n for run in runs)]
