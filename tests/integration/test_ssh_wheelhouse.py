"""A wheelhouse built on a board (`testbed hosts wheelhouse`): pip wheel runs
on the board with the board's Python and architecture, the wheels come back
into a local directory that `deployment.ssh.wheelhouse` can name. Offline
here: the board's pip is pointed at wheels pushed to it (--find-links), where
a BeagleBone Black would use its package index."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import cli
from orchestrator.backends.ssh.deploy import board_requirements, local_wheelhouse, prepare_bundle
from tests.conftest import REPO
from tests.integration.ssh_support import SshLab, docker_engine, ssh_lab

__all__ = ["docker_engine", "ssh_lab"]  # fixtures used below

SMOKE = REPO / "topologies" / "smoke.yaml"


def test_wheelhouse_built_on_a_board_is_pulled_back(
    tmp_path: Path, ssh_lab: SshLab, capsys: pytest.CaptureFixture[str]
) -> None:
    board = ssh_lab.boards[0]
    source = "/home/testbed/wheel-source"
    ssh_lab.put_dir(board, local_wheelhouse(print), source)
    out = tmp_path / "wheelhouse"
    argv = ["hosts", "wheelhouse", str(SMOKE), "--host", board.name, "--out", str(out)]
    argv += ["--pip-arg=--no-index", f"--pip-arg=--find-links={source}"]
    for line in ssh_lab.overrides([board]):
        argv += ["--set", line]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert f"set deployment.ssh.wheelhouse: {out}" in printed
    names = {p.name.split("-")[0].lower() for p in out.glob("*.whl")}
    assert {"pyzmq", "prometheus_client", "coincurve", "pycryptodome"} <= names
    assert (out / "requirements.txt").read_text() == board_requirements()
    assert prepare_bundle(out, print).wheels == out  # usable as deployment.ssh.wheelhouse
