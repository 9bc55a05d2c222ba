"""The swarm backend's pure parts: constraints, the choice of nodes (host groups
spread, user constraints honoured), the services' Engine API objects, and the
spec's deployment.swarm / hosts[].placement."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.backends.base import BackendError, Unit
from orchestrator.backends.docker.containers import unit_spec
from orchestrator.backends.swarm.cluster import host_groups
from orchestrator.backends.swarm.nodes import Node, eligible, matches, node_of, spread
from orchestrator.backends.swarm.services import ServiceSpec, service_name
from orchestrator.errors import SpecError
from orchestrator.hosts import PROFILES, Netem
from orchestrator.plan import build_plan
from orchestrator.scenario import build_scenario
from orchestrator.spec import load_spec
from orchestrator.spec.swarm import SwarmConfig
from tests.conftest import REPO

SMOKE = REPO / "topologies" / "smoke.yaml"
W1 = Node("w1", "pi-1", "worker", "10.0.0.11", labels={"testbed.role": "prosumers", "rack": "a"})
W2 = Node("w2", "pi-2", "worker", "10.0.0.12", labels={"testbed.role": "prosumers", "rack": "b"})
M = Node("m", "head", "manager", "10.0.0.1")


def test_constraints_follow_dockers_semantics() -> None:
    assert matches(W1, ["node.labels.rack==a", "node.role==worker", "node.hostname!=pi-2"])
    assert not matches(W1, ["node.labels.rack==b"])
    assert matches(M, ["node.labels.rack!=a"])  # != holds for a node without the label
    assert not matches(M, ["node.labels.rack==a"])
    assert matches(M, ["node.id==m", "node.platform.os==linux"])
    with pytest.raises(BackendError, match="not a placement constraint"):
        matches(M, ["rack=a"])


def test_down_or_drained_nodes_carry_nothing() -> None:
    down = Node("d", "pi-3", "worker", "10.0.0.13", state="down")
    drained = Node("r", "pi-4", "worker", "10.0.0.14", availability="drain")
    assert eligible([W1, down, drained], []) == [W1]


def test_each_group_is_spread_evenly_least_loaded_nodes_first() -> None:
    load: dict[str, int] = {}
    placed = spread(
        {"a": ["a-1", "a-2", "a-3"], "b": ["b-1", "b-2", "b-3"]},
        {"a": [W1, W2], "b": [W1, W2, M]},
        load,
    )
    assert [placed[u].id for u in ("a-1", "a-2", "a-3")] == ["w1", "w2", "w1"]
    # group b starts on the least loaded nodes and still spreads over all three
    assert [placed[u].id for u in ("b-1", "b-2", "b-3")] == ["m", "w2", "w1"]
    assert load == {"w1": 3, "w2": 2, "m": 1}
    with pytest.raises(BackendError, match="no ready, active node may carry c"):
        spread({"c": ["c-1"]}, {"c": []})


def test_node_from_the_engine_api() -> None:
    attrs = {
        "ID": "abc",
        "Spec": {"Role": "manager", "Availability": "active", "Labels": {"zone": "x"}},
        "Description": {"Hostname": "vm", "Platform": {"OS": "linux", "Architecture": "aarch64"}},
        "Status": {"State": "ready", "Addr": "0.0.0.0"},
        "ManagerStatus": {"Addr": "172.17.0.1:2377"},
    }
    node = node_of(attrs)
    assert (node.address, node.role, node.arch) == ("172.17.0.1", "manager", "aarch64")
    assert matches(node, ["node.labels.zone==x", "node.platform.arch==aarch64"])


def test_spec_swarm_settings_and_host_placement() -> None:
    hosts = (
        "deployment.hosts=[{name: a, count: 2, placement: [node.labels.rack==a]}, "
        "{name: b, placement: ['node.hostname != pi-9']}]"
    )
    spec = load_spec(SMOKE, ["deployment.backend=swarm", hosts, "deployment.swarm.registry=none"])
    assert spec.deployment.swarm == SwarmConfig(registry="none")
    assert spec.deployment.hosts[0].placement == ("node.labels.rack==a",)
    plan = build_plan(build_scenario(spec), "swarm", "20260101T000000Z-abcd")
    assert host_groups(plan, spec.deployment) == {"a": ["a-01", "a-02"], "b": ["b"]}
    assert spec.to_dict()["deployment"]["swarm"]["services"] == ["node.role==manager"]


def test_spec_refuses_what_is_no_constraint() -> None:
    where = r"deployment\.hosts\[0\]\.placement\[0\]: 'rack=a' is not valid \(a swarm constraint"
    with pytest.raises(SpecError, match=where):
        load_spec(SMOKE, ["deployment.hosts=[{name: a, placement: [rack=a]}]"])
    with pytest.raises(SpecError, match=r"deployment\.swarm\.managr"):
        load_spec(SMOKE, ["deployment.swarm.managr=tcp://x:2376"])


def test_a_prosumer_host_service() -> None:
    unit = Unit("prosumers-01", "prosumer", ("python", "-m", "agents", "prosumer"), REPO / "x.log")
    container = unit_spec(
        unit,
        "",
        config_dir=REPO / "cfg",
        out_dir=REPO / "out",
        profile=PROFILES["bbb"],
        netem=Netem(delay_ms=5),
    )
    spec = ServiceSpec(
        container,
        "172.17.0.1:5000/testbed/agent:1234",
        {"testbed.run": "r1"},
        constraints=("node.labels.testbed.role==prosumers", "node.id==w1"),
        ports={23456: 23456},
    )
    template = spec.task_template("r1", "net-1")
    c = template["ContainerSpec"]
    assert c["Image"] == "172.17.0.1:5000/testbed/agent:1234"
    assert c["Args"] == ["python", "-m", "agents", "prosumer"] and "Command" not in c
    assert c["CapabilityAdd"] == ["NET_ADMIN"]  # netem, never privileged
    assert "TESTBED_NETEM_DELAY_MS=5" in c["Env"] and "TESTBED_RUN_ID=r1" in c["Env"]
    assert {m["Target"]: m["ReadOnly"] for m in c["Mounts"]} == {
        "/testbed/config": True,
        "/testbed/out": False,
    }
    assert template["Resources"] == {"Limits": {"MemoryBytes": 512 * 2**20, "NanoCPUs": 5 * 10**8}}
    assert template["RestartPolicy"] == {"Condition": "none"}
    assert template["Placement"]["Constraints"][-1] == "node.id==w1"
    assert template["Networks"] == [{"Target": "net-1", "Aliases": ["prosumers-01"]}]
    assert spec.endpoint() == {
        "Mode": "dnsrr",
        "Ports": [
            {"Protocol": "tcp", "TargetPort": 23456, "PublishedPort": 23456, "PublishMode": "host"}
        ],
    }
    assert service_name("r1", "prosumers-01") == "testbed-r1-prosumers-01"


def test_only_a_service_that_publishes_a_port_joins_the_edge_network() -> None:
    """The run's network is internal (no gateway bridge for the hosts); a host-mode
    port needs the gateway bridge, which the edge network gives. Netem on a task
    with both finds the run's interface by its subnet (the order makes no eth0)."""
    argv = ("python", "-m", "agents", "prosumer")

    def spec(name: str, role: str) -> Any:
        unit = Unit(name, role, argv, REPO / "x.log")
        return unit_spec(unit, "", config_dir=REPO, out_dir=None, netem=Netem(delay_ms=5))

    host, dso = spec("prosumers-01", "prosumer"), spec("dso", "dso")
    quiet = ServiceSpec(host, "img", {}).task_template(
        "r1", "run-net", edge_id="edge-net", subnet="10.214.4.0/22"
    )
    assert quiet["Networks"] == [{"Target": "run-net", "Aliases": ["prosumers-01"]}]
    assert not [e for e in quiet["ContainerSpec"]["Env"] if e.startswith("TESTBED_NETEM_SUBNET")]
    published = ServiceSpec(dso, "img", {}, ports={9100: 40123}).task_template(
        "r1", "run-net", edge_id="edge-net", subnet="10.214.4.0/22"
    )
    assert published["Networks"] == [
        {"Target": "run-net", "Aliases": ["dso"]},  # its name resolves on the run's network
        {"Target": "edge-net"},
    ]
    assert "TESTBED_NETEM_SUBNET=10.214.4.0/22" in published["ContainerSpec"]["Env"]
