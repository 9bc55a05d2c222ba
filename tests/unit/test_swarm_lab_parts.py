"""The swarm lab's pure parts, with no engine: registry image names, the
registry's certificate, the manager address workers join, the lab's state file
round trip, and the cgroup subtree removal (deepest first) on a folder tree."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest
from cryptography import x509

from orchestrator.swarm.lab import (
    HEARTBEAT_SECONDS,
    Lab,
    LabNode,
    _heartbeat_hint,
    _manager_address,
    lab_ids,
)
from orchestrator.swarm.nodes import cgroup_subtrees, remove_cgroups
from orchestrator.swarm.registry import (
    Registry,
    RegistryError,
    _certificate,
    _repository_of,
    place_ca,
)


@pytest.mark.parametrize(
    ("local", "repository"),
    [
        ("testbed/agent:1a2b", "testbed/agent"),
        ("python:3.11-slim", "python"),
        ("172.17.0.1:5000/testbed/agent:1a2b", "testbed/agent"),
        ("localhost:5000/x/y", "x/y"),
        ("registry.example/org/img@sha256:abc", "org/img"),
        ("testbed/agent", "testbed/agent"),
    ],
)
def test_repository_of(local: str, repository: str) -> None:
    assert _repository_of(local) == repository


def test_certificate_names_the_ip_and_is_reused(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path, "172.17.0.1")
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    alt = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alt.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("172.17.0.1")]
    assert key.stat().st_mode & 0o777 == 0o600
    again, _ = _certificate(tmp_path, "172.17.0.1")
    assert again.read_bytes() == cert.read_bytes(), "the engines' ca.crt stays valid"
    dns, _ = _certificate(tmp_path, "registry.lab")
    parsed = x509.load_pem_x509_certificate(dns.read_bytes())
    alt = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alt.get_values_for_type(x509.DNSName) == ["registry.lab"]


def test_place_ca_and_stop_remove_only_what_start_placed(tmp_path: Path) -> None:
    cert, _ = _certificate(tmp_path, "10.0.0.1")
    placed = place_ca("10.0.0.1:5000", cert, root=tmp_path / "certs.d")
    assert placed.read_bytes() == cert.read_bytes()
    Registry(address="10.0.0.1:5000", ca_placed=str(placed)).stop()
    assert not placed.exists() and not placed.parent.exists()
    Registry.given("10.0.0.2:5000").stop()  # nothing of a given registry is touched


def test_manager_address() -> None:
    swarm = {
        "NodeID": "me",
        "NodeAddr": "172.17.0.1",
        "RemoteManagers": [{"NodeID": "other", "Addr": "10.0.0.9:2377"}],
    }
    assert _manager_address(swarm) == "172.17.0.1:2377"
    swarm["RemoteManagers"].append({"NodeID": "me", "Addr": "172.17.0.1:4000"})
    assert _manager_address(swarm) == "172.17.0.1:4000"


def test_state_round_trip(tmp_path: Path) -> None:
    lab = Lab("abc", tmp_path, manager="172.17.0.1:2377", initialised_swarm=True, image="n:1")
    lab.nodes.append(LabNode("testbed-lab-abc-w1", "testbed-lab-abc-w1-docker", "cid", "nid"))
    lab.registry = Registry(address="172.17.0.1:5000", pid=123, ca_placed="/x/ca.crt")
    lab.owns_registry = True
    lab.save()
    assert lab_ids(tmp_path) == ["abc"]
    loaded = Lab.load(tmp_path, "abc")
    assert loaded == lab


def test_remove_cgroups_deepest_first(tmp_path: Path) -> None:
    for controller in ("memory", "pids"):
        (tmp_path / controller / "node-1" / "c1" / "inner").mkdir(parents=True)
        (tmp_path / controller / "node-2").mkdir(parents=True)
    (tmp_path / "cpu,cpuacct" / "node-1").mkdir(parents=True)
    (tmp_path / "cpu").symlink_to(tmp_path / "cpu,cpuacct")
    found = cgroup_subtrees("node-1", tmp_path)
    assert len(found) == 3, "cpu and cpu,cpuacct are one hierarchy"
    assert remove_cgroups("node-1", tmp_path) == []
    assert cgroup_subtrees("node-1", tmp_path) == []
    assert (tmp_path / "memory" / "node-2").is_dir(), "another node's subtree stays"


def test_start_refuses_an_address_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RegistryError, match="in use"):
            Registry.start(None, tmp_path, host="127.0.0.1", port=port)
    assert list(tmp_path.iterdir()) == [], "nothing made, no CA placed"


def test_a_swarm_the_lab_did_not_make_keeps_its_heartbeat_with_a_hint() -> None:
    said: list[str] = []
    docker_default = {"Spec": {"Dispatcher": {"HeartbeatPeriod": 5_000_000_000}}}
    _heartbeat_hint(docker_default, said.append)
    assert len(said) == 1 and "is 5 s" in said[0]
    assert f"--dispatcher-heartbeat {HEARTBEAT_SECONDS}s" in said[0]
    said.clear()
    _heartbeat_hint({"Spec": {"Dispatcher": {"HeartbeatPeriod": 20_000_000_000}}}, said.append)
    _heartbeat_hint({"Spec": {}}, said.append)
    assert said == []
