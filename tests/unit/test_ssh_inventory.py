"""The ssh backend's pure parts: the inventory from a spec (groups, defaults,
paths relative to the spec file, errors), the preflight's report text, the
boards' requirements and a prepared wheelhouse directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.backends.ssh.deploy import board_requirements, prepare_bundle
from orchestrator.backends.ssh.inventory import InventoryError, inventory_of
from orchestrator.backends.ssh.preflight import HostReport, format_reports
from orchestrator.errors import TestbedError
from orchestrator.spec import load_spec
from tests.conftest import REPO

SMOKE = REPO / "topologies" / "smoke.yaml"


def spec_file(tmp_path: Path, deployment: str) -> Path:
    text = SMOKE.read_text().split("deployment:")[0] + deployment
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_inventory_expands_groups_and_resolves_paths(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "bbb").write_text("key")
    path = spec_file(
        tmp_path,
        """deployment:
  backend: ssh
  hosts:
    - {name: bbb, count: 3, address: 192.168.7.2, user: debian, key_file: keys/bbb}
    - {name: pc, address: pc.lan, port: 2222, python: /opt/py/bin/python3}
  ssh:
    known_hosts: ssh/known_hosts
    key_file: keys/bbb
    wheelhouse: wheels-armv7l
    max_clock_offset_fraction: 0.1
""",
    )
    inv = inventory_of(load_spec(path))
    assert [h.name for h in inv.hosts] == ["bbb-01", "bbb-02", "bbb-03", "pc"]
    bbb, pc = inv.hosts[0], inv.hosts[3]
    assert (bbb.address, bbb.port, bbb.user, bbb.python) == ("192.168.7.2", 22, "debian", "python3")
    assert bbb.key_file == tmp_path / "keys" / "bbb"
    assert pc.key_file == tmp_path / "keys" / "bbb"  # the ssh section's default key
    assert (pc.port, pc.python, pc.known_hosts_name) == (
        2222,
        "/opt/py/bin/python3",
        "[pc.lan]:2222",
    )
    assert pc.target.endswith("@pc.lan:2222")
    assert inv.settings.known_hosts == tmp_path / "ssh" / "known_hosts"
    assert inv.settings.wheelhouse == tmp_path / "wheels-armv7l"
    assert not inv.settings.accept_new_host_keys  # the default: refuse unknown keys
    assert inv.max_clock_offset_seconds == pytest.approx(0.1 * 10)  # smoke: Δ̂ = 10 s


def test_inventory_errors_name_every_problem(tmp_path: Path) -> None:
    path = spec_file(
        tmp_path,
        """deployment:
  backend: ssh
  hosts:
    - {name: a, address: 10.0.0.2, key_file: missing.key}
    - {name: b, address: 10.0.0.3}
""",
    )
    with pytest.raises(InventoryError) as caught:
        inventory_of(load_spec(path))
    assert f"a: key file {tmp_path / 'missing.key'} not found" in str(caught.value)
    assert "b:" not in str(caught.value)
    with pytest.raises(InventoryError, match="needs at least one host"):
        inventory_of(load_spec(SMOKE, ["deployment.backend=ssh"]))


def test_report_text() -> None:
    path = SMOKE
    inv = inventory_of(
        load_spec(path, ["deployment.backend=ssh", "deployment.hosts=[{name: b, address: x}]"])
    )
    ok = HostReport("b", "u@x", True, "3.11.2", "/usr/bin/python3", "armv7l", "/home/u", 900)
    ok.clock_offset_seconds, ok.clock_uncertainty_seconds = 0.0123, 0.0004
    bad = HostReport("c", "u@y", problems=["cannot connect: timed out"])
    text = format_reports([ok, bad], inv)
    lines = text.splitlines()
    assert lines[0].split() == [
        "b", "u@x", "ok", "python", "3.11.2", "armv7l", "900", "MB", "free", "clock",
        "+12.30", "ms", "±0.40",
    ]  # fmt: skip
    assert lines[1].split()[-1] == "FAILED"
    assert lines[2] == "  c: cannot connect: timed out"
    assert lines[3].startswith("1/2 hosts ok (clock offset limit 500 ms = 0.05 x Δ̂ 10 s;")
    assert ok.as_dict()["ok"] and not bad.as_dict()["ok"]


def test_board_requirements_are_pinned() -> None:
    lines = board_requirements().splitlines()
    assert {line.split("==")[0] for line in lines if "==" in line} == {
        "pyzmq",
        "prometheus-client",
        "coincurve",
    }
    assert "web3" not in board_requirements()  # boards run prosumers only


def test_prepared_wheelhouse_must_hold_wheels_and_requirements(tmp_path: Path) -> None:
    with pytest.raises(TestbedError, match="holds no"):
        prepare_bundle(tmp_path, print)
    (tmp_path / "pyzmq-27.1.0-cp311-cp311-linux_armv7l.whl").write_bytes(b"x")
    with pytest.raises(TestbedError, match=r"requirements\.txt is missing"):
        prepare_bundle(tmp_path, print)
    (tmp_path / "requirements.txt").write_text(board_requirements())
    bundle = prepare_bundle(tmp_path, print)
    assert bundle.wheels == tmp_path  # used as given: no wheels are built here
    assert bundle.project_wheel.name.startswith("te_testbed_agents-")
    assert bundle.project_wheel.name.endswith("-py3-none-any.whl")  # pure Python: any board
