"""CPU seconds per testbed component, sampled from /proc while a run goes.

On a shared machine wall time says little about which part of the testbed is
slow: other jobs take the cores. The CPU seconds each process spent (utime +
stime in /proc/<pid>/stat) do not depend on that load. `CpuSampler` follows this
process and all its descendants (the local backend's units: anvil, the agents,
Prometheus, and whatever they start) and adds the seconds up per component:

- chain: anvil;
- dso, solver, recorder, clock, prosumer (the prosumer hosts): `python -m agents
  <role>`;
- prometheus;
- orchestrator: this process (the run loop, finalization feed, progress), less
  the sampling itself (reported apart);
- anything else under its nearest classified ancestor.

Every sample also adds up resident memory per component (the peak is reported)
and reads the 1-minute load average.

A process's last sample counts after it exits (up to one period of its CPU may be
missed at its very end). Children that a process waited for are not added from
cutime/cstime, so nothing is counted twice. The machine's own busy seconds
(/proc/stat) over the same time are kept beside them, to show how loaded it was.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

TICK = os.sysconf("SC_CLK_TCK")
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20
PERIOD_SECONDS = 1.0
ROLES = ("dso", "prosumer", "solver", "clock", "recorder")


@dataclass
class _Proc:
    component: str
    unit: str
    cpu: float = 0.0


@dataclass
class Sample:
    time: float  # wall-clock Unix seconds
    cpu: dict[str, float]  # cumulative seconds per component
    machine_busy: float  # cumulative busy seconds of all cores since start


def proc_cpu(pid: int) -> tuple[float, int] | None:
    """utime + stime seconds and start time (clock ticks) of `pid`, None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK, int(fields[19])


def proc_rss_mb(pid: int) -> float:
    """Resident memory of `pid` in MB (0 if gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_MB
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy_seconds() -> float:
    """Busy (not idle, not iowait) seconds of all cores since boot, from /proc/stat."""
    first = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(v) for v in first[:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK


def classify(cmdline: list[str]) -> tuple[str, str] | None:
    """(component, unit name) of a process from its command line, None if unknown."""
    if not cmdline:
        return None
    exe = os.path.basename(cmdline[0])
    if exe == "anvil":
        return "chain", "anvil"
    if "prometheus" in exe:
        return "prometheus", "prometheus"
    if "agents" in cmdline:
        i = cmdline.index("agents")
        role = cmdline[i + 1] if i + 1 < len(cmdline) else ""
        if role in ROLES:
            config = cmdline[cmdline.index("--config") + 1] if "--config" in cmdline else role
            return role, Path(config).stem
    return None


@dataclass
class CpuSampler:
    """Samples CPU seconds per component every `period` seconds in a thread.
    Use as a context manager around the run."""

    period: float = PERIOD_SECONDS
    root: int = field(default_factory=os.getpid)
    samples: list[Sample] = field(default_factory=list)
    _procs: dict[tuple[int, int], _Proc] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _busy0: float = 0.0
    _owners: dict[tuple[int, float], tuple[str, str]] = field(default_factory=dict)
    own_cpu: float = 0.0  # CPU seconds the sampling itself took (in the orchestrator)
    # the largest resident memory seen per component (its processes summed), and of all
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    peak_rss_mb_all: float = 0.0
    load_averages: list[float] = field(default_factory=list)  # 1-minute, per sample

    def __enter__(self) -> CpuSampler:
        self._busy0 = machine_busy_seconds()
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def _walk(self) -> list[tuple[int, str, str]]:
        """Live descendants (pid) with the (component, unit) each one counts for."""
        out = [(self.root, "orchestrator", "orchestrator")]
        try:
            children = psutil.Process(self.root).children(recursive=True)
        except psutil.Error:
            return out
        owner: dict[int, tuple[str, str]] = {self.root: ("orchestrator", "orchestrator")}
        for child in children:  # psutil yields parents before their children
            try:
                key = (child.pid, child.create_time())
                if key not in self._owners:
                    found = classify(child.cmdline())
                    parent = owner.get(child.ppid(), ("other", "other"))
                    if found is None and parent[0] == "orchestrator":  # a unit we do not know
                        found = ("other", child.name())
                    self._owners[key] = found or parent
            except psutil.Error:
                continue
            owner[child.pid] = self._owners[key]
            out.append((child.pid, *owner[child.pid]))
        return out

    def sample(self) -> None:
        started = time.thread_time()
        rss: dict[str, float] = defaultdict(float)
        for pid, component, unit in self._walk():
            got = proc_cpu(pid)
            if got is None:
                continue
            cpu, start = got
            entry = self._procs.setdefault((pid, start), _Proc(component, unit))
            entry.cpu = cpu
            rss[component] += proc_rss_mb(pid)
        for component, mb in rss.items():
            self.peak_rss_mb[component] = max(self.peak_rss_mb.get(component, 0.0), mb)
        self.peak_rss_mb_all = max(self.peak_rss_mb_all, sum(rss.values()))
        self.load_averages.append(os.getloadavg()[0])
        totals: dict[str, float] = defaultdict(float)
        for p in self._procs.values():
            totals[p.component] += p.cpu
        busy = machine_busy_seconds() - self._busy0
        self.own_cpu += time.thread_time() - started
        totals["orchestrator"] -= self.own_cpu  # its process, less this sampling
        self.samples.append(Sample(time.time(), dict(totals), busy))

    def at(self, when: float) -> Sample:
        """The last sample taken at or before `when` (the first one if none)."""
        i = bisect.bisect_right([s.time for s in self.samples], when) - 1
        return self.samples[max(i, 0)]

    def between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds per component from `start` to `end` (wall Unix seconds)."""
        a, b = self.at(start), self.at(end)
        out = {c: round(b.cpu.get(c, 0.0) - a.cpu.get(c, 0.0), 2) for c in b.cpu}
        out["machine_busy"] = round(b.machine_busy - a.machine_busy, 2)
        return out

    def report(self) -> dict[str, Any]:
        """Totals per component and per unit, the machine's busy seconds and the
        wall time sampled."""
        first, last = self.samples[0], self.samples[-1]
        units: dict[str, float] = defaultdict(float)
        processes: dict[str, int] = defaultdict(int)
        for p in self._procs.values():
            units[p.unit] += p.cpu
            processes[p.component] += 1
        units["orchestrator"] -= self.own_cpu
        wall = last.time - first.time
        top = sorted(units.items(), key=lambda x: -x[1])[:8]
        return {
            "wall_seconds": round(wall, 1),
            "cpu_seconds": {c: round(v, 1) for c, v in sorted(last.cpu.items())},
            "cpu_seconds_all": round(sum(last.cpu.values()), 1),
            "sampler_cpu_seconds": round(self.own_cpu, 1),
            "machine_busy_seconds": round(last.machine_busy - first.machine_busy, 1),
            "machine_cores": os.cpu_count(),
            "processes": dict(sorted(processes.items())),
            "top_units": {u: round(v, 1) for u, v in top},
            "peak_rss_mb": {c: round(v, 1) for c, v in sorted(self.peak_rss_mb.items())},
            "peak_rss_mb_all": round(self.peak_rss_mb_all, 1),
            "load_average_1min": {
                "mean": round(sum(self.load_averages) / len(self.load_averages), 1),
                "max": round(max(self.load_averages), 1),
            },
        }
