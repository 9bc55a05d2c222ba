"""Prometheus finds a run's agents on a real swarm (dockerswarm_sd_configs).

This machine's engine as a single-node swarm (initialised here if it is not
one, and left again only then), an attachable overlay network of the run, and
services labelled as the swarm backend labels them: an agent serving /metrics
on the port its service label names, a service of the run without that label
(the chain), an agent of another run. A real Prometheus service from the
testbed's image, with the rendered config and the manager's socket, must
scrape exactly this run's agent (labels as on every backend) and the
orchestrator's static exporter. Run under `flock /tmp/swarm-dev.lock` while
other swarm tests may run on the same engine.
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
from orchestrator.observability.targets import orchestrator_target
from orchestrator.plan import Plan, build_plan
from orchestrator.scenario import build_scenario
from orchestrator.spec import parse_spec
from tests.integration.docker_support import docker_engine, docker_images, wait_for

__all__ = ["docker_engine", "docker_images"]  # fixtures used below

SPEC = """\
name: swarmsd
microgrid:
  dataset: {kind: synthetic, prosumers: [101, 103]}
market: {first_interval: 49, last_interval: 52, prediction_window: 2}
"""
ADVERTISE = "172.17.0.1"  # docker0: where containers reach this machine
PROBE = (
    "import time, prometheus_client as p; p.start_http_server(PORT); "
    "p.Gauge('testbed_probe', 'a probe').set(7); time.sleep(3600)"
)


@pytest.fixture(scope="module")
def manager(docker_engine: Any) -> Iterator[Any]:
    """This engine as a swarm manager (left at the end only if made one here)."""
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


def plan_of(run_id: str) -> Plan:
    return build_plan(build_scenario(parse_spec(SPEC, source="s.yaml", env={})), "docker", run_id)


def probe_service(client: Any, image: str, name: str, network: str, labels: dict[str, str]) -> Any:
    from docker.types import EndpointSpec, RestartPolicy

    port = labels.get(LABEL_METRICS_PORT, "9100")
    return client.services.create(
        image,
        command=["python", "-c", PROBE.replace("PORT", port)],
        name=name,
        labels=labels,
        networks=[network],
        endpoint_spec=EndpointSpec(mode="dnsrr"),
        restart_policy=RestartPolicy(condition="none"),
    )


def prometheus_service(
    client: Any, image: str, name: str, network: str, folder: Path, port: int, run_id: str
) -> Any:
    from docker.types import EndpointSpec, Mount, RestartPolicy

    return client.services.create(
        image,
        command=[
            "prometheus",
            f"--config.file={folder}/prometheus.yml",
            "--storage.tsdb.path=/tmp/tsdb",
            f"--web.listen-address=0.0.0.0:{port}",
        ],
        name=name,
        labels={"testbed.run": run_id, "testbed.unit": "prometheus"},
        networks=[network],
        mounts=[
            Mount(str(folder), str(folder), type="bind", read_only=True),
            Mount(DOCKER_SOCKET, DOCKER_SOCKET, type="bind"),
        ],
        constraints=["node.role==manager"],
        endpoint_spec=EndpointSpec(mode="dnsrr", ports={port: (port, "tcp", "host")}),
        restart_policy=RestartPolicy(condition="none"),
    )


def exporter(address: str) -> int:
    """The orchestrator's exporter stand-in: a real HTTP exporter on this machine."""
    registry = CollectorRegistry()
    Gauge("testbed_finalized_interval", "x", registry=registry).set(49)
    port = free_ports(1, address)[0]
    start_http_server(port, addr=address, registry=registry)
    return port


def test_prometheus_discovers_exactly_the_runs_agents(
    manager: Any, docker_images: Any, tmp_path: Path
) -> None:
    run, other = f"sd{uuid.uuid4().hex[:8]}", f"sd{uuid.uuid4().hex[:8]}"
    plan = plan_of(run)
    exporter_port = exporter(ADVERTISE)
    static = [orchestrator_target(plan, f"{ADVERTISE}:{exporter_port}")]
    (tmp_path / "prometheus.yml").write_text(
        render_swarm_config(plan, static, interval_seconds=1, refresh_seconds=1)
    )
    network = f"testbed-{run}"
    made: list[Any] = []
    net = manager.networks.create(
        network, driver="overlay", attachable=True, labels={"testbed.run": run}
    )
    try:
        agent = {"testbed.run": run, "testbed.unit": "prosumers-01", "testbed.role": "prosumer"}
        made.append(
            probe_service(
                manager, docker_images.agent, f"testbed-{run}-prosumers-01", network,
                {**agent, LABEL_METRICS_PORT: "9100"},
            )
        )  # fmt: skip
        made.append(
            probe_service(
                manager, docker_images.agent, f"testbed-{run}-chain", network,
                {"testbed.run": run, "testbed.unit": "chain", "testbed.role": "chain"},
            )
        )  # fmt: skip
        made.append(
            probe_service(
                manager, docker_images.agent, f"testbed-{other}-prosumers-01", network,
                {**agent, "testbed.run": other, LABEL_METRICS_PORT: "9100"},
            )
        )  # fmt: skip
        port = free_ports(1)[0]
        made.append(
            prometheus_service(
                manager, docker_images.prometheus, f"testbed-{run}-prometheus", network,
                tmp_path, port, run,
            )
        )  # fmt: skip
        api = PrometheusApi(f"http://127.0.0.1:{port}")
        api.wait_ready(300)
        up = wait_for("both targets up", lambda: _healthy(api, 2), timeout=180)
        by_agent = {t["labels"]["agent"]: t["labels"] for t in up}
        assert set(by_agent) == {"prosumers-01", "orchestrator"}
        labels = by_agent["prosumers-01"]
        assert labels["job"] == "testbed" and labels["role"] == "prosumer"
        assert (labels["run_id"], labels["spec"]) == (run, "swarmsd")
        assert labels["node"] == manager.info()["Name"]
        assert by_agent["orchestrator"]["job"] == "testbed"
        probe = wait_for("the probe scraped", lambda: api.query(f'testbed_probe{{run_id="{run}"}}'))
        assert [s.finite for s in probe] == [[7.0]]
        # the chain (no metrics port label) and the other run (discovered in the
        # same task list as the agent) are no targets
        found = {t["labels"].get("agent") for t in api.active_targets()}
        assert found == {"prosumers-01", "orchestrator"}
        assert api.query(f'testbed_probe{{run_id="{other}"}}') == []
    finally:
        for service in made:
            service.remove()
        wait_for("the tasks' containers gone", lambda: not _containers(manager, run, other), 120)
        net.remove()


def _healthy(api: PrometheusApi, count: int) -> list[dict[str, Any]] | None:
    targets = [t for t in api.active_targets() if t.get("health") == "up"]
    return targets if len(targets) >= count else None


def _containers(client: Any, *runs: str) -> list[str]:
    names = [c.name for c in client.containers.list(all=True)]
    return [n for n in names if any(run in n for run in runs)]
