"""`testbed render --format stack`: the swarm backend's services as a stack file
(the compose project's containers, rewritten for `docker stack deploy`)."""

from __future__ import annotations

from pathlib import Path

import yaml

from orchestrator.cli import main
from tests.conftest import REPO

SMOKE = REPO / "topologies" / "smoke.yaml"
HOSTS = (
    "deployment.hosts=[{name: bbb, count: 2, profile: bbb, netem: {latency_ms: 20}, "
    "placement: [node.labels.rack==a]}]"
)


def test_render_stack_writes_a_project_for_docker_stack_deploy(tmp_path: Path) -> None:
    out = tmp_path / "stack"
    argv = ["render", str(SMOKE), "--format", "stack", "--out", str(out)]
    argv += ["--set", "deployment.backend=swarm", "--set", HOSTS]
    assert main(argv) == 0
    stack = yaml.safe_load((out / "stack.yaml").read_text())
    assert stack["version"] == "3.8"
    assert stack["networks"]["testbed"]["driver"] == "overlay"
    assert stack["networks"]["testbed"]["attachable"] is True
    # the run's network internal (no gateway bridge per host); the edge network
    # for the services that publish a port, labelled as the backend's (network.py)
    assert stack["networks"]["testbed"]["internal"] is True
    edge = stack["networks"]["edge"]
    assert edge["driver"] == "overlay" and not edge.get("internal")
    run_id = stack["networks"]["testbed"]["labels"]["testbed.run"]
    assert edge["labels"]["testbed.edge_of"] == run_id and "testbed.run" not in edge["labels"]
    services = stack["services"]
    assert set(services) >= {"chain", "deploy", "dso", "clock", "recorder", "solver-1"}
    assert {"bbb-01", "bbb-02", "prometheus"} <= set(services)
    for name, service in services.items():
        assert service["deploy"]["endpoint_mode"] == "dnsrr", name  # no IPVS needed
        assert "container_name" not in service and "depends_on" not in service, name
        for volume in service.get("volumes", []):
            assert volume.startswith(f"{out.resolve()}/"), volume  # the same path on every node
    host = services["bbb-01"]
    assert host["deploy"]["placement"]["constraints"] == [
        "node.labels.testbed.role==prosumers",
        "node.labels.rack==a",
    ]
    assert host["deploy"]["resources"]["limits"] == {"memory": "512M", "cpus": "0.5"}
    assert host["deploy"]["restart_policy"] == {"condition": "none"}  # a crash ends the run
    # start order: behind setup/start.py, after the contract and the solvers' tier
    gate, agent = host["command"][: host["command"].index("--")], host["command"][-6:]
    assert gate[:3] == ["python", "/testbed/setup/start.py", "/testbed/config/bbb-01.json"]
    assert gate[3:] == ["--after", "solver-1"]
    assert agent == ["python", "-m", "agents", "prosumer", "--config", gate[2]]
    assert f"{out.resolve()}/setup:/testbed/setup:ro" in host["volumes"]
    assert "healthcheck" not in host  # an agent waiting to start is not unhealthy
    recorder = services["recorder"]["command"]
    assert recorder[3] == "--" and recorder[2] == "/testbed/config/recorder.json"
    assert host["cap_add"] == ["NET_ADMIN"]
    assert host["labels"]["testbed.orchestrator"] == "stack"
    assert host["deploy"]["labels"]["testbed.unit"] == "bbb-01"
    assert host["environment"]["TESTBED_NETEM_DELAY_MS"] == "20"
    assert services["chain"]["deploy"]["placement"]["constraints"] == ["node.role==manager"]
    assert services["deploy"]["deploy"]["restart_policy"] == {"condition": "none"}
    assert services["prometheus"]["ports"] == [{"target": 9090, "published": 9090, "mode": "host"}]
    prometheus = services["prometheus"]["networks"]
    assert prometheus == {"testbed": {"aliases": ["prometheus"]}, "edge": {}}
    assert host["networks"] == {"testbed": {"aliases": ["bbb-01"]}}  # no way out
    # the project around it: configs, the deploy step, Prometheus' config
    assert (out / "config" / "bbb-01.json").is_file()
    assert (out / "setup" / "deploy.py").is_file()
    assert (out / "setup" / "start.py").read_text().startswith('"""The start order')
    assert (out / "prometheus" / "prometheus.yml").is_file()
    assert not (out / "docker-compose.yaml").exists()
