"""What `testbed ps` reads: every backend's recorded run state (local and ssh
record the orchestrator's pid and start time, docker a host:pid:time label),
one row per run, live or (with include_dead) left behind by a dead orchestrator."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import yaml

from orchestrator.backends.base import backend_state_root
from orchestrator.liveruns import bundle_running, process_alive, progress, recorded_runs
from orchestrator.results.bundle import Bundle


def record(backend: str, run_id: str, state: dict[str, object]) -> None:
    """A backend's run.json under TESTBED_STATE_DIR (the `state_dir` fixture)."""
    folder = backend_state_root(backend) / run_id
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"run_id": run_id, **state}))


def a_dead_process() -> tuple[int, float]:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    created = psutil.Process(child.pid).create_time()
    child.wait()
    return child.pid, created


def test_each_backends_record_is_read_and_dead_orchestrators_are_told_apart(
    state_dir: Path, tmp_path: Path
) -> None:
    me = psutil.Process()
    bundle = Bundle.create(tmp_path / "results", "smoke", "r-local")
    bundle.write_spec(yaml.safe_dump({"market": {"first_interval": 49, "last_interval": 56}}))
    (bundle.events / "finalizations.csv").write_text("interval,energy_wh\n49,10\n50,0\n")
    bundle.write_manifest({"run_id": "r-local", "spec_name": "smoke", "started": 5.0})
    mine = {"orchestrator_pid": me.pid, "orchestrator_create_time": me.create_time()}
    record("local", "r-local", {**mine, "bundle": str(bundle.path), "started": 5.0})
    label = f"{socket.gethostname()}:{me.pid}:{me.create_time():.3f}"
    record("docker", "r-docker", {"orchestrator": label, "bundle": "/nowhere"})
    pid, created = a_dead_process()
    gone = {"orchestrator_pid": pid, "orchestrator_create_time": created}
    record("local", "r-dead", gone)
    # an ssh run: its own record, and its orchestrator-side local record with the bundle
    record("ssh", "r-ssh", mine)
    record("local", "r-ssh", {**mine, "bundle": str(bundle.path), "started": 9.0})

    live = {r.run_id: r for r in recorded_runs()}
    assert sorted(live) == ["r-docker", "r-local", "r-ssh"]
    assert (live["r-local"].finalized, live["r-local"].intervals) == (2, 8)
    assert live["r-local"].spec == "smoke" and live["r-local"].pid == me.pid
    assert live["r-docker"].backend == "docker" and live["r-docker"].pid == me.pid
    assert live["r-ssh"].backend == "ssh" and live["r-ssh"].bundle == bundle.path
    every = {r.run_id: r for r in recorded_runs(include_dead=True)}
    assert every["r-dead"].alive is False and len(every) == 4
    assert not process_alive(pid, created)
    assert process_alive(me.pid, me.create_time() + 1) is False  # a reused pid
    assert process_alive(1, None, host="another-machine")  # not ours to judge


def test_a_bundle_runs_until_its_outcome_or_while_its_orchestrator_lives(
    state_dir: Path, tmp_path: Path
) -> None:
    me = psutil.Process()
    bundle = Bundle.create(tmp_path, "smoke", "r1")
    pid, created = a_dead_process()
    bundle.write_manifest({"orchestrator": {"pid": pid, "create_time": created}})
    assert not bundle_running(bundle.path)  # killed: no outcome, orchestrator gone
    bundle.update_manifest(orchestrator={"pid": me.pid, "create_time": me.create_time()})
    assert bundle_running(bundle.path)
    bundle.update_manifest(outcome={"status": "ok"})
    assert not bundle_running(bundle.path)
    assert progress(tmp_path / "nothing") == (None, None)
