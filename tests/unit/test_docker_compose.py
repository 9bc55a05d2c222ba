"""The docker backend's pure parts, no engine needed: what container runs each
unit (commands, mounts, limits, netem, labels), and `testbed render --format
compose`, which writes the same containers as a compose project."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from agents.common.config import load_config
from agents.common.market import MarketParams
from agents.common.typed import from_plain
from orchestrator.backends.base import Unit
from orchestrator.backends.docker.backend import exit_code
from orchestrator.backends.docker.compose import render_compose
from orchestrator.backends.docker.containers import (
    chain_command,
    docker_placement,
    prometheus_command,
    unit_spec,
)
from orchestrator.chainsetup import anvil_argv
from orchestrator.cli import main
from orchestrator.hosts import PROFILES, Netem
from orchestrator.plan import Plan, build_plan
from orchestrator.scenario import build_scenario
from orchestrator.spec import load_spec
from tests.conftest import REPO

SMOKE = REPO / "topologies" / "smoke.yaml"
HOSTS = "deployment.hosts=[{name: bbb, count: 2, profile: bbb, netem: {latency_ms: 20}}]"
IMAGES = {"agent": "testbed/agent:a", "chain": "testbed/chain:c", "prometheus": "testbed/p:p"}


def smoke_plan(*overrides: str) -> Plan:
    spec = load_spec(SMOKE, list(overrides))
    return build_plan(build_scenario(spec), "docker", "20260101T000000Z-abcd")


def test_the_chain_listens_on_the_network_and_keeps_no_state_on_disk() -> None:
    argv = anvil_argv(port=41234, chain_id=31337, block_time=None, accounts=3)
    command = chain_command(argv)
    assert command[:5] == ("anvil", "--host", "0.0.0.0", "--port", "8545")
    assert "--block-base-fee-per-gas" in command and "--chain-id" in command
    # the history is bounded exactly once (anvil refuses both flags together)
    assert sum(flag in command for flag in ("--prune-history", "--max-persisted-states")) == 1
    bare = chain_command(["/x/anvil", "--host", "127.0.0.1", "--port", "1"])
    assert bare == ("anvil", "--host", "0.0.0.0", "--port", "8545", "--max-persisted-states", "0")


def test_prometheus_listens_everywhere_with_host_paths_mounted(tmp_path: Path) -> None:
    config, tsdb = tmp_path / "metrics" / "prometheus.yml", tmp_path / "tsdb"
    argv = ["/usr/bin/prometheus", f"--config.file={config}", f"--storage.tsdb.path={tsdb}"]
    argv += ["--web.listen-address=127.0.0.1:40001", "--web.enable-admin-api"]
    command, port, mounts = prometheus_command(argv)
    assert command[0] == "prometheus" and port == 40001
    assert "--web.listen-address=0.0.0.0:40001" in command
    assert {(m.source, m.target, m.read_only) for m in mounts} == {
        (str(config.parent), str(config.parent), True),
        (str(tsdb), str(tsdb), False),
    }


def test_an_agent_container_gets_its_host_profile_and_netem() -> None:
    unit = Unit("bbb-01", "prosumer", ("python", "-m", "agents", "prosumer"), Path("x.log"))
    netem = Netem(delay_ms=20)
    spec = unit_spec(
        unit,
        "10.0.0.9",
        config_dir=Path("/b/config"),
        out_dir=Path("/b/agents/bbb-01"),
        profile=PROFILES["bbb"],
        netem=netem,
    )
    assert spec.image_kind == "agent" and spec.command == unit.argv
    assert spec.cap_add == ["NET_ADMIN"]  # only what netem needs, never privileged
    assert spec.env("r1")["TESTBED_NETEM_DELAY_MS"] == "20"
    labels = spec.labels("r1", "smoke", "host:1:2")
    assert labels["testbed.run"] == "r1" and labels["testbed.unit"] == "bbb-01"
    assert {(m.target, m.read_only) for m in spec.mounts} == {
        ("/testbed/config", True),
        ("/testbed/out", False),
    }
    plain = unit_spec(unit, "10.0.0.9", config_dir=Path("/c"), out_dir=None)
    assert plain.cap_add == [] and plain.profile.memory_bytes is None


def test_placement_uses_container_names_for_agents() -> None:
    plan = smoke_plan()
    placement = docker_placement(plan, Path("/b"), lambda unit: f"ip-of-{unit}")
    assert placement.rpc_url == "http://chain:8545"
    assert placement.rpc_url_local == "http://ip-of-chain:8545"
    assert placement.dso_endpoint == "tcp://dso:5555"
    dso = placement.agents["dso"]
    assert dso.metrics_host == "dso" and dso.metrics_url == "http://ip-of-dso:9100/metrics"
    assert dso.config_path == "/testbed/config/dso.json"
    assert dso.config_file == Path("/b/config/dso.json")


def test_exit_codes_of_killed_containers_read_as_signals() -> None:
    assert exit_code(137) == -9 and exit_code(143) == -15
    assert exit_code(0) == 0 and exit_code(1) == 1 and exit_code(70) == 70


def services(text: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    assert data["version"] == "2.4"
    return dict(data["services"])


def test_compose_has_the_backends_containers_in_start_order(tmp_path: Path) -> None:
    plan = smoke_plan(HOSTS)
    text = render_compose(plan, IMAGES, out=tmp_path / "project")
    s = services(text)
    agents = {a.name for a in plan.agents}
    assert set(s) == agents | {"chain", "deploy", "prometheus"}
    assert s["chain"]["image"] == "testbed/chain:c"
    assert s["chain"]["command"][:3] == ["anvil", "--host", "0.0.0.0"]
    assert s["deploy"]["depends_on"] == {"chain": {"condition": "service_healthy"}}
    assert s["recorder"]["depends_on"] == {
        "deploy": {"condition": "service_completed_successfully"}
    }
    assert s["dso"]["depends_on"]["recorder"] == {"condition": "service_healthy"}
    assert set(s["bbb-01"]["depends_on"]) == {"deploy", "solver-1"}
    host = s["bbb-01"]
    assert host["image"] == "testbed/agent:a"
    assert host["command"] == [
        "python", "-m", "agents", "prosumer", "--config", "/testbed/config/bbb-01.json"
    ]  # fmt: skip
    assert host["mem_limit"] == "512m" and host["cpus"] == 0.5
    assert host["cap_add"] == ["NET_ADMIN"]
    assert host["environment"]["TESTBED_NETEM_DELAY_MS"] == "20"
    assert host["labels"]["testbed.run"] == plan.run_id
    assert "./config:/testbed/config:ro" in host["volumes"]
    assert "testbed_agent_ready 1.0" in " ".join(host["healthcheck"]["test"])
    assert "cap_add" not in s["dso"] and "mem_limit" not in s["dso"]
    assert s["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]


def test_compose_project_files(tmp_path: Path) -> None:
    out = tmp_path / "project"
    plan = smoke_plan(HOSTS)
    render_compose(plan, IMAGES, out=out)
    assert yaml.safe_load((out / "docker-compose.yaml").read_text())["services"]
    config = json.loads((out / "config" / "bbb-02.json").read_text())
    assert config["rpc_url"] == "http://chain:8545"
    assert config["dso_endpoint"] == "tcp://dso:5555"
    assert config["metrics_host"] == "bbb-02" and config["out_dir"] == "/testbed/out"
    assert [p["id"] for p in config["prosumers"]] == [701, 702, 703]
    deploy = json.loads((out / "setup" / "deploy.json").read_text())
    assert from_plain(MarketParams, deploy["market"]) == plan.market  # the one market class
    assert len(deploy["feeders"]) == 2
    assert load_config(out / "config" / "bbb-02.json").market == plan.market
    compile((out / "setup" / "deploy.py").read_text(), "deploy.py", "exec")
    prometheus = yaml.safe_load((out / "prometheus" / "prometheus.yml").read_text())
    configs = [sc for c in prometheus["scrape_configs"] for sc in c["static_configs"]]
    targets = [t for sc in configs for t in sc["targets"]]
    assert "dso:9100" in targets and "bbb-01:9100" in targets


def test_render_cli_prints_the_plan_and_writes_compose(tmp_path: Path, capsys: Any) -> None:
    assert main(["render", str(SMOKE), "--set", HOSTS]) == 0
    plan = yaml.safe_load(capsys.readouterr().out)
    assert plan["start_order"][-1] == ["bbb-01", "bbb-02"]
    assert plan["hosts"]["bbb-01"] == {
        "prosumers": [101, 103, 104],
        "profile": "bbb",
        "netem": "delay 20 ms",
    }
    out = tmp_path / "c"
    assert main(["render", str(SMOKE), "--format", "compose", "--out", str(out)]) == 0
    assert "prosumers-01" in services((out / "docker-compose.yaml").read_text())
