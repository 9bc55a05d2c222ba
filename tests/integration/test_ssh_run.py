"""The ssh backend end to end, against real OpenSSH servers: boards are
containers of images/board (key-only logins) on a private Docker network.

The DSO, clock and solver placed on a board (`deployment.ssh.services_host`)
finalize what `testbed replay` finalizes; a board that dies mid-run stops the
run with exit 3, the bundle keeps what was recorded and the other board is
left clean. The scenarios every backend shares (smoke equals replay, agent
crash, Ctrl-C, clean, kill/restart) are in tests/conformance/."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from orchestrator.backends.ssh.deploy import dir_key, local_wheelhouse
from orchestrator.run import RunOptions, RunResult, run
from tests.conformance.oracle import finalizations, finalized_by_content, replayed, rows
from tests.conftest import REPO, require_tool
from tests.integration.docker_support import bundle_of, wait_for
from tests.integration.ssh_support import Board, SshLab, docker_engine, ssh_lab

__all__ = ["docker_engine", "ssh_lab"]  # fixtures used below

SMOKE = REPO / "topologies" / "smoke.yaml"
LONG = ["market.first_interval=40", "market.last_interval=90"]


@pytest.fixture(autouse=True)
def _anvil(state_dir: Path) -> None:
    require_tool("anvil")


def assert_board_clean(lab: SshLab, board: Board, run_id: str) -> None:
    assert lab.agent_processes(board) == []
    runs = lab.ssh(board, "ls -1 ~/.testbed/runs 2>/dev/null").split()
    assert run_id not in runs


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
        return finalizations(bundle_of(out)) >= 1

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
