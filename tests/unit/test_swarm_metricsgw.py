"""The prosumer hosts publish no port on a swarm: the orchestrator reads their
/metrics through the metrics gateway (orchestrator/backends/swarm/metricsgw.py).
Its layout (which units publish what, which URL the readiness wait scrapes) and
the gateway's real server, run here against a real metrics endpoint."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orchestrator.backends.base import Unit
from orchestrator.backends.docker.containers import unit_spec
from orchestrator.backends.local import free_ports
from orchestrator.backends.swarm import metricsgw
from orchestrator.backends.swarm.cluster import Layout
from orchestrator.backends.swarm.nodes import Node
from orchestrator.plan import build_plan
from orchestrator.progress import scrape
from orchestrator.scenario import build_scenario
from orchestrator.spec import load_spec
from tests.conftest import REPO

SMOKE = REPO / "topologies" / "smoke.yaml"
W1 = Node("w1", "pi-1", "worker", "10.0.0.11")
M = Node("m", "head", "manager", "10.0.0.1")
DEADLINE_SECONDS = 60.0


def test_hosts_publish_nothing_and_are_read_through_the_gateway(tmp_path: Path) -> None:
    spec = load_spec(SMOKE, ["deployment.backend=swarm"])
    plan = build_plan(build_scenario(spec), "swarm", "20260101T000000Z-abcd")
    hosts = {a.name for a in plan.by_role("prosumer")}
    ports = {a.name: 20_000 + i for i, a in enumerate(plan.agents)}
    layout = Layout(
        [M, W1],
        M,
        units={a.name: W1 for a in plan.agents},
        metrics_ports=ports,
        gateway_port=19_999,
        behind_gateway=frozenset(hosts),
    )
    placed = layout.placement(plan, tmp_path)
    for agent in plan.agents:
        unit = Unit(agent.name, agent.role, ("python",), tmp_path / "x.log")
        container = unit_spec(unit, "", config_dir=tmp_path, out_dir=tmp_path)
        where = placed.agents[agent.name]
        assert where.metrics_port == ports[agent.name]  # the agent binds it (Prometheus scrapes)
        if agent.name in hosts:
            assert layout.ports(agent.name, container) == {}
            assert where.metrics_url == f"http://10.0.0.1:19999/{agent.name}/metrics"
        else:  # the few services keep their port on their node
            assert layout.ports(agent.name, container) == {ports[agent.name]: ports[agent.name]}
            assert where.metrics_url == f"http://10.0.0.11:{ports[agent.name]}/metrics"
    assert layout.gateway_units() == {h: ports[h] for h in hosts}
    gateway = metricsgw.gateway_container(19_999, layout.gateway_units())
    assert gateway.published == {19_999: 19_999} and gateway.image_kind == "agent"


class _Metrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"# TYPE testbed_agent_ready gauge\ntestbed_agent_ready 1.0\n"
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def agent_endpoint() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_gateway_serves_each_units_metrics_and_nothing_else(agent_endpoint: int) -> None:
    listen, silent = free_ports(2, "127.0.0.1")
    container = metricsgw.gateway_container(
        listen, {"localhost": agent_endpoint, "127.0.0.1": silent}
    )
    argv = [sys.executable, *container.command[1:]]
    gateway = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        url = metricsgw.metrics_url("127.0.0.1", listen, "localhost")
        deadline = time.monotonic() + DEADLINE_SECONDS
        metrics = scrape(url)
        while metrics is None and time.monotonic() < deadline:
            assert gateway.poll() is None, "the gateway exited"
            time.sleep(0.1)
            metrics = scrape(url)
        assert metrics is not None and metrics["testbed_agent_ready"] == 1.0
        # a unit that does not answer yet reads as not answering; unknown units do not exist
        assert scrape(metricsgw.metrics_url("127.0.0.1", listen, "127.0.0.1")) is None
        assert scrape(metricsgw.metrics_url("127.0.0.1", listen, "example.org")) is None
        assert scrape(f"http://127.0.0.1:{listen}/localhost/other") is None
    finally:
        gateway.terminate()
        assert gateway.wait(DEADLINE_SECONDS) == 0  # SIGTERM: it exits at once, cleanly
