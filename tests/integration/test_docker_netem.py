"""Network emulation of a testbed host, measured: the round-trip time between
two containers on a private network moves with the configured latency, and a
configured loss drops packets. The containers run the agent image's
entrypoint with the settings the backend gives a host (hosts.Netem.env()) and
NET_ADMIN only; on kernels without sch_netem the entrypoint emulates in
userspace (NFQUEUE), which this measures just the same."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.backends.docker.engine import LABEL_ORCHESTRATOR, LABEL_RUN, orchestrator_label
from orchestrator.backends.docker.faults import exec_in, netem_script
from orchestrator.hosts import Netem
from orchestrator.images import ImageSet
from tests.integration.docker_support import docker_engine, docker_images, labelled

__all__ = ["docker_engine", "docker_images"]

PORT = 7000
SERVER = f"""
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {PORT}))
s.listen(64)
while True:
    c, _ = s.accept()
    c.close()
"""
# TCP connect() returns after SYN -> SYN/ACK: one round trip. The median of
# many is robust to a busy machine's scheduling noise.
PROBE = f"""
import socket, statistics, sys, time
server = sys.argv[1]
deadline = time.monotonic() + 60
while True:
    try:
        socket.create_connection((server, {PORT}), timeout=5).close()
        break
    except OSError:
        assert time.monotonic() < deadline, "server not reachable"
        time.sleep(0.1)
rtts = []
for _ in range(15):
    t = time.perf_counter()
    socket.create_connection((server, {PORT}), timeout=10).close()
    rtts.append((time.perf_counter() - t) * 1000)
print(statistics.median(rtts))
"""


@pytest.fixture
def network(docker_engine: Any) -> Iterator[tuple[str, str]]:
    run_id = f"test-netem-{uuid.uuid4().hex[:8]}"
    labels = {LABEL_RUN: run_id, LABEL_ORCHESTRATOR: orchestrator_label()}  # a live run
    net = docker_engine.networks.create(f"testbed-{run_id}", labels=labels)
    try:
        yield net.name, run_id
    finally:
        for c in docker_engine.containers.list(
            all=True, filters={"label": f"{LABEL_RUN}={run_id}"}
        ):
            c.remove(force=True)
        net.remove()
        assert labelled(docker_engine, run_id) == []


def median_rtt_ms(client: Any, image: str, net: tuple[str, str], netem: Netem) -> float:
    name, run_id = net
    output = client.containers.run(
        image,
        ["python", "-c", PROBE, f"{run_id}-server"],
        environment=netem.env(),
        cap_add=["NET_ADMIN"],
        network=name,
        labels={LABEL_RUN: run_id},
        remove=True,
        stderr=True,
    )
    return float(output.decode().strip().splitlines()[-1])


def test_round_trip_time_moves_with_the_configured_latency(
    docker_engine: Any, docker_images: ImageSet, network: tuple[str, str]
) -> None:
    name, run_id = network
    docker_engine.containers.run(
        docker_images.agent,
        ["python", "-c", SERVER],
        name=f"{run_id}-server",  # resolvable on the network by this name
        network=name,
        labels={LABEL_RUN: run_id},
        detach=True,
    )
    image = docker_images.agent
    plain = median_rtt_ms(docker_engine, image, network, Netem())
    delayed = median_rtt_ms(docker_engine, image, network, Netem(delay_ms=100))
    jittered = median_rtt_ms(docker_engine, image, network, Netem(delay_ms=40, jitter_ms=5))
    # egress delay of the probing host: the round trip grows by the latency
    assert plain < 50
    assert 95 <= delayed - plain <= 400, (plain, delayed)
    assert 30 <= jittered - plain <= 300, (plain, jittered)
    assert jittered < delayed


def test_the_entrypoint_says_how_it_emulates(docker_engine: Any, docker_images: ImageSet) -> None:
    log = docker_engine.containers.run(
        docker_images.agent,
        ["true"],
        environment=Netem(delay_ms=10, loss_percent=1, rate_kbit=8000).env(),
        cap_add=["NET_ADMIN"],
        remove=True,
        stdout=False,
        stderr=True,
    ).decode()
    assert "delay 10ms jitter 0ms loss 1% rate 8000kbit on eth0" in log
    assert "netem (kernel)" in log or "netem (userspace)" in log


def test_fault_netem_changes_and_restores_a_running_hosts_latency(
    docker_engine: Any, docker_images: ImageSet, network: tuple[str, str]
) -> None:
    """The `netem` fault action's script (orchestrator/backends/docker/faults.py), run
    in a live container as the injector runs it: latency on, measured, then off."""
    name, run_id = network
    image = docker_images.agent
    docker_engine.containers.run(
        image, ["python", "-c", SERVER], name=f"{run_id}-server", network=name,
        labels={LABEL_RUN: run_id}, detach=True,
    )  # fmt: skip
    host = docker_engine.containers.run(
        image, ["sleep", "600"], network=name, labels={LABEL_RUN: run_id},
        cap_add=["NET_ADMIN"], detach=True,
    )  # fmt: skip

    def rtt() -> float:
        return float(exec_in(docker_engine, host.id, f"python3 -c '{PROBE}' {run_id}-server"))

    before = rtt()
    how = exec_in(docker_engine, host.id, netem_script("eth0", 80, 0, 0)).splitlines()[-1]
    assert how in {"kernel", "userspace"}
    during = rtt()
    exec_in(docker_engine, host.id, netem_script("eth0", 0, 0, 0))
    after = rtt()
    assert 75 <= during - before <= 400, (before, during)
    assert after < before + 40, (before, after)
