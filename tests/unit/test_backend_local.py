"""The local backend with real processes (no agents needed): pidfiles, process
groups, SIGTERM then SIGKILL, exit codes, and `clean_leftovers` of a killed run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from orchestrator.backends import local
from orchestrator.backends.base import BackendError, Unit
from orchestrator.backends.local import LocalBackend

# A process that exits 0 on SIGTERM, after writing its pid, and optionally
# spawns a grandchild that ignores SIGTERM (like a solver's glpsol).
WORKER = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    mode = sys.argv[1]
    if mode == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    if mode == "child":
        child = subprocess.Popen(
            [sys.executable, "-c",
             "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
        print("child", child.pid, flush=True)
    if mode == "crash":
        sys.exit(7)
    print("ready", flush=True)
    time.sleep(600)
    """
)


def unit(tmp_path: Path, name: str, mode: str) -> Unit:
    return Unit(name, "test", ("python", "-c", WORKER, mode), tmp_path / "logs" / f"{name}.log")


def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def log_line(path: Path, prefix: str) -> str | None:
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.startswith(prefix):
            return line
    return None


def test_start_status_stop_with_pidfiles(tmp_path: Path) -> None:
    b = LocalBackend("run-a", tmp_path / "state")
    b.pid_dir.mkdir(parents=True)
    b.start(unit(tmp_path, "good", "term"))
    b.start(unit(tmp_path, "stubborn", "ignore"))
    b.start(unit(tmp_path, "crash", "crash"))
    with pytest.raises(BackendError, match="already started"):
        b.start(unit(tmp_path, "good", "term"))
    rec = json.loads((b.pid_dir / "good.json").read_text())
    assert rec["pid"] == b.pid("good") and rec["create_time"] > 0
    wait_for(lambda: b.status()["crash"].state == "exited")
    st = b.status()
    assert st["crash"].returncode == 7
    assert st["good"].state == "running" and (st["good"].rss_bytes or 0) > 0
    wait_for(lambda: log_line(tmp_path / "logs" / "stubborn.log", "ready") is not None)
    wait_for(lambda: log_line(tmp_path / "logs" / "good.log", "ready") is not None)
    codes = b.stop(["good", "stubborn", "crash"], timeout=1.0)
    assert codes == {"good": 0, "stubborn": None, "crash": 7}
    assert b.status()["stubborn"].returncode == -signal.SIGKILL
    assert not list(b.pid_dir.glob("*.json"))
    b.cleanup()
    assert not b.state_dir.exists()


def test_stop_reaches_the_whole_process_group(tmp_path: Path) -> None:
    b = LocalBackend("run-b", tmp_path / "state")
    b.start(unit(tmp_path, "parent", "child"))
    log = tmp_path / "logs" / "parent.log"
    wait_for(lambda: log_line(log, "child") is not None)
    child = int((log_line(log, "child") or "").split()[1])
    assert psutil.pid_exists(child)
    assert b.stop(["parent"], timeout=1.0) == {"parent": 0}
    wait_for(lambda: not alive(child))


def test_cleanup_refuses_while_running(tmp_path: Path) -> None:
    b = LocalBackend("run-c", tmp_path / "state")
    b.start(unit(tmp_path, "x", "term"))
    with pytest.raises(BackendError, match="still running"):
        b.cleanup()
    b.stop_all(timeout=2.0)
    b.cleanup()


ORCHESTRATOR = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from orchestrator.backends.base import Unit
    from orchestrator.backends.local import LocalBackend
    from orchestrator.plan import Plan
    root, logs, worker = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    b = LocalBackend("run-killed", root)
    b.state_dir.mkdir(parents=True)
    # what prepare() records, without a plan
    import json, psutil
    me = psutil.Process()
    (b.state_dir / "run.json").write_text(json.dumps({
        "run_id": "run-killed", "orchestrator_pid": me.pid,
        "orchestrator_create_time": me.create_time()}))
    for name, mode in (("a", "term"), ("b", "ignore")):
        b.start(Unit(name, "test", ("python", "-c", worker, mode), logs / f"{name}.log"))
    print("started", b.pid("a"), b.pid("b"), flush=True)
    time.sleep(600)
    """
)


def test_clean_leftovers_of_a_killed_orchestrator_by_recorded_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "CLEAN_TIMEOUT_SECONDS", 1.0)
    root = tmp_path / "state"
    # a live run must not be touched
    live = LocalBackend("run-live", root)
    live.state_dir.mkdir(parents=True)
    me = psutil.Process()
    (live.state_dir / "run.json").write_text(
        json.dumps({"orchestrator_pid": me.pid, "orchestrator_create_time": me.create_time()})
    )
    live.start(unit(tmp_path, "live", "term"))

    orch = subprocess.Popen(
        [sys.executable, "-c", ORCHESTRATOR, str(root), str(tmp_path / "logs"), WORKER],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert orch.stdout is not None
    line = orch.stdout.readline().split()
    assert line[0] == "started"
    pids = [int(p) for p in line[1:]]
    wait_for(lambda: log_line(tmp_path / "logs" / "b.log", "ready") is not None)
    orch.kill()
    orch.wait()
    assert all(psutil.pid_exists(p) for p in pids)

    report = LocalBackend.clean_leftovers(root)
    actions = {(r.run_id, r.action) for r in report}
    assert ("run-killed", "killed") in actions and ("run-killed", "removed state") in actions
    assert not (root / "runs" / "run-killed").exists()
    wait_for(lambda: not any(alive(p) for p in pids))
    assert live.status()["live"].state == "running"
    assert (root / "runs" / "run-live").exists()
    live.stop_all(timeout=2.0)
    live.cleanup()
