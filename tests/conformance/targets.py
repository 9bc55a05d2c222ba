"""The backends under test: what the conformance suite needs from each.

A `Target` says how to put a spec on its backend (`--set` lines), names its two
prosumer hosts, crashes an agent from outside the run, and lists what a run
has left on the backend, named as `testbed clean` names it. Every target also
looks for local processes labelled with the run id (TESTBED_RUN_ID in their
environment, as every backend sets it), so a backend that starts local helpers
is held to the same rule.

A new backend joins the suite with a subclass here, a `<name>_target` fixture
in conftest.py and its name in BACKENDS.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from orchestrator.backends.docker.engine import (
    LABEL_ORCHESTRATOR,
    LABEL_RUN,
    LABEL_STATE,
    LABEL_UNIT,
    orchestrator_label,
)
from orchestrator.backends.swarm.resources import (
    KINDS,
    LABEL_SWARM_STATE,
    name_of,
    swarm_resources,
)
from orchestrator.backends.swarm.services import service_name
from orchestrator.images import ImageSet
from orchestrator.run import RunResult
from orchestrator.swarm import Lab
from tests.integration.docker_support import labelled
from tests.integration.ssh_support import SshLab

# BeagleBone-sized prosumer hosts with netem on their link, as on hardware
BBB_HOSTS = "deployment.hosts=[{name: prosumers, count: 2, profile: bbb, netem: {latency_ms: 5}}]"


def recorded_names(state: Path, run_id: str) -> dict[int, str]:
    """{pid: unit} of the local processes the run recorded (while its state exists)."""
    names = {}
    for pidfile in state.glob(f"runs/{run_id}/pids/*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            rec = json.loads(pidfile.read_text())
            names[int(rec["pid"])] = str(rec["name"])
    return names


def pid_namespace(pid: int | str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return "?"


def local_processes(run_id: str, state: Path) -> set[str]:
    """Live processes on this machine (not in containers: those are the docker
    and ssh targets' to list) labelled with the run id: "process PID (UNIT)"."""
    names = recorded_names(state, run_id)
    ours = pid_namespace("self")
    found = set()
    for proc in psutil.process_iter(["pid", "name"]):
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("TESTBED_RUN_ID") != run_id:
                continue
            if pid_namespace(proc.pid) != ours:
                continue
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            found.add(f"process {proc.pid} ({names.get(proc.pid, proc.info['name'])})")
    return found


class Target:
    """One backend under test (the local backend by default)."""

    name = "local"
    hosts: tuple[str, str] = ("prosumers-01", "prosumers-02")
    # what a run killed with its orchestrator leaves at once (parts of leftovers)
    left_kinds: tuple[str, ...] = ("(chain)",)

    def __init__(self, state: Path) -> None:
        self.state = state

    @property
    def overrides(self) -> list[str]:
        """`--set` lines that put smoke.yaml (or a variant) on this backend."""
        return [f"deployment.backend={self.name}"]

    @property
    def smoke_overrides(self) -> list[str]:
        """The smoke run's `--set` lines: the backend as a user would deploy it."""
        return self.overrides

    def leftovers(self, run_id: str) -> set[str]:
        """What of run `run_id` is still there, named as `testbed clean` names it
        (an item matches a report line equal to it or starting with "ITEM:")."""
        return local_processes(run_id, self.state)

    def crash(self, run_id: str, unit: str) -> None:
        """SIGKILL the agent of `unit` from outside the run."""
        pid = next(p for p, name in recorded_names(self.state, run_id).items() if name == unit)
        os.kill(pid, signal.SIGKILL)

    def check_smoke(self, result: RunResult) -> None:
        """Backend-specific facts of a smoke run (the suite checks the rest)."""

    @contextlib.contextmanager
    def bystanders(self) -> Iterator[None]:
        """Things `testbed clean` must leave alone; checked when the block ends."""
        yield


class DockerTarget(Target):
    name = "docker"
    left_kinds = ("container ", "network ")

    def __init__(self, state: Path, client: Any, images: ImageSet, tag: str) -> None:
        super().__init__(state)
        self.client, self.images, self.tag = client, images, tag

    @property
    def smoke_overrides(self) -> list[str]:
        # the other scenarios run on unlimited containers: quicker to start
        return [*self.overrides, BBB_HOSTS]

    def leftovers(self, run_id: str) -> set[str]:
        return super().leftovers(run_id) | set(labelled(self.client, run_id))

    def crash(self, run_id: str, unit: str) -> None:
        selector = [f"{LABEL_RUN}={run_id}", f"{LABEL_UNIT}={unit}"]
        (victim,) = self.client.containers.list(filters={"label": selector})
        victim.kill(signal="SIGKILL")

    def check_smoke(self, result: RunResult) -> None:
        info = json.loads((result.bundle / "docker.json").read_text())
        assert info["images"]["agent"] == self.images.agent
        assert set(info["hosts"]) == set(self.hosts)
        assert {info["hosts"][host]["memory_bytes"] for host in self.hosts} == {512 * 2**20}
        for host in self.hosts:
            log = (result.bundle / "logs" / f"{host}.log").read_text()
            assert "netem" in log and "delay 5ms" in log, log[:500]

    @contextlib.contextmanager
    def bystanders(self) -> Iterator[None]:
        # a live run (this process) of the same state directory, a dead run of another
        me = orchestrator_label()
        live = {LABEL_RUN: "t-live", LABEL_ORCHESTRATOR: me, LABEL_STATE: str(self.state.resolve())}
        other = {LABEL_RUN: "t-other", LABEL_ORCHESTRATOR: "x:1:0", LABEL_STATE: "/elsewhere"}
        keep = [
            self.client.networks.create(f"testbed-{self.tag}-{i}", labels=labels)
            for i, labels in enumerate((live, other))
        ]
        try:
            yield
            for network in keep:
                self.client.networks.get(network.id)  # still there
        finally:
            for network in keep:
                network.remove()


class SshTarget(Target):
    name = "ssh"
    hosts = ("board-1", "board-2")
    left_kinds = ("(chain)", "agents on board-1", "agents on board-2")

    def __init__(self, state: Path, lab: SshLab) -> None:
        super().__init__(state)
        self.lab = lab
        self.boards = {b.name: b for b in lab.boards[:2]}
        assert set(self.boards) == set(self.hosts)

    @property
    def overrides(self) -> list[str]:
        return self.lab.overrides(list(self.boards.values()))

    def leftovers(self, run_id: str) -> set[str]:
        found = super().leftovers(run_id)
        for name, board in self.boards.items():
            # one login per board: its processes, then its run directories
            out = self.lab.ssh(board, "ps -eo args=; echo '--'; ls -1 ~/.testbed/runs 2>/dev/null")
            processes, _, runs = out.partition("\n--\n")
            agents = [p for p in processes.splitlines() if "-m agents" in p and run_id in p]
            if agents or run_id in runs.split():
                found.add(f"agents on {name}")
        return found

    def crash(self, run_id: str, unit: str) -> None:
        # the agent's python, not the sh wrapper that reports its exit
        pattern = f"^/home/.*/bin/python -m agents prosumer .*{run_id}"
        self.lab.ssh(self.boards[unit], f"pkill -KILL -f '{pattern}'")

    def check_smoke(self, result: RunResult) -> None:
        # prosumers ran on the boards; services listened on the network's gateway
        info = json.loads((result.bundle / "ssh.json").read_text())
        assert info["bind_address"] == self.lab.gateway
        assert set(info["agents"]) == set(self.hosts)
        manifest = json.loads((result.bundle / "manifest.json").read_text())
        for board in self.hosts:
            host = manifest["ssh"]["hosts"][board]
            assert host["arch"] == os.uname().machine
            assert abs(host["clock_offset_seconds"]) < 0.5
            log = (result.bundle / "logs" / f"{board}.log").read_text()
            assert f"prosumer/{board}" in log
            assert result.summary["processes"][board]["peak_rss_mb"] > 0


class SwarmTarget(Target):
    """The swarm lab (tests/swarm_support.py): the smoke run's two prosumer hosts
    land on the two workers (labelled for prosumers), the services on the manager."""

    name = "swarm"
    left_kinds = ("service ", "network ")

    def __init__(self, state: Path, client: Any, lab: Lab, tag: str) -> None:
        super().__init__(state)
        self.client, self.lab, self.tag = client, lab, tag
        assert lab.registry is not None
        self.registry = lab.registry.address

    @property
    def overrides(self) -> list[str]:
        return [
            f"deployment.backend={self.name}",
            f"deployment.swarm.registry={self.registry}",
            # hosts on this lab's workers only (another lab, a user's, may share the swarm)
            f"deployment.swarm.prosumers=[node.labels.testbed.lab=={self.lab.id}]",
        ]

    @property
    def smoke_overrides(self) -> list[str]:
        return [*self.overrides, BBB_HOSTS]

    def leftovers(self, run_id: str) -> set[str]:
        """Services, networks, secrets, configs on the manager; containers on any
        node once their service is gone (until then the service names them)."""
        found = super().leftovers(run_id)
        swarm = swarm_resources(self.client, run_id).get(run_id)
        if swarm is not None:
            for kind in KINDS:
                found |= {f"{kind[:-1]} {name_of(item)}" for item in getattr(swarm, kind)}
        if swarm is None or not swarm.services:
            # by name too: the tasks of the run's one-shot services (prepull, the ports'
            # check) carry no run label (a removed swarm *job* left them for good)
            prefix = service_name(run_id, "")  # every task's container: its service's name
            # the low-level list: one call, no inspect of a container being removed meanwhile
            named = self.client.api.containers(all=True, filters={"name": prefix})
            found |= {c for c in labelled(self.client, run_id) if c.startswith("container ")}
            found |= {f"container {c['Names'][0].lstrip('/')}" for c in named}
            for worker in self.lab.workers:
                code, out = self.lab.node_docker(
                    self.client, worker, "ps", "-a", "--format", "{{.Names}}", "--filter",
                    f"name={prefix}",
                )  # fmt: skip
                if code != 0:  # a restarted node's engine is still starting: not known yet
                    found.add(f"engine of {worker} not answering: {out}")
                    continue
                found |= {f"container {name} on {worker}" for name in out.split()}
        return found

    def crash(self, run_id: str, unit: str) -> None:
        """SIGKILL the unit's container on whichever node runs it."""
        [task] = [
            t
            for t in self.client.api.tasks(filters={"service": service_name(run_id, unit)})
            if t["Status"]["State"] == "running"
        ]
        container = task["Status"]["ContainerStatus"]["ContainerID"]
        worker = next((n.name for n in self.lab.nodes if n.node_id == task["NodeID"]), None)
        if worker is None:  # on the manager: this engine
            self.client.containers.get(container).kill(signal="SIGKILL")
            return
        code, out = self.lab.node_docker(self.client, worker, "kill", container)
        assert code == 0, out

    def check_smoke(self, result: RunResult) -> None:
        info = json.loads((result.bundle / "swarm.json").read_text())
        assert info["registry"] == self.registry
        assert all(ref.startswith(f"{self.registry}/") for ref in info["images"].values())
        # one prosumer host on each worker (spread), BeagleBone limits, netem on the link
        assert sorted(info["hosts"][host]["node"] for host in self.hosts) == sorted(
            self.lab.workers
        )
        assert {info["hosts"][host]["memory_bytes"] for host in self.hosts} == {512 * 2**20}
        for host in self.hosts:  # on the run's network alone: eth0
            log = (result.bundle / "logs" / f"{host}.log").read_text()
            assert "netem" in log and "delay 5ms" in log and "on eth0" in log, log[:500]
        # the run's network internal; the services with ports on an edge network
        assert info["network"]["subnet"] and info["edge_network"]["subnet"]

    @contextlib.contextmanager
    def bystanders(self) -> Iterator[None]:
        me = orchestrator_label()
        state = str(self.state.resolve())
        live = {LABEL_RUN: "t-live", LABEL_ORCHESTRATOR: me, LABEL_SWARM_STATE: state}
        other = {LABEL_RUN: "t-other", LABEL_ORCHESTRATOR: "x:1:0", LABEL_SWARM_STATE: "/elsewhere"}
        keep = [
            self.client.networks.create(f"testbed-{self.tag}-{i}", driver="overlay", labels=labels)
            for i, labels in enumerate((live, other))
        ]
        try:
            yield
            for network in keep:
                self.client.networks.get(network.id)  # still there
        finally:
            for network in keep:
                network.remove()
