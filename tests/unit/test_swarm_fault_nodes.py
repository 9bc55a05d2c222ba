"""Node faults checked against the swarm's nodes before a run starts
(nodefaults.fault_node_problems: pure, on nodes as the manager lists them)."""

from __future__ import annotations

from pathlib import Path

import yaml

from orchestrator.backends.swarm.nodefaults import fault_node_problems
from orchestrator.backends.swarm.nodes import Node
from orchestrator.spec import load_spec
from tests.conftest import REPO

NODES = [
    Node("m1aaaa", "vm", "manager", "172.17.0.1"),
    Node("w1bbbb", "lab-w1", "worker", "172.17.0.2", labels={"testbed.role": "prosumers"}),
    Node("w2cccc", "lab-w2", "worker", "172.17.0.3"),
    Node("w3dddd", "pi-3", "worker", "10.0.0.3", state="down"),
]
LAB = {"lab-w1", "lab-w2"}


def _spec(tmp_path: Path, faults: list[dict[str, object]], **swarm: object) -> Path:
    data = yaml.safe_load((REPO / "topologies" / "smoke.yaml").read_text())
    data["deployment"] = {"backend": "swarm", "swarm": swarm} if swarm else {"backend": "swarm"}
    data["faults"] = faults
    path = tmp_path / "nodes.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_node_faults_the_swarm_can_do_pass(tmp_path: Path) -> None:
    faults = [
        {"at_interval": 51, "action": "stop", "node": "lab-w1"},
        {"at_interval": 52, "action": "drain", "node": "w2cc"},  # an ID prefix
        {"at_interval": 53, "action": "drain", "node": "pi-3"},  # not a lab node: drain is fine
    ]
    spec = load_spec(_spec(tmp_path, faults))
    assert fault_node_problems(spec, NODES, "m1aaaa", LAB) == []


def test_each_bad_node_fault_is_one_line_at_its_spec_position(tmp_path: Path) -> None:
    faults = [
        {"at_interval": 51, "action": "stop", "node": "lab-x1"},
        {"at_interval": 51, "action": "drain", "node": "vm"},
        {"at_interval": 52, "action": "stop", "node": "pi-3"},
        {"at_interval": 52, "action": "drain", "node": "w"},  # two ID prefixes
    ]
    path = _spec(tmp_path, faults)
    lines = path.read_text().splitlines()
    spec = load_spec(path)
    problems = fault_node_problems(spec, NODES, "m1aaaa", LAB)
    assert len(problems) == 4, problems
    at = [p.split(": ")[0] for p in problems]
    node_lines = [i + 1 for i, line in enumerate(lines) if line.strip().startswith("node:")]
    assert [a.rsplit(":", 2)[0] for a in at] == [str(path)] * 4
    assert [int(a.rsplit(":", 2)[1]) for a in at] == node_lines
    unknown, manager, engine, ambiguous = problems
    assert "faults[0].node: no swarm node 'lab-x1' (did you mean 'lab-w1'?)" in unknown
    assert "the swarm's nodes: lab-w1, lab-w2, pi-3 (down), vm" in unknown
    assert "faults[1].node: vm is the manager the orchestrator talks to" in manager
    assert "drain of it would end the run" in manager
    assert "faults[2].node: pi-3: only a lab node's engine can be stopped" in engine
    assert "faults[3].node: 'w' names more than one node" in ambiguous


def test_a_node_that_may_carry_the_services_is_refused(tmp_path: Path) -> None:
    faults = [{"at_interval": 51, "action": "drain", "node": "lab-w2"}]
    spec = load_spec(_spec(tmp_path, faults, services=["node.hostname==lab-w2"]))
    [problem] = fault_node_problems(spec, NODES, "m1aaaa", LAB)
    assert "lab-w2 may carry the DSO, clock, solvers or recorder" in problem
