"""Where the suite's time goes: wall and CPU seconds of every test, written as JSON.

Registered by tests/conftest.py. Each test (its setup, call and teardown, so the
fixtures it sets up or tears down count for it) records:

- wall: seconds of real time (depends on how loaded the machine is: see load1);
- cpu_self: this pytest process (less the sampling below);
- cpu_tree: the processes it starts and their descendants (anvil, agents, the CLI,
  sshd, glpsol, ...): children it reaped (RUSAGE_CHILDREN) plus the CPU so far of
  the live descendants (including what they reaped). A process orphaned while
  alive (`testbed up` exits, its agents keep running) is followed from the sample
  that last saw it as a descendant;
- cpu_docker: containers of this session (their `testbed.orchestrator` label names
  this process or one of its descendants), from their cpuacct cgroup, and a swarm
  lab node's own cgroup subtree (its containers). Image builds in dockerd are not
  counted; a container's last period before removal may be missed;
- load1: the 1-minute load average at the test's end, and machine_busy: busy
  seconds of all cores over the test (everyone's, to say how loaded it was).

`--suitetime-report PATH` (default .pytest_cache/suitetime.json) names the file
(under pytest-xdist, one per worker: suitetime-gw0.json, ...); bench/suitetime.py
summarises one or more of them per module.
"""

from __future__ import annotations

import json
import os
import resource
import threading
import time
from collections import defaultdict
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

TICK = os.sysconf("SC_CLK_TCK")
PERIOD_SECONDS = 1.0
CPUACCT = Path("/sys/fs/cgroup/cpuacct")
LABEL_ORCHESTRATOR = "testbed.orchestrator"  # host:pid:create_time (docker engine.py)
DEFAULT_REPORT = ".pytest_cache/suitetime.json"
WRITE_EVERY_SECONDS = 30.0


def _stat(pid: int) -> tuple[int, float] | None:
    """(start ticks, utime+stime+cutime+cstime seconds) of `pid`, None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[19]), sum(int(v) for v in fields[11:15]) / TICK


def _descendants(root: int) -> list[int]:
    """Every live descendant of `root`, from the kernel's per-thread children lists
    (cheaper than psutil's walk over every process of the machine)."""
    found: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            found.extend(children)
            todo.extend(children)
    return found


def _rusage_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _cgroup_seconds(path: Path) -> float | None:
    try:
        return int((path / "cpuacct.usage").read_text()) / 1e9
    except (OSError, ValueError):
        return None


def machine_busy_seconds() -> float:
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK


class TreeCpu:
    """CPU seconds of this process's descendants and of this session's containers,
    sampled in a thread every PERIOD_SECONDS and on demand (at test boundaries)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._live: dict[tuple[int, int], float] = {}  # descendants: (pid, start) -> cpu
        self._adopted: dict[tuple[int, int], float] = {}  # orphaned while alive
        self._seen_pids: set[int] = {self.pid}
        self._cgroups: dict[str, tuple[Path, float]] = {}  # container id or lab node
        self._judged: set[str] = set()  # container ids whose labels were read
        self.own_cpu = 0.0  # the sampling's own CPU (taken off cpu_self)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="suitetime", daemon=True)
        self._client: Any = None

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(PERIOD_SECONDS):
            self.sample()

    def sample(self) -> tuple[float, float]:
        """(descendants' CPU so far, containers' CPU so far)."""
        started = time.thread_time()
        with self._lock:
            self._sample_processes()
            self._sample_containers()
            procs = sum(self._live.values()) + sum(self._adopted.values())
            docker = sum(value for _, value in self._cgroups.values())
            self.own_cpu += time.thread_time() - started
        return procs + _rusage_seconds(resource.RUSAGE_CHILDREN), docker

    def _sample_processes(self) -> None:
        pids = _descendants(self.pid)
        live: dict[tuple[int, int], float] = {}
        for pid in pids:
            got = _stat(pid)
            if got is not None:
                live[(pid, got[0])] = got[1]
        self._seen_pids.update(pids)
        for key in set(self._live) - set(live):
            got = _stat(key[0])
            if got is not None and got[0] == key[1]:  # alive but no longer ours: orphaned
                self._adopted[key] = got[1]
            # else gone: reaped by us or a descendant, so counted in their rusage
        for key in self._adopted:
            got = _stat(key[0])
            if got is not None and got[0] == key[1]:
                self._adopted[key] = got[1]
        self._live = live

    def _sample_containers(self) -> None:
        docker_root = CPUACCT / "docker"
        try:
            ids = [p.name for p in docker_root.iterdir() if p.is_dir()]
        except OSError:
            return
        for cid in ids:
            if cid not in self._judged:
                self._judged.add(cid)
                self._adopt_container(cid)
        for key, (path, last) in list(self._cgroups.items()):
            value = _cgroup_seconds(path)
            if value is not None and value >= last:
                self._cgroups[key] = (path, value)

    def _adopt_container(self, cid: str) -> None:
        """Count container `cid` when this session made it (and a lab node's subtree)."""
        config = self._inspect(cid)
        labels = config.get("Labels") or {}
        try:
            pid = int(str(labels.get(LABEL_ORCHESTRATOR, "")).rsplit(":", 2)[1])
        except (IndexError, ValueError):
            return
        if pid not in self._seen_pids:
            return
        self._cgroups[cid] = (CPUACCT / "docker" / cid, 0.0)
        env = dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)
        node = env.get("TESTBED_NODE_NAME")
        if node:  # a swarm lab node: its dockerd puts its containers under /<node>
            self._cgroups[f"node:{node}"] = (CPUACCT / node, 0.0)

    def _inspect(self, cid: str) -> dict[str, Any]:
        try:
            if self._client is None:
                import docker

                self._client = docker.from_env(timeout=10)
            return dict(self._client.api.inspect_container(cid).get("Config") or {})
        except Exception:  # no engine, or the container is gone: not ours to count
            return {}


class SuiteTime:
    """The pytest plugin: one record per test, the report at the session's end."""

    def __init__(self, config: pytest.Config) -> None:
        self.path = Path(config.getoption("suitetime_report") or DEFAULT_REPORT)
        if not self.path.is_absolute():
            self.path = Path(config.rootpath) / self.path
        worker = getattr(config, "workerinput", {}).get("workerid")  # pytest-xdist
        if worker:  # one file per worker: bench/suitetime.py reads them together
            self.path = self.path.with_name(f"{self.path.stem}-{worker}{self.path.suffix}")
        self.tree = TreeCpu()
        self.records: list[dict[str, Any]] = []
        self.started = time.time()
        self._written = time.monotonic()

    def pytest_sessionstart(self) -> None:
        self.tree.start()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, Any, None]:
        wall0, busy0 = time.monotonic(), machine_busy_seconds()
        self_cpu0, own0 = _rusage_seconds(resource.RUSAGE_SELF), self.tree.own_cpu
        tree0, docker0 = self.tree.sample()
        yield
        tree1, docker1 = self.tree.sample()
        own = self.tree.own_cpu - own0
        self_cpu = _rusage_seconds(resource.RUSAGE_SELF) - self_cpu0 - own
        self.records.append(
            {
                "nodeid": item.nodeid,
                "module": item.nodeid.split("::", 1)[0],
                "wall": round(time.monotonic() - wall0, 3),
                "cpu_self": round(self_cpu, 3),
                "cpu_tree": round(tree1 - tree0, 3),
                "cpu_docker": round(docker1 - docker0, 3),
                "machine_busy": round(machine_busy_seconds() - busy0, 2),
                "load1": round(os.getloadavg()[0], 2),
            }
        )
        if time.monotonic() - self._written > WRITE_EVERY_SECONDS:  # a killed run keeps most
            self._write()

    def _write(self) -> None:
        self._written = time.monotonic()
        report = {
            "started": self.started,
            "wall": round(time.time() - self.started, 1),
            "cpus": os.cpu_count(),
            "sampling_cpu": round(self.tree.own_cpu, 2),
            "tests": self.records,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(report, indent=1) + "\n")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.tree.stop()
        if self.records:
            self._write()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.records:
            return
        modules: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for r in self.records:
            modules[r["module"]][0] += r["wall"]
            modules[r["module"]][1] += r["cpu_self"] + r["cpu_tree"] + r["cpu_docker"]
        top = sorted(modules.items(), key=lambda kv: -kv[1][0])[:15]
        terminalreporter.write_sep("=", "slowest modules (wall s / CPU s of the process tree)")
        for module, (wall, cpu) in top:
            terminalreporter.write_line(f"{wall:8.1f} {cpu:8.1f}  {module}")
        terminalreporter.write_line(f"per test: {self.path}")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--suitetime-report",
        default=None,
        help=f"where to write per-test wall/CPU seconds as JSON (default {DEFAULT_REPORT})",
    )


def register(config: pytest.Config) -> None:
    config.pluginmanager.register(SuiteTime(config), "suitetime")
