"""`node` faults (drain / stop a cluster node): the spec's checks, the timeline,
the injector (real ZeroMQ sockets standing in for the clock, a backend that
says which units a node carried), the fault summary, the base backend's
refusal, and the run's message when a node is lost without a scheduled fault.
(On a real swarm: the swarm backend's tests.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agents.common.protocol import Expect, Finalized, Hold, Message, Release
from agents.common.transport import Collector, Publisher
from orchestrator.backends.base import BackendError, UnitStatus
from orchestrator.backends.local import LocalBackend, free_ports
from orchestrator.errors import SpecError
from orchestrator.faults.injector import Injector
from orchestrator.faults.results import fault_summary, write_fault_log
from orchestrator.faults.timeline import build_timeline
from orchestrator.placement import AgentPlacement, Placement
from orchestrator.plan import build_plan
from orchestrator.run import lost_node
from orchestrator.scenario import build_scenario
from orchestrator.spec import parse_spec
from orchestrator.spec.backends import NODE, PROCESS, BackendEntry

SPEC = """\
name: f
microgrid:
  dataset: {kind: synthetic, prosumers: [101, 103, 701, 702]}
market: {first_interval: 49, last_interval: 56, prediction_window: 3, clock: lockstep}
solvers: [{name: solver-1}]
deployment: {backend: BACKEND}
faults:
FAULTS"""
NODE_FAULTS = """\
  - {at_interval: 50, action: drain, node: worker-1, note: planned maintenance}
  - {at_interval: 51, action: stop, node: worker-2}
"""


def spec_text(faults: str = NODE_FAULTS, backend: str = "local") -> str:
    return SPEC.replace("BACKEND", backend).replace("FAULTS", faults)


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source="exp.yaml", env={})
    return caught.value.problems


@pytest.fixture
def swarm_like(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry entry that lists the node actions (as the swarm backend's does)."""
    from orchestrator.spec import faultchecks

    entry = BackendEntry("local", "local:LocalBackend", PROCESS | NODE)
    monkeypatch.setitem(faultchecks.BACKENDS, "local", entry)


def test_node_faults_load_as_entries_naming_a_node(swarm_like: None) -> None:
    drain, stop = parse_spec(spec_text(), source="exp.yaml", env={}).faults
    assert (drain.action, drain.node, drain.target, drain.at_interval) == (
        "drain",
        "worker-1",
        None,
        50,
    )
    assert (stop.action, stop.node) == ("stop", "worker-2")


def test_node_faults_are_checked_like_every_fault(swarm_like: None) -> None:
    found = problems(
        spec_text(
            """\
  - {at_interval: 50, action: drain}
  - {at_interval: 50, action: stop, node: w1, target: dso}
  - {at_interval: 50, action: stop, node: w1, for_intervals: 2}
  - {at_interval: 50, action: kill, target: dso, node: w1}
  - {at_interval: 48, action: drain, node: w1}
"""
        )
    )
    assert found == [
        "exp.yaml:8:5: faults[0]: action drain needs key 'node'",
        "exp.yaml:9:55: faults[1].target: action stop names a node (key 'node'), not a target",
        "exp.yaml:10:62: faults[2].for_intervals: action stop takes no span (for_intervals)",
        "exp.yaml:11:56: faults[3].node: only valid with action drain or stop",
        "exp.yaml:12:19: faults[4].at_interval: interval 48 starts while the agents are still "
        "coming up, before faults are armed: use 49 or later (or at_seconds)",
    ]


def test_a_backend_without_node_actions_refuses_them_before_anything_starts() -> None:
    for backend in ("local", "docker", "ssh"):
        text = spec_text("  - {at_interval: 50, action: stop, node: w1}\n", backend)
        if backend == "ssh":
            board = "hosts: [{name: b1, address: 10.0.0.1}]"
            text = text.replace("{backend: ssh}", "{backend: ssh, " + board + "}")
        (message,) = [p for p in problems(text) if "not supported" in p]
        assert f"action stop is not supported by the {backend} backend" in message


def test_the_swarm_backend_takes_node_faults() -> None:
    spec = parse_spec(spec_text(backend="swarm"), source="exp.yaml", env={})
    assert [(f.action, f.node) for f in spec.faults] == [
        ("drain", "worker-1"),
        ("stop", "worker-2"),
    ]


def test_the_base_backend_refuses_node_faults() -> None:
    backend = LocalBackend("r")
    with pytest.raises(BackendError, match="fault action drain is not supported by the local"):
        backend.drain_node("worker-1")
    with pytest.raises(BackendError, match="fault action stop is not supported by the local"):
        backend.stop_node("worker-1")


class Nodes(LocalBackend):
    """worker-1 carries a prosumer host and the recorder; worker-2 the chain,
    a solver and another host; a third node is unknown."""

    def __init__(self, hosts: list[str]) -> None:
        super().__init__("test")
        self.on = {"worker-1": (hosts[0], "recorder"), "worker-2": ("chain", "solver-1", hosts[1])}
        self.calls: list[tuple[str, str]] = []

    def drain_node(self, node: str) -> tuple[str, ...]:
        self.calls.append(("drain", node))
        return self.on[node]

    def stop_node(self, node: str) -> tuple[str, ...]:
        self.calls.append(("stop", node))
        if node not in self.on:
            raise BackendError(f"no swarm node {node!r}")
        return self.on[node]


def received(pull: Collector, wait: float = 0.3) -> list[Message]:
    out = []
    while (msg := pull.recv(wait)) is not None:
        out.append(msg)
        wait = 0.05
    return out


def test_the_injector_drains_and_stops_nodes_and_stops_expecting_their_units(
    swarm_like: None, tmp_path: Path
) -> None:
    faults = NODE_FAULTS + "  - {at_interval: 52, action: stop, node: worker-9}\n"
    hosts_of = ["deployment.hosts=[{name: prosumers, count: 2}]"]
    spec = parse_spec(spec_text(faults), source="f.yaml", env={}, overrides=hosts_of)
    plan = build_plan(build_scenario(spec), "local", "run")
    hosts = [a.name for a in plan.by_role("prosumer")]
    pub_port, pull_port, metrics = free_ports(3)
    where = AgentPlacement("a", "127.0.0.1", metrics, "", "", Path("/x"), "", Path("/x"))
    placement = Placement(
        "", "", 0, "", f"tcp://clock:{pub_port}", f"tcp://clock:{pull_port}", Path("/x"),
        {"clock": where},
    )  # fmt: skip
    pub = Publisher(f"tcp://127.0.0.1:{pub_port}")
    pull = Collector(f"tcp://127.0.0.1:{pull_port}")
    backend = Nodes(hosts)
    timeline = build_timeline(spec.faults, plan)
    assert [(s.action, s.target, s.units) for s in timeline.interval_steps] == [
        ("drain", "worker-1", ()),
        ("stop", "worker-2", ()),
        ("stop", "worker-9", ()),
    ]
    injector = Injector(timeline, plan, backend, placement, lambda m: None)
    time.sleep(0.2)  # the SUB connects before the first publish
    try:
        injector.start()
        assert received(pull) == [Hold(50), Hold(51), Hold(52)]
        pub.send(Finalized(50))  # clock interval 49 done: 50 is due
        injector.poll(0.3)
        assert backend.calls == [("drain", "worker-1")]
        # a prosumer host is expected by the clock; the recorder is not
        assert received(pull) == [Expect(hosts[0], False), Release(50)]
        assert injector.down == {hosts[0], "recorder"}
        pub.send(Finalized(51))
        injector.poll(0.3)
        assert received(pull) == [Expect(hosts[1], False), Expect("solver-1", False), Release(51)]
        # the chain is vital: its loss ends the run, it is never exempt
        assert injector.down == {hosts[0], hosts[1], "recorder", "solver-1"}
        pub.send(Finalized(52))
        injector.poll(0.3)
        assert received(pull) == [Release(52)]  # a failed node fault: recorded, run goes on
    finally:
        injector.close()
        pub.close()
        pull.close()
    drain, stop, failed = injector.records
    assert (drain["node"], drain["lost"], drain["note"], drain["ok"]) == (
        "worker-1",
        sorted([hosts[0], "recorder"]),
        "planned maintenance",
        True,
    )
    assert stop["lost"] == sorted(["chain", "solver-1", hosts[1]])
    assert (failed["ok"], failed["error"]) == (False, "BackendError: no swarm node 'worker-9'")
    rows = write_fault_log(tmp_path, injector.records, [])
    summary = fault_summary(rows, injector.down, [])
    assert summary["lost_with_nodes"] == {"worker-1": drain["lost"], "worker-2": stop["lost"]}
    assert summary["actions_failed"] == [
        "stop node worker-9: BackendError: no swarm node 'worker-9'"
    ]
    assert summary["timeline"][0]["node"] == "worker-1"
    assert (tmp_path / "faults.jsonl").read_text().count('"node": "worker-2"') == 1


def test_a_node_lost_without_a_scheduled_fault_is_named_with_its_units() -> None:
    status = {
        "clock": UnitStatus("clock", "running"),
        "prosumers-01": UnitStatus("prosumers-01", "exited", lost_node="worker-1"),
        "prosumers-03": UnitStatus("prosumers-03", "exited", lost_node="worker-1"),
        "solver-1": UnitStatus("solver-1", "exited", returncode=1),
    }
    failure = lost_node(status, exempt=set())
    assert failure is not None and failure.exit_code == 3
    assert str(failure) == (
        "node worker-1: lost (down or drained), with prosumers-01, prosumers-03"
    )
    # a scheduled node fault made them exempt: nothing to report
    assert lost_node(status, exempt={"prosumers-01", "prosumers-03"}) is None
    assert lost_node({"clock": UnitStatus("clock", "running")}, set()) is None


def test_faults_the_clock_never_broadcast_are_reported_not_applied(
    swarm_like: None, tmp_path: Path
) -> None:
    spec = parse_spec(spec_text(), source="f.yaml", env={})
    plan = build_plan(build_scenario(spec), "local", "run")
    pub_port, pull_port = free_ports(2)
    endpoints = (f"tcp://127.0.0.1:{pub_port}", f"tcp://127.0.0.1:{pull_port}")
    placement = Placement("", "", 0, "", *endpoints, Path("/x"), {"clock": PLACED})
    injector = Injector(build_timeline(spec.faults, plan), plan, Nodes(["h1", "h2"]), placement)
    try:
        injector.start()
        injector.poll(0.2)  # nobody publishes: an unreachable clock
        unheard = injector.unheard()
    finally:
        injector.close()
    assert [(r["action"], r["target"], r["ok"]) for r in unheard] == [
        ("drain", "worker-1", False),
        ("stop", "worker-2", False),
    ]
    assert unheard[0]["error"] == f"not applied: nothing received from the clock at {endpoints[0]}"
    summary = fault_summary(write_fault_log(tmp_path, unheard, []), set(), [])
    assert summary["actions_applied"] == 0 and summary["actions_planned"] == 2
    assert summary["actions_failed"][1] == f"stop node worker-2: {unheard[1]['error']}"


PLACED = AgentPlacement(
    "clock", "127.0.0.1", 1, "http://127.0.0.1:1/m", "", Path("/x"), "", Path("/x")
)
