"""The swarm backend on the swarm lab (tests/swarm_support.py), beyond the
conformance suite: netem on a worker's service is a real round-trip change, and
a worker whose engine stops mid-run is reported by name, the run torn down,
nothing labelled left on any node once it is back.

Run under `flock /tmp/swarm-dev.lock` (one engine, one swarm)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator import run as run_module
from orchestrator.backends.base import Unit
from orchestrator.backends.docker.containers import unit_spec
from orchestrator.backends.swarm.logs import frames, service_logs
from orchestrator.backends.swarm.services import ServiceSpec
from orchestrator.hosts import Netem
from orchestrator.run import RunOptions, RunResult, run
from orchestrator.swarm import Lab
from tests.conformance.oracle import SMOKE, finalizations
from tests.conformance.targets import SwarmTarget
from tests.integration.docker_support import bundle_of, wait_for
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
LONG = ["market.first_interval=40", "market.last_interval=90"]


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
    client: Any, network: Any, image: str, unit: str, node: str, argv: tuple[str, ...], netem: Netem
) -> str:
    """A service built the way the backend builds one (services.py), pinned to `node`."""
    container = unit_spec(
        Unit(unit, "prosumer", argv, Path("/dev/null")),
        "",
        config_dir=Path("/tmp"),
        out_dir=None,
        netem=netem,
    )
    spec = ServiceSpec(container, image, {"testbed.lab": "netem"}, (f"node.hostname=={node}",))
    created = client.api.create_service(
        spec.task_template("netemtest", network.id),
        name=f"{network.name}-{unit}",
        endpoint_spec=spec.endpoint(),
    )
    network.made.append(created["ID"])
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


@pytest.fixture
def swarm_target(
    state_dir: Path,
    docker_engine: Any,
    swarm_lab: Lab,
    swarm_images: dict[str, str],
    tmp_path: Path,
) -> SwarmTarget:
    del swarm_images  # in the lab's registry: the runs push nothing new
    return SwarmTarget(state_dir, docker_engine, swarm_lab, tmp_path.name[-12:])


def test_a_worker_lost_mid_run_is_named_and_nothing_is_left(
    docker_engine: Any, swarm_lab: Lab, swarm_target: SwarmTarget, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    overrides = [*swarm_target.overrides, *LONG]
    box: dict[str, RunResult] = {}
    thread = threading.Thread(
        target=lambda: box.update(result=run(RunOptions(SMOKE, overrides, out=out))), daemon=True
    )
    thread.start()

    def started() -> Path | None:
        assert thread.is_alive(), box["result"].outcome.message
        bundle = bundle_of(out)
        return bundle if finalizations(bundle) >= 1 else None

    bundle = wait_for("the first finalized interval", started, timeout=RUN_SECONDS)
    # the hosts publish no port: their readiness came through the one metrics gateway
    services = docker_engine.api.services(filters={"label": f"testbed.run={bundle.name}"})
    ports = {s["Spec"]["Labels"]["testbed.unit"]: _published(s) for s in services}
    assert {h: ports[h] for h in swarm_target.hosts} == {h: [] for h in swarm_target.hosts}
    assert len(ports["metrics-gateway"]) == 1 and ports["dso"], ports
    placement = json.loads((bundle / "swarm.json").read_text())["placement"]
    host = swarm_target.hosts[0]
    node = placement[host]
    assert node in swarm_lab.workers
    lost = docker_engine.containers.get(node)
    lost.stop(timeout=5)  # the node's engine stops with its container
    try:
        thread.join(timeout=RUN_SECONDS)
        assert not thread.is_alive(), "the run did not end after losing a node"
        result = box["result"]
        assert result.exit_code == run_module.EXIT_AGENT_FAILED, result.outcome.message
        message = result.outcome.message
        # whichever the run sees first: the node down (`node N: lost ..., with H`)
        # or its host's task gone (`H: exited ... its node N is down`); both name both
        assert message.startswith((f"node {node}: lost", f"{host}: ")), message
        assert node in message and host in message, message
        assert result.summary["offers"] > 0  # what was recorded is kept
    finally:
        lost.start()
        wait_for(f"{node} to be ready again", lambda: _ready(docker_engine, node), timeout=180)
    wait_for(
        "the run's leftovers to go",
        lambda: not swarm_target.leftovers(result.run_id),
        timeout=180,
    )


def _published(service: dict[str, Any]) -> list[int]:
    return [p["PublishedPort"] for p in service["Spec"].get("EndpointSpec", {}).get("Ports", [])]


def _ready(client: Any, hostname: str) -> bool:
    for node in client.api.nodes():
        if node["Description"]["Hostname"] == hostname:
            return bool(node["Status"]["State"] == "ready")
    return False
