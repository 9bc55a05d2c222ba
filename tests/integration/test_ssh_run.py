"""The ssh backend end to end, against real OpenSSH servers: boards are
containers of images/board (key-only logins) on a private Docker network.

A lockstep smoke run over two boards finalizes exactly what the local backend
and `testbed replay` finalize; a board that dies mid-run stops the run with
exit 3, the bundle keeps what was recorded and the other board is left clean;
Ctrl-C leaves nothing running on the boards; `testbed clean` stops the agents
of a run whose orchestrator was killed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from orchestrator.backends.ssh.deploy import dir_key, local_wheelhouse
from orchestrator.run import RunOptions, RunResult, run
from tests.conftest import REPO, require_tool, start_cli
from tests.integration.docker_support import bundle_of, wait_for
from tests.integration.ssh_support import Board, SshLab, docker_engine, ssh_lab
from tests.integration.test_faults_local import finalized_wh, injector_rows, smoke_spec
from tests.integration.test_run_local import (
    assert_smoke_equals_local_and_replay,
    finalized_by_content,
    replayed,
    rows,
)

__all__ = ["docker_engine", "ssh_lab"]  # fixtures used below

SMOKE = REPO / "topologies" / "smoke.yaml"
LONG = ["market.first_interval=40", "market.last_interval=90"]


@pytest.fixture(autouse=True)
def _anvil(state_dir: Path) -> None:
    require_tool("anvil")


def finalizations(out: Path) -> int:
    bundle = bundle_of(out)
    path = bundle / "events" / "finalizations.csv" if bundle else None
    return len(rows(path)) if path is not None and path.exists() else 0


def assert_board_clean(lab: SshLab, board: Board, run_id: str) -> None:
    assert lab.agent_processes(board) == []
    runs = lab.ssh(board, "ls -1 ~/.testbed/runs 2>/dev/null").split()
    assert run_id not in runs


def assert_run_cleaned(lab: SshLab, run_id: str, state: Path) -> None:
    """Nothing of run `run_id` left on the two boards, nor in the local state."""
    for board in lab.boards[:2]:
        assert_board_clean(lab, board, run_id)
    assert not list(state.glob("ssh/*")) and not list(state.glob("runs/*"))


def test_smoke_run_over_ssh_equals_local_backend_and_replay(
    tmp_path: Path, ssh_lab: SshLab, state_dir: Path
) -> None:
    ssh = run(RunOptions(spec=SMOKE, overrides=ssh_lab.overrides(), out=tmp_path / "s"))
    assert_smoke_equals_local_and_replay(ssh, tmp_path)

    # prosumers ran on the boards; services listened on the network's gateway
    info = json.loads((ssh.bundle / "ssh.json").read_text())
    assert info["bind_address"] == ssh_lab.gateway
    assert set(info["agents"]) == {"board-1", "board-2"}
    manifest = json.loads((ssh.bundle / "manifest.json").read_text())
    for board in ("board-1", "board-2"):
        host = manifest["ssh"]["hosts"][board]
        assert host["arch"] == os.uname().machine
        assert abs(host["clock_offset_seconds"]) < 0.5
        log = (ssh.bundle / "logs" / f"{board}.log").read_text()
        assert f"prosumer/{board}" in log
        assert (ssh.bundle / "agents" / board / "metrics.prom").is_file()
        assert ssh.summary["processes"][board]["exit_code"] == 0
        assert ssh.summary["processes"][board]["peak_rss_mb"] > 0
    assert manifest["teardown_errors"] == []
    assert_run_cleaned(ssh_lab, ssh.run_id, state_dir)


def test_dso_clock_and_solver_on_a_board_finalize_what_replay_finalizes(
    tmp_path: Path, ssh_lab: SshLab, state_dir: Path
) -> None:
    services = ssh_lab.boards[1]
    overrides = [*ssh_lab.overrides(), f"deployment.ssh.services_host={services.name}"]
    result = run(RunOptions(spec=SMOKE, overrides=overrides, out=tmp_path / "s"))
    assert result.outcome.status == "ok", result.outcome.message
    _, expected = replayed(SMOKE, [], clip=True)
    assert finalized_by_content(result.bundle / "events", 56) == expected
    info = json.loads((result.bundle / "ssh.json").read_text())
    assert {a for a, h in info["agents"].items() if h == services.name} == {
        "dso",
        "clock",
        "solver-1",
        services.name,
    }
    # the services' venv has the whole agent stack; the prosumers-only board's does not
    assert info["boards"][services.name]["python"] != info["boards"]["board-1"]["python"]
    assert (result.bundle / "agents" / "dso" / "accounts.json").is_file()  # pulled back
    assert "solver/solver-1" in (result.bundle / "logs" / "solver-1.log").read_text()
    for b in ssh_lab.boards[:2]:
        assert_board_clean(ssh_lab, b, result.run_id)


def run_in_thread(options: RunOptions) -> tuple[threading.Thread, dict[str, RunResult]]:
    box: dict[str, RunResult] = {}
    thread = threading.Thread(target=lambda: box.update(result=run(options)), daemon=True)
    thread.start()
    return thread, box


def test_board_that_dies_mid_run_stops_it_and_the_other_board_is_cleaned(
    tmp_path: Path, ssh_lab: SshLab, state_dir: Path
) -> None:
    doomed = ssh_lab.start_board(f"doomed-{len(ssh_lab.boards)}")
    survivor = ssh_lab.boards[0]
    out = tmp_path / "results"
    # a fresh board installs from a prepared wheelhouse directory named in the spec
    wheelhouse = tmp_path / "wheelhouse"
    shutil.copytree(local_wheelhouse(print), wheelhouse)
    (wheelhouse / "extra-note.txt").write_text("a prepared directory: its own virtualenv\n")
    overrides = [
        *ssh_lab.overrides([survivor, doomed], wheelhouse=wheelhouse),
        *LONG,
    ]
    thread, box = run_in_thread(RunOptions(spec=SMOKE, overrides=overrides, out=out))

    def started() -> bool:
        if not thread.is_alive():
            raise AssertionError(f"the run ended early: {box['result'].outcome.message}")
        return finalizations(out) >= 1

    wait_for("the first finalized interval", started, timeout=240)
    doomed.container.kill()
    thread.join(timeout=180)
    assert not thread.is_alive(), "the run did not stop after its board died"
    result = box["result"]
    assert result.exit_code == 3, result.outcome.message
    assert doomed.name in result.outcome.message
    assert "lost host" in result.outcome.message
    # the bundle keeps what was recorded
    assert len(rows(result.bundle / "events" / "finalizations.csv")) >= 1
    assert json.loads((result.bundle / "summary.json").read_text())["outcome"]["exit_code"] == 3
    assert (result.bundle / "logs" / f"{survivor.name}.log").stat().st_size > 0
    # the survivor is clean; the dead board is named as not cleaned, and kept
    # in the state for `testbed clean`
    assert_board_clean(ssh_lab, survivor, result.run_id)
    log = (result.bundle / "logs" / "orchestrator.log").read_text()
    assert f"not cleaned (host lost): {doomed.name}" in log
    manifest = json.loads((result.bundle / "manifest.json").read_text())
    assert any(f"not cleaned (host lost): {doomed.name}" in e for e in manifest["teardown_errors"])
    state = json.loads((state_dir / "ssh" / result.run_id / "run.json").read_text())
    assert set(state["hosts"]) == {survivor.name, doomed.name}
    assert not list(state_dir.glob("runs/*")), "local processes' state left behind"
    info = json.loads((result.bundle / "ssh.json").read_text())
    venv = f"/home/testbed/.testbed/venv/{dir_key(wheelhouse)}/bin/python"
    assert info["boards"][doomed.name]["python"] == venv


def test_ctrl_c_leaves_nothing_running_on_the_boards(
    tmp_path: Path, ssh_lab: SshLab, state_dir: Path
) -> None:
    out = tmp_path / "results"
    argv = ["run", str(SMOKE), "--out", str(out)]
    for line in ssh_lab.overrides() + LONG:
        argv += ["--set", line]
    env = {**os.environ, "TESTBED_STATE_DIR": str(state_dir)}
    proc = start_cli(*argv, env=env, stdout=None)
    try:
        wait_for(
            "the first finalized interval",
            lambda: finalizations(out) >= 1 or proc.poll() is not None,
            timeout=240,
        )
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    bundle = bundle_of(out)
    assert bundle is not None
    run_id = bundle.name
    assert_run_cleaned(ssh_lab, run_id, state_dir)


def test_clean_stops_the_agents_of_a_killed_orchestrator(
    tmp_path: Path, ssh_lab: SshLab, state_dir: Path
) -> None:
    out = tmp_path / "results"
    argv = ["run", str(SMOKE), "--out", str(out)]
    for line in ssh_lab.overrides() + LONG:
        argv += ["--set", line]
    env = {**os.environ, "TESTBED_STATE_DIR": str(state_dir)}
    proc = start_cli(*argv, env=env, stdout=None, stderr=subprocess.DEVNULL)
    try:
        wait_for("the first finalized interval", lambda: finalizations(out) >= 1, timeout=240)
    finally:
        proc.kill()  # SIGKILL: no teardown
        proc.wait()
    board = ssh_lab.boards[0]
    assert ssh_lab.agent_processes(board), "the killed run's agents should still run"
    clean = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "clean", "--json"],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert clean.returncode == 0, clean.stderr
    report = json.loads(clean.stdout)["cleaned"]
    assert any("agents on board-1" in str(item) for item in report), report
    deadline = time.monotonic() + 10
    while ssh_lab.agent_processes(board) and time.monotonic() < deadline:
        time.sleep(0.2)
    for b in ssh_lab.boards[:2]:
        assert_board_clean(ssh_lab, b, bundle_of(out).name)  # type: ignore[union-attr]
    assert not list(state_dir.glob("ssh/*"))


def test_agent_killed_on_a_board_stops_the_run_with_its_log(
    tmp_path: Path, ssh_lab: SshLab, state_dir: Path
) -> None:
    out = tmp_path / "results"
    thread, box = run_in_thread(
        RunOptions(spec=SMOKE, overrides=[*ssh_lab.overrides(), *LONG], out=out)
    )

    def started() -> bool:
        if not thread.is_alive():
            raise AssertionError(f"the run ended early: {box['result'].outcome.message}")
        return finalizations(out) >= 1

    wait_for("the first finalized interval", started, timeout=240)
    victim = ssh_lab.boards[1]
    ssh_lab.ssh(
        victim, "pkill -KILL -f '^/home/.*/bin/python -m agents prosumer'"
    )  # not its wrapper
    thread.join(timeout=120)
    assert not thread.is_alive(), "the run did not stop after its agent was killed"
    result = box["result"]
    assert result.exit_code == 3
    message = result.outcome.message
    assert message.startswith(f"{victim.name}: killed by signal 9"), message
    assert f"prosumer/{victim.name}" in message  # the tail of its log, pulled from the board
    assert result.summary["processes"][victim.name]["exit_code"] == -9
    assert_run_cleaned(ssh_lab, result.run_id, state_dir)


def test_faults_kill_and_restart_a_boards_prosumer_host(
    tmp_path: Path, ssh_lab: SshLab, state_dir: Path
) -> None:
    """The fault injector through the ssh backend: board-2's prosumer host is killed
    before tick 50 and started again on the board before tick 52, as locally."""
    faults = [
        {"at_interval": 50, "target": "board-2", "action": "kill"},
        {"at_interval": 52, "target": "board-2", "action": "restart"},
    ]
    spec = smoke_spec(tmp_path, [{"name": "solver-1", "engine": "highs"}], faults)
    result = run(RunOptions(spec=spec, overrides=ssh_lab.overrides(), out=tmp_path / "r"))
    assert result.exit_code == 0, result.outcome.message
    summary = result.summary
    assert summary["faults"]["actions_applied"] == 2 and summary["faults"]["crashed"] == []
    assert [(r["action"], r["unit"], r["ok"]) for r in injector_rows(result.bundle)] == [
        ("kill", "board-2", True),
        ("restart", "board-2", True),
    ]
    finalized = finalized_wh(result.bundle)
    expected, _ = replayed(SMOKE, [], clip=False)  # the same market, without the boards
    assert all(finalized[t] == expected[t] for t in (49, 50, 51, 53, 54, 55, 56))
    assert finalized[52] < expected[52]
    log = (result.bundle / "logs" / "board-2.log").read_text()
    assert log.count("prosumers, ") == 2  # started twice, on the board
    assert_run_cleaned(ssh_lab, result.run_id, state_dir)
