"""The ssh backend's pure parts: the inventory from a spec (groups, defaults,
paths relative to the spec file, errors), the preflight's report text, the
boards' requirements, a prepared wheelhouse directory, and where agents and
services listen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.base import BackendError
from orchestrator.backends.ssh.deploy import board_requirements, prepare_bundle
from orchestrator.backends.ssh.inventory import InventoryError, SshHost, inventory_of
from orchestrator.backends.ssh.preflight import HostReport, format_reports
from orchestrator.backends.ssh.units import Board, listening_ports, remote_addresses
from orchestrator.errors import TestbedError
from orchestrator.placement import Address, Addresses, AgentAddress, Placement, placement
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
    assert inv.known_hosts == tmp_path / "ssh" / "known_hosts"
    assert inv.wheelhouse == tmp_path / "wheels-armv7l"
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
        "eth-abi",
        "eth-keys",
        "eth-utils",
        "rlp",
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


def test_services_host_must_be_a_host() -> None:
    hosts = "deployment.hosts=[{name: b, address: x}, {name: pc, address: y}]"
    base = ["deployment.backend=ssh", hosts]
    assert (
        inventory_of(
            load_spec(SMOKE, [*base, "deployment.ssh.services_host=pc"])
        ).settings.services_host
        == "pc"
    )
    with pytest.raises(InventoryError, match=r"'nope' is not a host of deployment\.hosts"):
        inventory_of(load_spec(SMOKE, [*base, "deployment.ssh.services_host=nope"]))


def test_remote_placement_moves_agents_and_endpoints() -> None:
    here = "127.0.0.1"
    local = Addresses(
        chain=Address(here, 11000),
        chain_local=Address(here, 11000),
        dso=Address(here, 11001),
        clock_pub=Address(here, 11002),
        clock_pull=Address(here, 11003),
        agents={
            n: AgentAddress(Address(here, 12000 + i), here, f"/b/config/{n}.json", f"/b/agents/{n}")
            for i, n in enumerate(("recorder", "dso", "clock", "p-1", "p-2"))
        },
    )
    unmoved = placement(local, Path("/b"))

    def remote_placement(*args: Any, **kwargs: Any) -> Placement:
        return placement(remote_addresses(local, *args, **kwargs), Path("/b"))

    boards = {
        "h1": Board(SshHost("h1", "10.0.0.1"), "/home/u", run_dir="/home/u/.testbed/runs/r"),
        "h2": Board(SshHost("h2", "10.0.0.2"), "/home/v", run_dir="/home/v/.testbed/runs/r"),
    }
    # the prosumers only: services stay here, on the bind address
    placed = remote_placement("10.0.0.9", {"p-1": "h1", "p-2": "h2"}, boards)
    assert placed.rpc_url == placed.rpc_url_local == "http://10.0.0.9:11000"
    assert placed.dso_endpoint == "tcp://10.0.0.9:11001"
    assert placed.clock_pub_endpoint == "tcp://10.0.0.9:11002"
    assert placed.agents["recorder"] == unmoved.agents["recorder"]  # local, loopback metrics
    p1 = placed.agents["p-1"]
    assert p1.metrics_host == "0.0.0.0" and 20_000 <= p1.metrics_port < 30_000
    assert p1.metrics_url == f"http://10.0.0.1:{p1.metrics_port}/metrics"
    assert p1.config_path == "/home/u/.testbed/runs/r/config/p-1.json"
    assert p1.config_file == unmoved.agents["p-1"].config_file  # written here, then pushed
    assert p1.out_dir == "/home/u/.testbed/runs/r/out/p-1"
    assert p1.log_file == unmoved.agents["p-1"].log_file
    # DSO and clock on h2: their endpoints are h2's, on distinct ports
    moved = remote_placement("10.0.0.9", {"dso": "h2", "clock": "h2", "p-2": "h2"}, boards)
    ports = {
        int(e.rsplit(":", 1)[1])
        for e in (moved.dso_endpoint, moved.clock_pub_endpoint, moved.clock_pull_endpoint)
    }
    ports |= {moved.agents[n].metrics_port for n in ("dso", "clock", "p-2")}
    assert len(ports) == 6
    assert moved.dso_endpoint.startswith("tcp://10.0.0.2:")
    assert moved.clock_pull_endpoint.startswith("tcp://10.0.0.2:")
    assert moved.rpc_url == "http://10.0.0.9:11000"  # the chain never moves
    # ports that already listen on a board are never handed out
    busy = {"h2": set(range(20_000, 30_000)) - {23_456, 27_000}}
    tight = remote_placement("10.0.0.9", {"p-1": "h2", "p-2": "h2"}, boards, busy=busy)
    assert {tight.agents[n].metrics_port for n in ("p-1", "p-2")} == {23_456, 27_000}
    with pytest.raises(BackendError, match="h2: no free port"):  # metrics + endpoint + metrics
        remote_placement("10.0.0.9", {"dso": "h2", "p-2": "h2"}, boards, busy=busy)


def test_listening_ports_from_proc_net_tcp() -> None:
    text = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0
   1: 0100007F:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000
   2: 0200000A:0016 0900000A:D431 01 00000000:00000000 02:0009A5A8 00000000     0
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A
"""
    # ssh (22) and 20000 listen on IPv4, 8080 on IPv6; an established connection does not count
    assert listening_ports(text) == {22, 20_000, 8080}
