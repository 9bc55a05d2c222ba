"""bench/bringup.py --backend swarm: CPU seconds by process class, and the tasks' timeline.

Everything of the lab runs on this machine, so /proc and the cgroup tree see it all:
- each worker's engine side: its node container's cpuacct cgroup (dockerd,
  containerd, shims, docker-proxy, and the short-lived runc, iptables... which
  the sampled processes do not show: `other`), split by process from /proc;
  /<node>/<container id> (a lab of before: /docker/<container id>);
- each worker's tasks: the cgroup subtree its dockerd puts containers under
  (/<node>/containers; before: /<node>), split into the prosumer hosts' Python and the rest;
- the manager's engine: this machine's dockerd and containerd and their shims
  (their own time plus the children they reaped: runc);
- the run's containers on the manager, by role (chain, Prometheus, DSO, ...);
- the orchestrator (`testbed run` and its threads);
- the machine's busy seconds (/proc/stat), all of the above and anyone else.

`Timeline` polls the manager for the run's services and tasks and notes when
each service was created and when each task was first seen in each state
(assigned ... running), and reads each prosumer host's log for its ready line.
"""

from __future__ import annotations

import calendar
import os
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

from bench.cpu import machine_busy_seconds, proc_cpu
from bench.hostcpu import HostCpu

CPUACCT = Path("/sys/fs/cgroup/cpuacct")
TICK = os.sysconf("SC_CLK_TCK")
ENGINE = ("dockerd", "containerd", "shims", "docker-proxy")


def cgroup_cpu(folder: Path) -> float:
    try:
        return int((folder / "cpuacct.usage").read_text()) / 1e9
    except (OSError, ValueError):
        return 0.0


def cpuacct_of(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "cpuacct" in controllers.split(","):
                return path
    except (OSError, ValueError):
        pass
    return ""


def children_cpu(pid: int) -> float:
    """cutime + cstime: what the children `pid` reaped spent."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[13]) + int(fields[14])) / TICK


def process_class(proc: psutil.Process) -> str:
    name = proc.name()
    if name.startswith("containerd-shim"):
        return "shims"
    if name in ("dockerd", "containerd", "docker-proxy", "docker-init", "prometheus", "anvil"):
        return name
    cmd = proc.cmdline()
    if "agents" in cmd:
        i = cmd.index("agents")
        return f"python {cmd[i + 1]}" if i + 1 < len(cmd) else "python"
    return "other"


class CpuByClass:
    """Cumulative CPU seconds by (place, class), sampled every `period` s."""

    def __init__(self, client: Any, workers: Iterable[str], run_pid_of: Any, period=1.0) -> None:
        self.client = client
        self.workers = {w: client.containers.get(w).id for w in workers}
        self.run_pid_of = run_pid_of  # () -> pid of `testbed run`, or None
        self.period = period
        self.procs: dict[tuple[int, int], tuple[str, float]] = {}
        self.reaped: dict[tuple[int, int], tuple[str, float]] = {}
        self.base: dict[tuple[int, int], tuple[float, float]] = {}
        self.cgroups: dict[str, tuple[float, float]] = {}  # key -> (first, last)
        self.busy0 = machine_busy_seconds()
        self.t0 = time.time()
        self.series: list[tuple[float, float, dict[str, float]]] = []
        self.hosts = HostCpu()  # each prosumer host's own samples (bench/hostcpu.py)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> CpuByClass:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def _what(self, proc: psutil.Process, orchestrator: set[int]) -> str | None:
        if proc.pid in orchestrator:
            return "orchestrator"
        place = self._place(cpuacct_of(proc.pid))
        if place is None:
            return None
        what = process_class(proc)
        if place == "manager":  # this machine's engine only (not other jobs' processes)
            return f"manager engine: {what}" if what in ENGINE else None
        return f"{place}: {what}"

    def _place(self, cgroup: str) -> str | None:
        for worker, cid in self.workers.items():
            if cgroup.startswith((f"/docker/{cid}", f"/{worker}/{cid}")):
                return f"{worker} engine"
            if cgroup.startswith(f"/{worker}/"):
                return f"{worker} tasks"
        if cgroup == "/":
            return "manager"
        if cgroup.startswith("/docker/"):
            return "manager containers"
        return None

    def _cgroup(self, key: str, folder: Path) -> None:
        value = cgroup_cpu(folder)
        first, _ = self.cgroups.get(key, (value, value))
        self.cgroups[key] = (first, value)

    def sample(self) -> None:
        run_pid = self.run_pid_of()
        orchestrator = set()
        if run_pid is not None:
            try:
                root = psutil.Process(run_pid)
                orchestrator = {run_pid} | {c.pid for c in root.children(recursive=True)}
            except psutil.Error:
                pass
        for worker, cid in self.workers.items():
            if (CPUACCT / worker / cid).is_dir():  # the node a subtree of its own
                self._cgroup(f"{worker} engine", CPUACCT / worker / cid)
                self._cgroup(f"{worker} tasks", CPUACCT / worker / "containers")
            else:
                self._cgroup(f"{worker} engine", CPUACCT / "docker" / cid)
                self._cgroup(f"{worker} tasks", CPUACCT / worker)
        first = not self.series
        now = time.time()
        for proc in psutil.process_iter():
            try:
                got = proc_cpu(proc.pid)
                if got is None:
                    continue
                key = (proc.pid, got[1])
                if key not in self.procs:
                    what = self._what(proc, orchestrator)
                    if what is None:
                        continue
                    # processes alive at the first sample count from then on
                    self.base[key] = (got[0], children_cpu(proc.pid)) if first else (0.0, 0.0)
                    self.procs[key] = (what, 0.0)
                what = self.procs[key][0]
                base, reaped0 = self.base[key]
                self.procs[key] = (what, got[0] - base)
                if what.startswith("manager engine"):
                    self.reaped[key] = (what, children_cpu(proc.pid) - reaped0)
                elif what.endswith("tasks: python prosumer"):
                    self.hosts.sample(proc, key, now)
            except psutil.Error:
                continue
        self.series.append((time.time(), machine_busy_seconds() - self.busy0, self.totals()))

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for what, cpu in self.procs.values():
            out[what] += cpu
        for what, cpu in self.reaped.values():
            if what.startswith("manager engine"):
                out[f"{what} (reaped children)"] += cpu
        return out

    def report(self, since: float | None = None, until: float | None = None) -> dict[str, Any]:
        """CPU seconds per class between two wall times (default: the whole sampling);
        cgroup totals are whole-sampling."""
        base = self._at(since) if since else (self.t0, 0.0, {})
        end = self._at(until) if until else self.series[-1]
        by = {k: round(v - base[2].get(k, 0.0), 1) for k, v in end[2].items()}
        by = {k: v for k, v in sorted(by.items(), key=lambda x: -x[1]) if v >= 0.1}
        cg = {k: round(b - a, 1) for k, (a, b) in sorted(self.cgroups.items())}
        for key in list(cg):
            counted = sum(v for k, v in by.items() if k.startswith(f"{key}:"))
            cg[f"{key}: not in sampled processes (runc, iptables, exited)"] = round(
                cg[key] - counted, 1
            )
        return {
            "wall_seconds": round(end[0] - base[0], 1),
            "machine_busy_cpu_seconds": round(end[1] - base[1], 1),
            "by_class": by,
            "cgroups_whole_sampling": cg,
        }

    def _at(self, when: float) -> tuple[float, float, dict[str, float]]:
        best = self.series[0]
        for item in self.series:
            if item[0] <= when:
                best = item
        return best


STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO .*: "
READY_LOG = re.compile(STAMP + r"\d+ prosumers, ")
POSTED_LOG = re.compile(STAMP + r"tick \d+: \d+ offers posted ")  # a host's tick done


class Timeline:
    """When the run's services were created and their tasks reached each state."""

    STATES = ("assigned", "accepted", "preparing", "starting", "running")

    def __init__(self, client: Any, period: float = 1.0) -> None:
        self.client = client
        self.period = period
        self.run_id: str | None = None
        self.created: dict[str, float] = {}  # service id -> seen created (wall)
        self.unit: dict[str, str] = {}
        self.state_at: dict[str, dict[str, float]] = defaultdict(dict)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> Timeline:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            if self.run_id is None:
                continue
            try:
                self._poll()
            except Exception:  # the manager is busy: next time
                continue

    def _poll(self) -> None:
        now = time.time()
        label = {"label": f"testbed.run={self.run_id}"}
        for svc in self.client.api.services(filters=label):
            if svc["ID"] not in self.created:
                self.created[svc["ID"]] = now
                self.unit[svc["ID"]] = svc["Spec"]["Labels"].get("testbed.unit", "?")
        # by label: asked by service ids the manager looks each service up first
        # (bench/managercost.py: 26 ms of its CPU per poll at 93 services, 9 ms by
        # label), and this polls every second for the whole bring-up
        for task in self.client.api.tasks(filters=label):
            state = task.get("Status", {}).get("State", "")
            seen = self.state_at[task["ServiceID"]]
            if state in self.STATES:
                for s in self.STATES[: self.STATES.index(state) + 1]:
                    seen.setdefault(s, now)

    def report(self, started: float, logs: Path | None) -> dict[str, Any]:
        ready = ready_times(logs) if logs else {}
        hosts = [s for s, u in self.unit.items() if u.startswith("bbb") or "prosumer" in u]
        cols: dict[str, list[float]] = defaultdict(list)
        for sid in hosts:
            cols["service created"].append(self.created[sid] - started)
            for s, t in self.state_at.get(sid, {}).items():
                cols[f"task {s}"].append(t - started)
            if self.unit[sid] in ready:
                cols["host ready (its log)"].append(ready[self.unit[sid]] - started)
        return {
            "prosumer_hosts": len(hosts),
            "seconds_from_run_start": {k: _quantiles(v) for k, v in cols.items()},
            "running_per_second": _rate(cols["task starting"], cols["task running"]),
        }


def ready_times(logs: Path, line: re.Pattern[str] = READY_LOG) -> dict[str, float]:
    """Unit name -> wall time of the first line of its log that matches `line`."""
    out = {}
    for log in logs.glob("*.log"):
        try:
            for text in log.read_text(errors="replace").splitlines():
                if m := line.match(text):
                    stamp = calendar.timegm(time.strptime(m[1], "%Y-%m-%d %H:%M:%S"))
                    out[log.stem] = stamp + int(m[2]) / 1000
                    break
        except OSError:
            continue
    return out


def _rate(starting: list[float], running: list[float]) -> float | None:
    """Tasks that reached running per second, from the first task starting to
    the last one running (how fast the workers' engines bring containers up)."""
    if not starting or not running or max(running) <= min(starting):
        return None
    return round(len(running) / (max(running) - min(starting)), 2)


def _quantiles(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    if not v:
        return {}
    p50, p90 = (round(v[min(len(v) - 1, int(q * len(v)))], 1) for q in (0.5, 0.9))
    return {"n": len(v), "first": round(v[0], 1), "p50": p50, "p90": p90, "last": round(v[-1], 1)}
