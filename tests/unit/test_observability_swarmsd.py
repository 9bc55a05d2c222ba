"""prometheus.yml for a swarm run (dockerswarm_sd_configs), the choice collect.py
makes from the backend's registry entry, and the real promtool accepting it.
(A real Prometheus scraping a labelled swarm service: the integration test
tests/integration/test_swarm_prometheus.py.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from orchestrator.observability.collect import prometheus_config
from orchestrator.observability.swarmsd import MIN_REFRESH_SECONDS, meta, render_swarm_config
from orchestrator.scrapetargets import agent_targets, duration, orchestrator_target
from orchestrator.spec.backends import BACKENDS
from tests.conftest import require_tool
from tests.unit.test_observability_targets import small_plan


def test_meta_labels_are_named_as_prometheus_names_them() -> None:
    assert meta("service", "testbed.metrics_port") == (
        "__meta_dockerswarm_service_label_testbed_metrics_port"
    )
    assert meta("network", "testbed.run") == "__meta_dockerswarm_network_label_testbed_run"


def test_swarm_config_discovers_the_runs_tasks_and_keeps_the_exporter_static() -> None:
    plan = small_plan()
    static = [orchestrator_target(plan, "172.17.0.1:8999")]
    config = yaml.safe_load(render_swarm_config(plan, static, interval_seconds=0.5))
    agents, orchestrator = config["scrape_configs"]
    assert config["global"]["scrape_interval"] == "500ms"
    (sd,) = agents["dockerswarm_sd_configs"]
    assert (sd["host"], sd["role"]) == ("unix:///var/run/docker.sock", "tasks")
    assert {"name": "label", "values": ["testbed.run=RUN1"]} in sd["filters"]
    rules = agents["relabel_configs"]
    keeps = {r["source_labels"][0]: r["regex"] for r in rules if r.get("action") == "keep"}
    assert keeps == {
        meta("service", "testbed.run"): "RUN1",
        meta("network", "testbed.run"): "RUN1",
        meta("service", "testbed.metrics_port"): r"\d+",
    }
    targets = {r["target_label"]: r for r in rules if "target_label" in r}
    assert targets["agent"]["source_labels"] == [meta("service", "testbed.unit")]
    assert targets["role"]["source_labels"] == [meta("service", "testbed.role")]
    assert (targets["run_id"]["replacement"], targets["spec"]["replacement"]) == (
        "RUN1",
        plan.spec_name,
    )
    # the exporter: a static target under the dashboards' job label
    assert orchestrator["static_configs"][0]["targets"] == ["172.17.0.1:8999"]
    assert orchestrator["static_configs"][0]["labels"]["agent"] == "orchestrator"
    assert orchestrator["relabel_configs"] == [
        {"target_label": "job", "replacement": "testbed", "action": "replace"}
    ]


def test_collect_renders_what_the_registry_entry_says() -> None:
    plan = small_plan()
    agents = agent_targets(plan, lambda name: f"{name}:9100")
    static = [orchestrator_target(plan, "10.0.0.1:8999")]
    swarm = yaml.safe_load(prometheus_config("swarm", plan, agents, static, 1.0))
    assert "dockerswarm_sd_configs" in swarm["scrape_configs"][0]
    for kind in ("host", "image"):
        config = yaml.safe_load(prometheus_config(kind, plan, agents, static, 1.0))
        (job,) = config["scrape_configs"]
        assert len(job["static_configs"]) == len(plan.agents) + 1
    assert {entry.prometheus for entry in BACKENDS.values()} <= {"host", "image", "swarm"}


def test_the_discovery_refresh_follows_the_number_of_targets_not_the_scrape_interval() -> None:
    plan = small_plan()
    static = [orchestrator_target(plan, "10.0.0.1:8999")]

    def refresh(agents: int, interval: float) -> str:
        targets = agent_targets(plan, lambda name: f"{name}:9100") * agents
        config = yaml.safe_load(prometheus_config("swarm", plan, targets, static, interval))
        return str(config["scrape_configs"][0]["dockerswarm_sd_configs"][0]["refresh_interval"])

    # a paper-scale run scraped every 0.25 s lists the swarm's tasks every 2 s, not 4 times
    # a second; 10x the paper's targets (315) every 9.45 s
    assert refresh(1, 0.25) == f"{MIN_REFRESH_SECONDS:g}s"
    copies = 314 // len(plan.agents)
    targets = copies * len(plan.agents) + 1  # and the orchestrator's exporter
    assert refresh(copies, 3.15) == duration(targets * 0.03)
    assert targets * 0.03 > 3.15 * 2


def test_promtool_accepts_the_swarm_config(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    plan = small_plan()
    path = tmp_path / "prometheus.yml"
    path.write_text(
        render_swarm_config(plan, [orchestrator_target(plan, "127.0.0.1:1")], interval_seconds=1)
    )
    done = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
