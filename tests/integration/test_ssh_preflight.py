"""The ssh preflight against real OpenSSH servers: `testbed hosts check` reports
every host; an unreachable host, a key the board refuses, an unknown host key
(without accept-new) and a changed host key each stop `testbed run` before
anything starts, with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import paramiko
import pytest

from orchestrator import cli
from orchestrator.backends.ssh import PreflightFailed
from orchestrator.run import RunOptions, run
from tests.conftest import REPO
from tests.integration.ssh_support import BOARD_USER, SshLab, docker_engine, ssh_lab

__all__ = ["docker_engine", "ssh_lab"]  # fixtures used below

SMOKE = REPO / "topologies" / "smoke.yaml"


pytestmark = pytest.mark.usefixtures("state_dir")


def hosts_check(
    overrides: list[str], capsys: pytest.CaptureFixture[str], *json_flag: str
) -> tuple[int, str]:
    argv = ["hosts", "check", str(SMOKE), *json_flag]
    for line in overrides:
        argv += ["--set", line]
    code = cli.main(argv)
    return code, capsys.readouterr().out


def test_hosts_check_reports_every_host(
    ssh_lab: SshLab, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = hosts_check(ssh_lab.overrides(), capsys)
    assert code == 0, out
    for board in ssh_lab.boards[:2]:
        line = next(x for x in out.splitlines() if x.startswith(board.name))
        assert f"{BOARD_USER}@{board.address}" in line and " ok " in line
    assert "2/2 hosts ok" in out
    code, out = hosts_check(ssh_lab.overrides(), capsys, "--json")
    reports = json.loads(out)["hosts"]
    assert [r["ok"] for r in reports] == [True, True]
    assert all(r["python"].startswith("3.11") and r["free_mb"] > 0 for r in reports)
    assert all(
        abs(r["clock_offset_seconds"]) < r["clock_uncertainty_seconds"] + 0.05 for r in reports
    )


def test_unreachable_host_and_wrong_key_stop_the_run_before_anything_starts(
    tmp_path: Path, ssh_lab: SshLab, state_dir: Path
) -> None:
    good, refused = ssh_lab.boards[0], ssh_lab.boards[1]
    nowhere = ssh_lab.gateway.rsplit(".", 1)[0] + ".250"  # no container there
    hosts = [
        good.host_entry(ssh_lab.key_file),
        refused.host_entry(ssh_lab.wrong_key_file),
        f"{{name: ghost, address: {nowhere}, user: {BOARD_USER}, key_file: {ssh_lab.key_file}}}",
    ]
    overrides = ssh_lab.overrides()
    overrides[1] = f"deployment.hosts=[{', '.join(hosts)}]"
    out = tmp_path / "results"
    with pytest.raises(PreflightFailed) as caught:
        run(RunOptions(spec=SMOKE, overrides=overrides, out=out))
    message = str(caught.value)
    print(message)
    lines = message.splitlines()
    assert any(x.startswith("board-1") and " ok " in x for x in lines), message
    assert f"{refused.name}: authentication failed with key {ssh_lab.wrong_key_file}" in message
    assert "ghost: cannot connect to port 22: " in message
    assert "1/3 hosts ok" in message
    # nothing started: no bundle, no state, nothing on the good board
    assert not out.exists()
    assert not state_dir.exists() or not any(state_dir.rglob("*.json"))
    assert ssh_lab.agent_processes(good) == []


def test_changed_host_key_is_refused(
    tmp_path: Path, ssh_lab: SshLab, capsys: pytest.CaptureFixture[str]
) -> None:
    board = ssh_lab.boards[0]
    other = paramiko.RSAKey.generate(2048)
    lines = ssh_lab.known_hosts.read_text().splitlines()
    forged = [
        f"{board.address} {other.get_name()} {other.get_base64()}"
        if line.startswith(f"{board.address} ")
        else line
        for line in lines
    ]
    known = tmp_path / "known_hosts"
    known.write_text("\n".join(forged) + "\n")
    overrides = ssh_lab.overrides(
        [board], known_hosts=known, accept_new_host_keys="true"
    )  # accept-new never overrides a changed key
    with pytest.raises(PreflightFailed) as caught:
        run(RunOptions(spec=SMOKE, overrides=overrides, out=tmp_path / "results"))
    message = str(caught.value)
    print(message)
    assert f"{board.name}: host key CHANGED" in message
    assert "refusing to connect" in message and "ssh-keygen -R" in message
    assert known.read_text() == "\n".join(forged) + "\n"  # untouched
    assert not (tmp_path / "results").exists()


def test_unknown_host_key_needs_accept_new(
    tmp_path: Path, ssh_lab: SshLab, capsys: pytest.CaptureFixture[str]
) -> None:
    board = ssh_lab.boards[0]
    known = tmp_path / "ssh" / "known_hosts"  # does not exist yet
    code, out = hosts_check(ssh_lab.overrides([board], known_hosts=known), capsys)
    assert code == 1
    assert "is not in" in out and "accept_new_host_keys" in out, out
    assert not known.exists()
    code, out = hosts_check(
        ssh_lab.overrides([board], known_hosts=known, accept_new_host_keys="true"), capsys
    )
    assert code == 0, out
    recorded = known.read_text()
    assert recorded.startswith(f"{board.address} ") and recorded in ssh_lab.known_hosts.read_text()
    code, out = hosts_check(ssh_lab.overrides([board], known_hosts=known), capsys)
    assert code == 0, out  # known now


def test_clock_offset_above_the_limit_is_refused(
    tmp_path: Path, ssh_lab: SshLab, capsys: pytest.CaptureFixture[str]
) -> None:
    """A board whose clock runs an hour ahead: its `python` is the real one with
    time.time() shifted (sitecustomize), which is what the probe reads."""
    board = ssh_lab.boards[1]
    ssh_lab.ssh(
        board,
        "mkdir -p ~/skew && printf '%s\\n' 'import time' "
        "'_t = time.time' 'time.time = lambda: _t() + 3600' > ~/skew/sitecustomize.py && "
        "printf '#!/bin/sh\\nPYTHONPATH=$HOME/skew exec python3 \"$@\"\\n' > ~/skew/python && "
        "chmod +x ~/skew/python",
    )
    skewed = board.host_entry(ssh_lab.key_file, python="/home/testbed/skew/python")
    overrides = ssh_lab.overrides()
    overrides[1] = f"deployment.hosts=[{ssh_lab.boards[0].host_entry(ssh_lab.key_file)}, {skewed}]"
    code, out = hosts_check(overrides, capsys)
    assert code == 1
    assert f"{board.name}: clock off by +3600." in out
    assert "0.05 x Δ̂ (10 s) = 0.500 s" in out
    code, out = hosts_check(
        [*overrides, "deployment.ssh.max_clock_offset_fraction=1000"], capsys, "--json"
    )
    assert code == 0
    offsets = [r["clock_offset_seconds"] for r in json.loads(out)["hosts"]]
    assert abs(offsets[1] - 3600) < 1 and abs(offsets[0]) < 1
