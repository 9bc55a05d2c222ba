"""The scripts the ssh backend runs on a board, run here with the local POSIX
sh (the same /proc interface): start in a new session with a pidfile, status,
stop by process group, exit codes, and the `testbed clean` script. Plus the
parsing of their answers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.backends.ssh.remote import (
    IncompleteStatus,
    RemoteState,
    exit_code,
    kill_all_script,
    parse_status,
    remote_path,
    signal_script,
    start_script,
    status_command,
)

SLEEPER = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]


def sh(script: str) -> str:
    done = subprocess.run(
        ["sh", "-s"], input=script, capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout


def status(run_dir: Path) -> dict[str, RemoteState]:
    done = subprocess.run(
        status_command(str(run_dir)), shell=True, capture_output=True, text=True, check=True
    )
    return parse_status(done.stdout)


def wait_state(run_dir: Path, name: str, state: str, timeout: float = 60) -> RemoteState:
    deadline = time.monotonic() + timeout
    while True:
        current = status(run_dir).get(name)
        if current is not None and current.state == state:
            return current
        assert time.monotonic() < deadline, f"{name} not {state}: {current}"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "runs" / "r1"
    d.mkdir(parents=True)
    return d


def test_start_status_stop_by_process_group(run_dir: Path) -> None:
    pid = int(sh(start_script(str(run_dir), "a1", SLEEPER, {"X": "1"})).split()[-1])
    running = wait_state(run_dir, "a1", "running")
    assert running.pid == pid and os.getpgid(pid) == pid and os.getsid(pid) == pid
    assert running.rss_bytes is not None and running.rss_bytes > 1_000_000
    deadline = time.monotonic() + 60
    while "up" not in (run_dir / "logs" / "a1.log").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sh(signal_script(str(run_dir), ["a1"], "TERM"))
    exited = wait_state(run_dir, "a1", "exited")
    assert exited.returncode == -15  # the agent died of SIGTERM, the wrapper said so
    assert not alive(pid)


def test_agent_exit_code_is_recorded(run_dir: Path) -> None:
    argv = [sys.executable, "-c", "import sys; sys.exit(7)"]
    sh(start_script(str(run_dir), "a2", argv, {}))
    assert wait_state(run_dir, "a2", "exited").returncode == 7


def test_killed_wrapper_is_missing_and_a_reused_pid_is_not_signalled(run_dir: Path) -> None:
    pid = int(sh(start_script(str(run_dir), "a3", SLEEPER, {})).split()[-1])
    wait_state(run_dir, "a3", "running")
    os.killpg(pid, 9)
    wait_state(run_dir, "a3", "missing")
    # a pidfile whose start time does not match is never signalled
    (run_dir / "pids" / "other.pid").write_text(f"{os.getpid()} 1\n")
    sh(signal_script(str(run_dir), ["other"], "TERM"))
    assert status(run_dir)["other"].state == "missing"


def test_clean_script_stops_everything_and_removes_the_run(run_dir: Path) -> None:
    pids = [int(sh(start_script(str(run_dir), f"c{i}", SLEEPER, {})).split()[-1]) for i in (1, 2)]
    for i in (1, 2):
        wait_state(run_dir, f"c{i}", "running")
    out = sh(kill_all_script(str(run_dir)))
    assert out.count("term ") == 2
    assert not run_dir.exists()
    deadline = time.monotonic() + 60
    while any(alive(p) for p in pids):
        assert time.monotonic() < deadline, "agents survived the clean script"
        time.sleep(0.05)
    assert sh(kill_all_script(str(run_dir))) == ""  # nothing left: no-op


def test_status_of_a_missing_run_dir_is_empty(tmp_path: Path) -> None:
    assert status(tmp_path / "nope") == {}


def test_parse_status() -> None:
    text = "a running 10 2048\nb exited 11 143\nc exited 12 3\nd missing 13\nend of status\n"
    states = parse_status(text)
    assert states["a"] == RemoteState("a", "running", 10, None, 2048 * 1024)
    assert states["b"].returncode == -15 and states["c"].returncode == 3
    assert states["d"].state == "missing"
    with pytest.raises(IncompleteStatus):
        parse_status("a running 10 2048\n")  # the host went away mid-answer


def test_exit_code_and_remote_path() -> None:
    assert [exit_code(c) for c in (0, 1, 137, 143, 255)] == [0, 1, -9, -15, 255]
    assert remote_path("/home/debian", ".testbed", "runs", "r") == "/home/debian/.testbed/runs/r"
    assert remote_path("/home/debian", "/opt/tb", "venv") == "/opt/tb/venv"


def proc_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_pause_and_resume_signal_the_whole_group(run_dir: Path) -> None:
    """The fault actions pause/resume: SIGSTOP/SIGCONT to the agent's group."""
    pid = int(sh(start_script(str(run_dir), "p1", SLEEPER, {})).split()[-1])
    wait_state(run_dir, "p1", "running")
    child = int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
    sh(signal_script(str(run_dir), ["p1"], "STOP"))
    deadline = time.monotonic() + 60
    while proc_state(child) != "T":
        assert time.monotonic() < deadline, "the agent was not stopped"
        time.sleep(0.05)
    sh(signal_script(str(run_dir), ["p1"], "CONT"))
    while proc_state(child) == "T":
        assert time.monotonic() < deadline, "the agent was not resumed"
        time.sleep(0.05)
    sh(signal_script(str(run_dir), ["p1"], "KILL"))
    wait_state(run_dir, "p1", "missing")  # the wrapper died with it: no exit status
