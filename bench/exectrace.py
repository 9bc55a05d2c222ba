"""What a lab worker node runs, and the CPU each program takes (issue 13).

The node's cgroups give its totals but not who spent them: most of a worker's
CPU per container start goes to short-lived children of dockerd and containerd
(runc, iptables, ...) that a /proc sampler never sees. `ExecTrace` records the
kernel's scheduler tracepoints with `perf` (every process on the machine, for a
window): `sched_stat_runtime` (each slice of CPU a thread ran, with its comm),
`sched_process_fork` (to follow the node's processes from those in its cgroup
subtree when the trace starts) and `sched_process_exec` (what each one ran).
Afterwards only the node's processes are kept, and CPU and execs are summed by
program (comm: a process that forked and has not exec'd yet still has its
parent's), split into windows given as CLOCK_MONOTONIC bounds (time.monotonic()).

    with ExecTrace("testbed-lab-nr-w1") as trace:
        mark = time.monotonic(); ...; windows = {"up": (mark, time.monotonic())}
    trace.breakdown(windows)  # {"up": {"runc": {"cpu_seconds": ..., "execs": ...}}}

Needs `perf` and root (tracefs); perf's own CPU is outside the node's cgroups.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.swarmcpu import cpuacct_of

EVENTS = ("sched:sched_stat_runtime", "sched:sched_process_fork", "sched:sched_process_exec")
START_TIMEOUT_SECONDS = 30.0
# "<comm> <tid> <seconds>: sched:<event>: <fields>"; comm may hold spaces
LINE = re.compile(
    r"^\s*(?P<comm>.*?)\s+(?P<tid>\d+)\s+(?P<t>\d+\.\d+):\s+sched:(?P<ev>\w+):\s(?P<f>.*)$"
)
FIELD = re.compile(r"(\w+)=(\S+)")


def _comm_field(fields: str, key: str) -> str:
    """A comm field's value (it may contain spaces: up to the next ' key=')."""
    match = re.search(rf"\b{key}=(.*?)(?:\s+\w+=|$)", fields)
    return match.group(1) if match else "?"


class ExecTrace:
    def __init__(self, node: str) -> None:
        self.node = node
        self.folder = Path(tempfile.mkdtemp(prefix="exectrace-"))
        self.data = self.folder / "perf.data"
        self.tids: set[int] = set()
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ExecTrace:
        perf = shutil.which("perf")
        if perf is None:
            raise SystemExit("--trace needs perf (Debian: linux-perf)")
        argv = [perf, "record", "-a", "-k", "CLOCK_MONOTONIC", "-o", str(self.data), "-q"]
        for event in EVENTS:
            argv += ["-e", event]
        self.process = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self.data.exists() or self.data.stat().st_size == 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"perf record did not start (exit {self.process.poll()})")
            time.sleep(0.1)
        self.tids = self._node_threads()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=120)

    def _node_threads(self) -> set[int]:
        prefix = f"/{self.node}/"
        found = set()
        for task in Path("/proc").glob("[0-9]*/task/[0-9]*"):
            if cpuacct_of(int(task.name)).startswith(prefix):
                found.add(int(task.name))
        return found

    def breakdown(self, windows: dict[str, tuple[float, float]]) -> dict[str, Any]:
        """Per window: CPU seconds and execs of the node's processes by program."""
        out = subprocess.run(
            ["perf", "script", "-i", str(self.data), "-F", "comm,tid,time,event,trace"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        cpu: dict[str, dict[str, float]] = {w: defaultdict(float) for w in windows}
        execs: dict[str, dict[str, int]] = {w: defaultdict(int) for w in windows}
        tids = set(self.tids)
        for line in out.splitlines():
            match = LINE.match(line)
            if match is None:
                continue
            event, fields, t = match["ev"], match["f"], float(match["t"])
            values = dict(FIELD.findall(fields))
            if event == "sched_process_fork":
                if int(values.get("pid", -1)) in tids:
                    tids.add(int(values["child_pid"]))
                continue
            window = next((w for w, (a, b) in windows.items() if a <= t <= b), None)
            if event == "sched_stat_runtime":
                tid = int(values.get("pid", -1))
                if tid in tids and window is not None:
                    cpu[window][_comm_field(fields, "comm")] += int(values["runtime"]) / 1e9
            elif event == "sched_process_exec" and int(match["tid"]) in tids:
                if window is not None:
                    execs[window][os.path.basename(values.get("filename", "?"))] += 1
        return {w: _table(cpu[w], execs[w]) for w in windows}

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _table(cpu: dict[str, float], execs: dict[str, int]) -> dict[str, Any]:
    names = sorted(set(cpu) | set(execs), key=lambda n: -cpu.get(n, 0.0))
    programs = {
        name: {"cpu_seconds": round(cpu.get(name, 0.0), 3), "execs": execs.get(name, 0)}
        for name in names
    }
    return {"cpu_seconds": round(sum(cpu.values()), 2), "programs": programs}
