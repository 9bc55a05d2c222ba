"""bench.hostcpu: a prosumer host's CPU by thread kind from /proc, and by segment of its life."""

from __future__ import annotations

import subprocess
import sys

from bench.hostcpu import HostCpu, HostSeries, config_name, thread_cpu

# burns CPU (not wall time: the machine is shared) in a thread that then exits, and
# in the main thread, next to a ZeroMQ context (its ZMQbg threads), then waits
CHILD = """\
import sys, threading, time, zmq
ctx = zmq.Context.instance()
burn = lambda: [None for _ in iter(lambda: time.thread_time() >= 0.3, True)]
t = threading.Thread(target=burn); t.start(); t.join()
burn()
print("done", flush=True)
sys.stdin.readline()
"""


def test_config_name_is_the_config_files_stem() -> None:
    argv = ["python", "-m", "agents", "prosumer", "--config", "/run/config/bbb-07.json"]
    assert config_name(argv) == "bbb-07"
    assert config_name(["python", "-m", "agents", "prosumer"]) is None


def test_thread_cpu_splits_main_zmq_and_exited_threads() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "done"
        total, kinds = thread_cpu(child.pid)
    finally:
        child.communicate("\n", timeout=60)
    assert kinds["main"] >= 0.25  # tick granularity: 0.3 s burnt, counted in 10 ms ticks
    assert kinds["other"] >= 0.25  # the burning thread exited: no live thread holds it
    assert kinds["zmq io"] < 0.1
    assert abs(sum(kinds.values()) - total) < 1e-9


def series(name: str, started: float, points: list[tuple[float, float, float]]) -> HostSeries:
    """A host's samples: (wall time, main thread CPU, other threads' CPU)."""
    host = HostSeries(name, started)
    for when, main, other in points:
        host.samples.append((when, main + other, {"main": main, "zmq io": 0.0, "other": other}))
    return host


def test_report_cuts_each_hosts_life_at_its_log_lines() -> None:
    cpu = HostCpu()
    cpu.hosts[(1, 1)] = series(
        "a", 100.0, [(101.0, 0.1, 0.0), (103.0, 0.2, 0.0), (105.0, 0.6, 0.0), (125.0, 0.6, 0.2)]
    )
    cpu.hosts[(2, 2)] = series("b", 110.0, [(111.0, 0.3, 0.0)])  # no log line: not counted
    out = cpu.report({"a": 102.0}, {"a": 105.0}, 125.0)
    assert out["hosts_sampled"] == 2
    # interpolated half way between the samples at 101 and 103 s
    assert out["host_cpu_to_ready"]["total"]["p50"] == 0.15
    assert out["host_cpu_to_ready"]["wall_seconds"]["p50"] == 2.0
    assert out["host_cpu_first_tick"]["main"]["p50"] == 0.45
    assert out["host_cpu_after_ready"]["total"]["p50"] == 0.65
    idle = out["host_cpu_idle_after_first_tick_ms_per_s"]
    assert idle["other"]["p50"] == 10.0 and idle["main"]["p50"] == 0.0  # 0.2 s in 20 s
    assert out["host_cpu_whole_run"]["n"] == 2
