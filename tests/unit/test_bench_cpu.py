"""bench.cpu: CPU seconds per component from /proc, with real child processes."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.cpu import CpuSampler, classify, proc_cpu

# burns CPU until it has used `SECONDS` of it (not wall time: the machine is shared)
BURN = "import time\nwhile time.process_time() < {s}: pass"
SECONDS = 0.6


def test_classify_by_command_line() -> None:
    py = sys.executable
    assert classify([py, "-m", "agents", "solver", "--config", "/r/config/solver-1.json"]) == (
        "solver",
        "solver-1",
    )
    assert classify(["/x/node_modules/.bin/anvil", "--port", "1"]) == ("chain", "anvil")
    assert classify(["/usr/bin/prometheus", "--config.file=p.yml"]) == ("prometheus", "prometheus")
    assert classify([py, "-m", "agents", "nobody"]) is None
    assert classify([]) is None


def test_proc_cpu_of_a_gone_process_is_none() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert proc_cpu(proc.pid) is None


# The children's parent, sampled as the root: the pytest process may have other
# children of its own (a session's runs), which are no part of this test.
PARENT = """\
import subprocess, sys
sys.stdin.readline()  # the sampler is running
code = sys.argv[1]
# `-c code agents dso --config ...`: argv the classifier reads as the DSO
dso = subprocess.Popen([sys.executable, "-c", code, "agents", "dso", "--config", "dso.json"])
other = subprocess.Popen([sys.executable, "-c", code])
sys.exit(dso.wait() or other.wait())
"""


def test_children_are_counted_per_role_after_they_exit() -> None:
    code = BURN.format(s=SECONDS)
    parent = subprocess.Popen([sys.executable, "-c", PARENT, code], stdin=subprocess.PIPE)
    assert parent.stdin is not None
    with CpuSampler(period=0.05, root=parent.pid) as sampler:
        started = time.time()
        parent.stdin.write(b"go\n")
        parent.stdin.close()
        assert parent.wait(timeout=120) == 0
        ended = time.time()
    report = sampler.report()
    # at most one sampling period of each child's CPU is missed at its end
    assert SECONDS - 0.1 <= report["cpu_seconds"]["dso"] <= SECONDS + 0.5
    assert SECONDS - 0.1 <= report["cpu_seconds"]["other"] <= SECONDS + 0.5
    assert report["processes"]["dso"] == 1
    assert report["top_units"]["dso"] == report["cpu_seconds"]["dso"]
    window = sampler.between(started, ended)
    assert window["dso"] >= SECONDS - 0.1
    assert window["machine_busy"] >= window["dso"] + window["other"] - 0.1
    assert sampler.between(ended + 60, ended + 120)["dso"] == 0.0
    # a Python interpreter is resident in more than 5 MB; all of them in more than one
    assert 5 < report["peak_rss_mb"]["dso"] < report["peak_rss_mb_all"]
    assert report["load_average_1min"]["max"] >= report["load_average_1min"]["mean"] > 0
