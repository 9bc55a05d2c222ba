"""The injector against real ZeroMQ sockets standing in for the clock (a PUB it
follows, a PULL it controls) and a recording backend: holds before the market,
the order expect -> action -> release, spans, seconds, failures recorded."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agents.common.protocol import Expect, Finalized, Hold, Message, Release, Tick
from agents.common.transport import Collector, Publisher
from orchestrator.backends.base import BackendError
from orchestrator.backends.local import LocalBackend, free_ports
from orchestrator.faults.injector import Injector, orchestrator_endpoint
from orchestrator.faults.timeline import build_timeline
from orchestrator.placement import AgentPlacement, Placement
from orchestrator.plan import Plan, build_plan
from orchestrator.scenario import build_scenario
from orchestrator.spec import parse_spec

SPEC = """\
name: f
microgrid:
  dataset: {kind: synthetic, prosumers: [101, 103, 701, 702]}
market: {first_interval: 49, last_interval: 56, prediction_window: 3, clock: CLOCK}
solvers: [{name: solver-1}, {name: solver-2}]
faults:
  - {at_interval: 50, for_intervals: 2, target: solver-1, action: kill}
  - {at_interval: 51, target: prosumers, action: pause, until_interval: 53}
  - {at_interval: 51, target: dso, action: resume}
  - {at_seconds: 0.3, target: recorder, action: pause}
"""


def process_calls(backend: Recording) -> list[tuple[str, str]]:
    return [c for c in backend.calls if c[1] != "recorder"]  # its step counts seconds


class Recording(LocalBackend):
    """Records the fault calls; resume of the dso fails (it is not paused)."""

    def __init__(self) -> None:
        super().__init__("test")
        self.calls: list[tuple[str, str]] = []

    def kill(self, name: str) -> None:
        self.calls.append(("kill", name))

    def restart(self, name: str) -> None:
        self.calls.append(("restart", name))

    def pause(self, name: str) -> None:
        self.calls.append(("pause", name))

    def resume(self, name: str) -> None:
        if name == "dso":
            raise BackendError("dso: not paused")
        self.calls.append(("resume", name))


def setup(clock: str) -> tuple[Plan, Placement, Injector, Recording, Publisher, Collector]:
    spec = parse_spec(SPEC.replace("CLOCK", clock), source="f.yaml", env={})
    plan = build_plan(build_scenario(spec), "local", "run")
    pub_port, pull_port, metrics = free_ports(3)
    agents = {
        a.name: AgentPlacement(
            a.name,
            "127.0.0.1",
            metrics,
            f"http://127.0.0.1:{metrics}/m",
            "",
            Path("/nonexistent"),
            "",
            Path("/nonexistent"),
        )
        for a in plan.agents
    }
    placement = Placement(
        "",
        "",
        0,
        "",
        f"tcp://clock:{pub_port}",
        f"tcp://clock:{pull_port}",
        Path("/nonexistent"),
        agents,
    )
    pub = Publisher(f"tcp://127.0.0.1:{pub_port}")
    pull = Collector(f"tcp://127.0.0.1:{pull_port}")
    backend = Recording()
    injector = Injector(build_timeline(spec.faults, plan), plan, backend, placement, lambda m: None)
    time.sleep(0.2)  # the SUB connects before the first publish
    return plan, placement, injector, backend, pub, pull


def received(pull: Collector, wait: float = 0.3) -> list[Message]:
    out = []
    while (msg := pull.recv(wait)) is not None:
        out.append(msg)
        wait = 0.05
    return out


@pytest.mark.parametrize("clock", ["lockstep", "wallclock"])
def test_steps_land_at_their_interval_in_order(clock: str) -> None:
    plan, _, injector, backend, pub, pull = setup(clock)
    hosts = [a.name for a in plan.by_role("prosumer")]
    try:
        injector.start()
        holds = received(pull)
        assert holds == ([Hold(50), Hold(51), Hold(52), Hold(53)] if clock == "lockstep" else [])
        pub.send(Tick(48))
        injector.poll(0.2)
        assert process_calls(backend) == [] and injector.current == 48
        pub.send(Finalized(49))  # clock interval 48 done; 49 next: nothing due
        pub.send(Finalized(50))  # 49 done: the clock holds at 50
        injector.poll(0.3)
        assert process_calls(backend) == [("kill", "solver-1")]
        release = [Release(50)] if clock == "lockstep" else []
        assert received(pull) == [Expect("solver-1", False), *release]
        assert injector.down == {"solver-1"}
        pub.send(Tick(50))
        pub.send(Finalized(51))
        injector.poll(0.3)
        assert process_calls(backend)[1:] == [("pause", h) for h in hosts]
        msgs = received(pull)
        assert msgs[: len(hosts)] == [Expect(h, False) for h in hosts]
        assert msgs[len(hosts) :] == ([Release(51)] if clock == "lockstep" else [])
        failed = [r for r in injector.records if not r["ok"]]
        assert [(r["action"], r["unit"], r["error"]) for r in failed] == [
            ("resume", "dso", "BackendError: dso: not paused")
        ]
        pub.send(Tick(52))  # a wallclock tick (or a missed finalized) also makes 52 due
        injector.poll(0.3)
        assert process_calls(backend)[-1] == ("restart", "solver-1")
        assert injector.down == set()
        assert received(pull)[0] == Expect("solver-1", True)
        # seconds count from the first tick seen
        deadline = time.monotonic() + 10
        while ("pause", "recorder") not in backend.calls:
            assert time.monotonic() < deadline
            injector.poll(0.05)
        (paused,) = [r for r in injector.records if r["unit"] == "recorder"]
        assert injector.started is not None and paused["time"] >= injector.started + 0.3
        injector.restore()  # the hosts' span reaches 53 and the recorder's has none
        paused_units = sorted([*hosts, "recorder"])
        assert backend.calls[-len(paused_units) :] == [("resume", u) for u in paused_units]
        assert injector.paused == set()
        by_unit = {(r["action"], r["unit"]): r for r in injector.records}
        assert by_unit[("kill", "solver-1")]["clock_interval"] == 50
        assert by_unit[("pause", "recorder")]["at_seconds"] == 0.3
        assert by_unit[("resume", hosts[0])]["why"] == "end of run"
    finally:
        injector.close()
        pub.close()
        pull.close()


def test_the_clock_is_reached_where_it_listens() -> None:
    # local: loopback; ssh: the bind address (metrics stay on loopback); docker:
    # the container's name, reached at the published ports (the metrics host)
    local = "http://127.0.0.1:9100/metrics"
    assert orchestrator_endpoint("tcp://127.0.0.1:7001", local) == "tcp://127.0.0.1:7001"
    assert orchestrator_endpoint("tcp://172.21.0.1:7001", local) == "tcp://172.21.0.1:7001"
    assert orchestrator_endpoint("tcp://clock:7001", local) == "tcp://127.0.0.1:7001"
    board = "http://pc.lan:25000/metrics"  # clock on an ssh services_host named pc.lan
    assert orchestrator_endpoint("tcp://pc.lan:26000", board) == "tcp://pc.lan:26000"
