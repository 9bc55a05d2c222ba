"""Per prosumer host: CPU seconds to its ready line and per second after it (swarmcpu.py).

Every sample of `swarmcpu.CpuByClass` passes each prosumer host's Python process
here (found through the worker's cgroups); its cumulative CPU (utime + stime) and
that of its threads by kind is kept per sample:
- `main`: the host's main thread (its start-up, its loop);
- `zmq io`: pyzmq's background I/O threads (ZMQbg/...: connects, reconnects,
  name lookups, the sockets' traffic);
- `other`: the rest (the /metrics server's threads, and threads that exited).

`report(ready, posted, all_ready)` then gives, per segment of a host's life, the
CPU of the host and of its threads by kind, and the segment's wall seconds, as
quantiles over the hosts (SEGMENTS):
- `host_cpu_to_ready`: CPU seconds from exec to the host's ready log line
  (interpolated between samples);
- `host_cpu_first_tick`: from ready to its first tick's `posted` line (a lockstep
  clock ticks as soon as it starts: a host ready early does its first tick's work,
  the ABI codec's import included, while the others still start);
- `host_cpu_after_ready`: from ready to all agents ready (the orchestrator's line);
- `host_cpu_idle_after_first_tick_ms_per_s`: CPU milliseconds per second from the
  first tick's `posted` to all agents ready: waiting idle (hosts that waited at
  least MIN_IDLE_SECONDS);
- `host_cpu_whole_run`: CPU seconds of the host's whole life (last sample).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

TICK = os.sysconf("SC_CLK_TCK")
KINDS = ("main", "zmq io", "other")
MIN_IDLE_SECONDS = 5.0  # a shorter wait says little per second
# (figure, from mark, to mark): CPU seconds, or CPU milliseconds per second (_ms_per_s)
SEGMENTS = (
    ("host_cpu_to_ready", "exec", "ready"),
    ("host_cpu_first_tick", "ready", "first tick posted"),
    ("host_cpu_after_ready", "ready", "all agents ready"),
    ("host_cpu_idle_after_first_tick_ms_per_s", "first tick posted", "all agents ready"),
)


def config_name(cmdline: list[str]) -> str | None:
    """The host's name: its config file's stem (`--config .../<name>.json`)."""
    if "--config" in cmdline:
        i = cmdline.index("--config")
        if i + 1 < len(cmdline):
            return Path(cmdline[i + 1]).stem
    return None


def _stat_cpu(path: Path) -> float:
    raw = path.read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def thread_cpu(pid: int) -> tuple[float, dict[str, float]]:
    """(utime + stime of the process, {kind: seconds of its live threads by kind});
    `other` holds what no live thread accounts for (exited threads included)."""
    total = _stat_cpu(Path(f"/proc/{pid}/stat"))
    kinds = dict.fromkeys(KINDS, 0.0)
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            cpu = _stat_cpu(task / "stat")
        except (OSError, ValueError):
            continue
        if task.name == str(pid):
            kinds["main"] += cpu
        elif comm.startswith("ZMQbg"):
            kinds["zmq io"] += cpu
    kinds["other"] = max(0.0, total - kinds["main"] - kinds["zmq io"])
    return total, kinds


@dataclass
class HostSeries:
    name: str
    started: float  # wall seconds of its exec
    samples: list[tuple[float, float, dict[str, float]]] = field(default_factory=list)

    def at(self, when: float) -> tuple[float, dict[str, float]] | None:
        """Cumulative CPU (total, by kind) at wall time `when`, linearly
        interpolated between samples (None: not sampled around it)."""
        before = [s for s in self.samples if s[0] <= when]
        after = [s for s in self.samples if s[0] >= when]
        if not before or not after:
            return None
        (t0, c0, k0), (t1, c1, k1) = before[-1], after[0]
        f = 0.0 if t1 == t0 else (when - t0) / (t1 - t0)
        return c0 + f * (c1 - c0), {k: k0[k] + f * (k1[k] - k0[k]) for k in KINDS}


class HostCpu:
    """The samples of every prosumer host process, by (pid, start time)."""

    def __init__(self) -> None:
        self.hosts: dict[tuple[int, int], HostSeries] = {}
        self.boot = psutil.boot_time()

    def sample(self, proc: psutil.Process, key: tuple[int, int], now: float) -> None:
        if key not in self.hosts:
            name = config_name(proc.cmdline())
            if name is None:
                return
            self.hosts[key] = HostSeries(name, self.boot + key[1] / TICK)
        try:
            total, kinds = thread_cpu(proc.pid)
        except (OSError, ValueError):
            return
        self.hosts[key].samples.append((now, total, kinds))

    def report(
        self, ready: Mapping[str, float], posted: Mapping[str, float], all_ready: float | None
    ) -> dict[str, Any]:
        """Quantiles over the hosts; `ready`, `posted`: host name -> wall time of its
        ready line, of its first tick's `posted` line."""
        cols: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        wall: dict[str, list[float]] = defaultdict(list)
        whole = [h.samples[-1][1] for h in self.hosts.values() if h.samples]
        for host in self.hosts.values():
            marks = {"exec": host.started, "ready": ready.get(host.name)}
            marks["first tick posted"] = posted.get(host.name)
            marks["all agents ready"] = all_ready
            at = {k: host.at(t) for k, t in marks.items() if t is not None}
            at["exec"] = (0.0, dict.fromkeys(KINDS, 0.0))
            for name, a, b in SEGMENTS:
                ta, tb, got_a, got_b = marks[a], marks[b], at.get(a), at.get(b)
                if ta is None or tb is None or got_a is None or got_b is None:
                    continue
                if name.endswith("_ms_per_s") and tb - ta < MIN_IDLE_SECONDS:
                    continue
                scale = 1000 / (tb - ta) if name.endswith("_ms_per_s") else 1.0
                cols[name]["total"].append((got_b[0] - got_a[0]) * scale)
                for k in KINDS:
                    cols[name][k].append((got_b[1][k] - got_a[1][k]) * scale)
                wall[name].append(tb - ta)
        out: dict[str, Any] = {"hosts_sampled": len(self.hosts)}
        for name, _, _ in SEGMENTS:
            digits = 2 if name.endswith("_ms_per_s") else 3
            out[name] = {k: quantiles(v, digits) for k, v in cols[name].items()}
            out[name]["wall_seconds"] = quantiles(wall[name], 1)
        out["host_cpu_whole_run"] = quantiles(whole, 3)
        return out


def quantiles(values: list[float], digits: int) -> dict[str, float]:
    v = sorted(values)
    if not v:
        return {}
    p10, p50, p90 = (round(v[min(len(v) - 1, int(q * len(v)))], digits) for q in (0.1, 0.5, 0.9))
    top, mean = round(v[-1], digits), round(sum(v) / len(v), digits)
    return {"n": len(v), "p10": p10, "p50": p50, "p90": p90, "max": top, "mean": mean}
