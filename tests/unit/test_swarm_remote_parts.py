"""The pure parts behind a swarm whose manager is elsewhere: input files as
bind mounts of one file and configs (files.py), which node publishes which port (ports.py),
and the TLS material of the remote lab (a real TLS handshake, client
certificate required, as dockerd --tlsverify does)."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

from orchestrator.backends.base import Unit
from orchestrator.backends.docker.containers import prometheus_command, unit_spec
from orchestrator.backends.swarm.cluster import Layout
from orchestrator.backends.swarm.files import MAX_BYTES, InputFile, inputs_of
from orchestrator.backends.swarm.nodes import Node
from orchestrator.backends.swarm.ports import HOST_METRICS_PORT, assign, needs
from orchestrator.backends.swarm.services import ServiceSpec
from orchestrator.plan import build_plan
from orchestrator.scenario import build_scenario
from orchestrator.spec import load_spec
from orchestrator.swarm.tls import CA_FILE, CERT_FILE, KEY_FILE, Authority
from tests.conftest import REPO

SMOKE = REPO / "topologies" / "smoke.yaml"
M = Node("m", "head", "manager", "10.0.0.1")
W1 = Node("w1", "pi-1", "worker", "10.0.0.11")
W2 = Node("w2", "pi-2", "worker", "10.0.0.12")


def test_an_agent_mounts_its_own_config_file_alone_read_only(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "prosumers-01.json").write_text('{"private_key": "0x01"}')
    (config / "dso.json").write_text("{}")  # another agent's: not this one's input
    argv = ("python", "-m", "agents", "prosumer", "--config", "/testbed/config/prosumers-01.json")
    unit = Unit("prosumers-01", "prosumer", argv, tmp_path / "x.log")
    container = unit_spec(unit, "", config_dir=config, out_dir=tmp_path / "out")
    left, files = inputs_of(container)
    assert files == ()  # no secret, no config: nothing through the manager
    template = ServiceSpec(left, "img", {}, files=files).task_template("r1", "net")
    assert "Secrets" not in template["ContainerSpec"]
    assert "Configs" not in template["ContainerSpec"]
    assert template["ContainerSpec"]["Mounts"] == [
        {
            "Type": "bind",
            "Source": str(config / "prosumers-01.json"),  # the bundle, shared with every node
            "Target": "/testbed/config/prosumers-01.json",
            "ReadOnly": True,
        },
        {
            "Type": "bind",
            "Source": str(tmp_path / "out"),
            "Target": "/testbed/out",
            "ReadOnly": False,
        },
    ]


def test_prometheus_yml_becomes_a_config_its_data_stays_a_mount(tmp_path: Path) -> None:
    metrics = tmp_path / "bundle" / "metrics"
    metrics.mkdir(parents=True)
    (metrics / "prometheus.yml").write_text("scrape_configs: []\n")
    argv = [
        "prometheus",
        f"--config.file={metrics}/prometheus.yml",
        f"--storage.tsdb.path={metrics}/prometheus-data",
        "--web.listen-address=10.0.0.1:9090",
    ]
    command, port, mounts = prometheus_command(argv)
    unit = Unit("prometheus", "prometheus", tuple(argv), tmp_path / "p.log")
    container = unit_spec(unit, "", config_dir=tmp_path, out_dir=None)
    left, files = inputs_of(container)
    assert port == 9090 and len(mounts) == 2
    assert files == (InputFile(metrics / "prometheus.yml", f"{metrics}/prometheus.yml"),)
    assert [m.target for m in left.mounts] == [f"{metrics}/prometheus-data"]
    assert f"--config.file={metrics}/prometheus.yml" in command


def test_a_file_too_large_for_a_swarm_config_keeps_its_mount(tmp_path: Path) -> None:
    (tmp_path / "prometheus.yml").write_bytes(b" " * (MAX_BYTES + 1))
    argv = ["prometheus", f"--config.file={tmp_path}/prometheus.yml"]
    container = unit_spec(
        Unit("prometheus", "prometheus", tuple(argv), tmp_path / "p.log"),
        "",
        config_dir=tmp_path,
        out_dir=None,
    )
    left, files = inputs_of(container)
    assert files == () and [m.target for m in left.mounts] == [str(tmp_path)]
    # an agent's config of any size is its own file's mount (the DSO's at 10x is large)
    (tmp_path / "big.json").write_bytes(b" " * (MAX_BYTES + 1))
    argv = ["python", "-m", "agents", "dso", "--config", "/testbed/config/big.json"]
    container = unit_spec(
        Unit("dso", "dso", tuple(argv), tmp_path / "x.log"), "", config_dir=tmp_path, out_dir=None
    )
    left, files = inputs_of(container)
    assert files == () and [m.target for m in left.mounts] == ["/testbed/config/big.json"]


def test_every_published_port_is_asked_of_the_node_that_publishes_it() -> None:
    spec = load_spec(SMOKE, ["deployment.backend=swarm"])
    plan = build_plan(build_scenario(spec), "swarm", "20260101T000000Z-abcd")
    layout = Layout([M, W1, W2], M, units={"prosumers-01": W1, "prosumers-02": W2, "clock": W2})
    wanted = needs(layout, plan)
    services = [a.name for a in plan.agents if a.role != "prosumer" and a.name != "clock"]
    assert wanted == {
        "m": ["chain", "prometheus", "metrics-gateway", *services],
        "w2": ["clock-pub", "clock-pull", "clock", "prosumers-02"],
        "w1": ["prosumers-01"],
    }
    offered = {
        "m": range(40000, 40000 + len(wanted["m"])),
        "w1": [50001],
        "w2": [50002, 50003, 50004, 50005],
    }
    assign(layout, plan, offered)
    assert (layout.chain_port, layout.prometheus_port) == (40000, 40001)
    assert layout.gateway_port == 40002
    assert layout.clock_ports == (50002, 50003)
    assert layout.metrics_ports["clock"] == 50004
    assert layout.metrics_ports["prosumers-01"] == 50001  # the same port may be taken on
    assert layout.metrics_ports["prosumers-02"] == 50005  # another node: each is its own


def test_hosts_behind_the_metrics_gateway_are_asked_no_port(tmp_path: Path) -> None:
    spec = load_spec(SMOKE, ["deployment.backend=swarm"])
    plan = build_plan(build_scenario(spec), "swarm", "20260101T000000Z-abcd")
    hosts = frozenset(a.name for a in plan.by_role("prosumer"))
    units = {"prosumers-01": W1, "prosumers-02": W2, "clock": W2}
    layout = Layout([M, W1, W2], M, units=units, behind_gateway=hosts)
    wanted = needs(layout, plan)
    assert wanted["w1"] == [] and wanted["w2"] == ["clock-pub", "clock-pull", "clock"]
    offered = {"m": range(40000, 40000 + len(wanted["m"])), "w1": [], "w2": [1, 2, 3]}
    assign(layout, plan, offered)
    assert {layout.metrics_ports[h] for h in hosts} == {HOST_METRICS_PORT}
    for host in hosts:
        argv = ("python", "-m", "agents", "prosumer", "--config", f"/testbed/config/{host}.json")
        unit = Unit(host, "prosumer", argv, tmp_path / f"{host}.log")
        container = unit_spec(unit, "", config_dir=tmp_path, out_dir=None)
        assert layout.ports(host, container) == {}  # published nowhere


def test_the_engines_certificate_verifies_and_a_client_certificate_is_required(
    tmp_path: Path,
) -> None:
    authority = Authority.create()
    server, client = authority.write_server(tmp_path / "s", "127.0.0.1"), tmp_path / "c"
    authority.write_client(client)
    serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    serving.load_cert_chain(server / CERT_FILE, server / KEY_FILE)
    serving.load_verify_locations(server / CA_FILE)
    serving.verify_mode = ssl.CERT_REQUIRED  # dockerd --tlsverify
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen: list[str] = []

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            try:
                with serving.wrap_socket(conn, server_side=True) as tls:
                    seen.append(dict(x[0] for x in tls.getpeercert()["subject"])["commonName"])
            except ssl.SSLError as exc:
                seen.append(f"refused: {exc.reason}")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    trusting = ssl.create_default_context(cafile=client / CA_FILE)  # checks the IP too
    trusting.load_cert_chain(client / CERT_FILE, client / KEY_FILE)
    with trusting.wrap_socket(
        socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1"
    ):
        pass
    anonymous = ssl.create_default_context(cafile=client / CA_FILE)
    with socket.create_connection(("127.0.0.1", port)) as raw:
        try:
            with anonymous.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.recv(1)  # TLS 1.3: the server's refusal arrives after the handshake
        except (ssl.SSLError, ConnectionError):
            pass
    thread.join(timeout=30)
    listener.close()
    assert seen[0] == "testbed client"
    assert seen[1].startswith("refused")
