"""The swarm backend on the swarm lab (tests/swarm_support.py), beyond the
conformance suite: netem on a worker's service is a real round-trip change,
also on a service that publishes a port (on the run's internal network and its
edge network: netem shapes the run's interface, whichever is eth0). (A worker
lost mid-run: test_swarm_node_faults.py.)

Run under `flock /tmp/swarm-dev.lock` (one engine, one swarm)."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.base import Unit
from orchestrator.backends.docker.containers import unit_spec
from orchestrator.backends.swarm.logs import frames, service_logs
from orchestrator.backends.swarm.network import RunNetworks, create_run_networks
from orchestrator.backends.swarm.services import ServiceSpec
from orchestrator.hosts import Netem
from orchestrator.swarm import Lab
from tests.integration.docker_support import wait_for
from tests.swarm_support import docker_engine, docker_images

__all__ = ["docker_engine", "docker_images"]  # swarm_lab, swarm_images: tests/conftest.py

PORT = 8000
DELAY_MS = 40
PROBES = 15
PROBE = f"""\
import statistics, subprocess, time, urllib.request as u
print(subprocess.run(['ip', '-o', '-4', 'addr'], capture_output=True, text=True).stdout)
def get():
    t = time.monotonic(); u.urlopen('http://server:{PORT}/', timeout=30).read()
    return (time.monotonic() - t) * 1000
for _ in range(200):
    try: get(); break
    except OSError: time.sleep(0.2)
print('median_ms=%.2f' % statistics.median(get() for _ in range({PROBES})))
"""
RUN_SECONDS = 300.0


@pytest.fixture
def overlay(docker_engine: Any, swarm_lab: Lab) -> Iterator[Any]:
    name = f"testbed-netemtest-{swarm_lab.id}"
    network = docker_engine.networks.create(
        name, driver="overlay", attachable=True, labels={"testbed.lab": swarm_lab.id}
    )
    made: list[str] = []
    network.made = made
    try:
        yield network
    finally:
        for service in made:
            with contextlib.suppress(Exception):
                docker_engine.api.remove_service(service)
        wait_for("the overlay to go", lambda: _removed(network), timeout=120)


@pytest.fixture
def run_networks(docker_engine: Any, swarm_lab: Lab) -> Iterator[tuple[RunNetworks, list[str]]]:
    """The backend's two networks (network.py); the services made on them."""
    labels = {"testbed.lab": swarm_lab.id}
    networks = create_run_networks(docker_engine, f"nettest-{swarm_lab.id}", labels)
    made: list[str] = []
    try:
        yield networks, made
    finally:
        for service in made:
            with contextlib.suppress(Exception):
                docker_engine.api.remove_service(service)
        for net in (networks.id, networks.edge_id):
            found = docker_engine.networks.get(net)
            wait_for("the overlay to go", lambda n=found: _removed(n), timeout=120)


def _removed(network: Any) -> bool:
    import docker.errors

    try:
        network.remove()
    except docker.errors.NotFound:
        return True
    except docker.errors.APIError:
        return False
    return True


def _service(
    client: Any,
    network: Any,
    image: str,
    unit: str,
    node: str,
    argv: tuple[str, ...],
    netem: Netem,
    ports: dict[int, int] | None = None,
    networks: RunNetworks | None = None,
) -> str:
    """A service built the way the backend builds one (services.py), pinned to `node`
    (with `networks`: on them, as the backend does; `network` names it)."""
    container = unit_spec(
        Unit(unit, "prosumer", argv, Path("/dev/null")),
        "",
        config_dir=Path("/tmp"),
        out_dir=None,
        netem=netem,
    )
    where = (f"node.hostname=={node}",)
    spec = ServiceSpec(container, image, {"testbed.lab": "netem"}, where, ports=ports or {})
    if networks is None:
        template = spec.task_template("netemtest", network.id)
        name, made = f"{network.name}-{unit}", network.made
    else:
        template = spec.task_template(
            "netemtest", networks.id, edge_id=networks.edge_id, subnet=networks.subnet
        )
        name, made = f"{network}-{unit}", []
    created = client.api.create_service(template, name=name, endpoint_spec=spec.endpoint())
    made.append(created["ID"])
    return str(created["ID"])


def _median_ms(client: Any, service: str) -> float:
    def done() -> str | None:
        tasks = client.api.tasks(filters={"service": service})
        states = {t["Status"]["State"] for t in tasks}
        assert not states & {"failed", "rejected"}, tasks[0]["Status"]
        if states != {"complete"}:
            return None
        return b"".join(frames(service_logs(client, service))).decode()

    log = str(wait_for(f"probe {service}", done, timeout=RUN_SECONDS))
    [line] = [line for line in log.splitlines() if "median_ms=" in line]
    return float(line.split("median_ms=")[1])


def test_netem_on_a_workers_service_changes_the_round_trip(
    docker_engine: Any, swarm_lab: Lab, swarm_images: dict[str, str], overlay: Any
) -> None:
    image, (near, far) = swarm_images["agent"], swarm_lab.workers[:2]
    serve = ("python3", "-m", "http.server", str(PORT))
    _service(docker_engine, overlay, image, "server", far, serve, Netem())
    probe = ("python3", "-c", PROBE)
    plain = _service(docker_engine, overlay, image, "plain", near, probe, Netem())
    slowed = _service(docker_engine, overlay, image, "slowed", near, probe, Netem(DELAY_MS))
    base, delayed = _median_ms(docker_engine, plain), _median_ms(docker_engine, slowed)
    # every packet the prober sends waits DELAY_MS: the handshake's and the request's
    logs = b"".join(frames(service_logs(docker_engine, slowed))).decode()
    assert delayed - base >= DELAY_MS * 0.8, (base, delayed, logs)
    assert f"delay {DELAY_MS}ms" in logs, logs[:500]
    assert base < DELAY_MS, base  # the overlay itself adds little


def test_netem_on_a_service_with_a_port_shapes_the_run_networks_interface(
    docker_engine: Any,
    swarm_lab: Lab,
    swarm_images: dict[str, str],
    run_networks: tuple[RunNetworks, list[str]],
) -> None:
    """A service that publishes a port is on the run's internal network and the
    edge network: netem (its entrypoint) shapes the interface on the run's subnet."""
    image, (near, far) = swarm_images["agent"], swarm_lab.workers[:2]
    networks, made = run_networks
    name = f"nettest-{swarm_lab.id}"
    serve = ("python3", "-m", "http.server", str(PORT))
    on = {"networks": networks}
    made.append(_service(docker_engine, name, image, "server", far, serve, Netem(), **on))
    probe = ("python3", "-c", PROBE)
    plain = _service(docker_engine, name, image, "plain", near, probe, Netem(), **on)
    port = 20000 + int(swarm_lab.id.encode().hex(), 16) % 10000  # published on the worker
    slowed = _service(
        docker_engine, name, image, "slowed", near, probe, Netem(DELAY_MS), {port: port}, **on
    )
    made += [plain, slowed]
    base, delayed = _median_ms(docker_engine, plain), _median_ms(docker_engine, slowed)
    logs = b"".join(frames(service_logs(docker_engine, slowed))).decode()
    subnet = ipaddress.ip_network(networks.subnet)
    [run_dev] = [  # `ip -o -4 addr`: "2: eth1    inet 10.214.4.5/22 ..."
        words[1]
        for words in (line.split() for line in logs.splitlines())
        if len(words) > 3 and words[2] == "inet" and ipaddress.ip_interface(words[3]).ip in subnet
    ]
    assert f"delay {DELAY_MS}ms jitter 0ms loss 0% rate 0kbit on {run_dev}" in logs, logs[:800]
    assert delayed - base >= DELAY_MS * 0.8, (base, delayed, logs)
