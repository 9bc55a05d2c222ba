"""`testbed clean` for the ssh backend: the boards of runs whose orchestrator
died. Each run recorded under `<state root>/ssh/<run id>/run.json` names its
hosts and run directories; the agents recorded in those directories' pidfiles
are stopped (TERM, then KILL) and the directories removed. Host keys are
checked against the recorded known_hosts file; a new key is never accepted here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import psutil

from orchestrator.backends.base import Leftover
from orchestrator.backends.ssh.connection import SshError, connect
from orchestrator.backends.ssh.inventory import SshHost
from orchestrator.backends.ssh.remote import kill_all_script
from orchestrator.spec.model import SshConfig


def write_run_state(
    state_dir: Path, run_id: str, settings: SshConfig, hosts: dict[str, tuple[SshHost, str]]
) -> None:
    """Record a run's boards (and this orchestrator) for `clean_dead_runs`."""
    state_dir.mkdir(parents=True, exist_ok=True)
    me = psutil.Process()
    state = {
        "run_id": run_id,
        "orchestrator_pid": me.pid,
        "orchestrator_create_time": me.create_time(),
        "known_hosts": settings.known_hosts,
        "connect_timeout_seconds": settings.connect_timeout_seconds,
        "hosts": {
            name: {
                "address": host.address,
                "port": host.port,
                "user": host.user,
                "key_file": str(host.key_file) if host.key_file else None,
                "run_dir": run_dir,
            }
            for name, (host, run_dir) in hosts.items()
        },
    }
    tmp = state_dir / "run.json.tmp"
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(state_dir / "run.json")


def _alive(pid: int, create_time: float) -> bool:
    try:
        p = psutil.Process(pid)
        return abs(p.create_time() - create_time) < 0.01 and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def clean_run(state: dict[str, Any], run_id: str) -> tuple[list[Leftover], bool]:
    """(report, every host done) for one recorded run."""
    settings = SshConfig(
        known_hosts=str(Path(state.get("known_hosts") or "~/.ssh/known_hosts").expanduser()),
        connect_timeout_seconds=float(state.get("connect_timeout_seconds") or 10),
    )
    report: list[Leftover] = []
    done = True
    for name, info in (state.get("hosts") or {}).items():
        run_dir = info.get("run_dir")
        if not run_dir:
            continue
        key = info.get("key_file")
        host = SshHost(
            name,
            str(info["address"]),
            int(info.get("port") or 22),
            str(info.get("user") or "root"),
            Path(key) if key else None,
        )
        try:
            conn = connect(host, settings)
        except SshError as exc:
            report.append(Leftover(run_id, f"host {name} ({host.target})", f"unreachable: {exc}"))
            done = False
            continue
        try:
            out = conn.sh(kill_all_script(run_dir)).stdout.split("\n")
            stopped = [line for line in out if line.startswith(("term", "kill"))]
            what = f"agents on {name}: {run_dir}"
            report.append(Leftover(run_id, what, "killed" if stopped else "already gone"))
        except SshError as exc:
            report.append(Leftover(run_id, f"host {name}", f"failed: {exc}"))
            done = False
        finally:
            conn.close()
    return report, done


def clean_dead_runs(base: Path) -> list[Leftover]:
    if not base.is_dir():
        return []
    report: list[Leftover] = []
    for run in sorted(p for p in base.iterdir() if p.is_dir()):
        state = _read(run / "run.json")
        if state and _alive(
            int(state.get("orchestrator_pid", -1)), float(state.get("orchestrator_create_time", 0))
        ):
            continue  # a live run
        done = True
        if state:
            items, done = clean_run(state, run.name)
            report += items
        if done:
            shutil.rmtree(run, ignore_errors=True)
            report.append(Leftover(run.name, str(run), "removed state"))
    return report
