"""How the swarm backend reaches a manager that is not this machine's socket:
TLS for tcp:// from the docker CLI's environment, and the address the nodes
reach the orchestrator at."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.backends.swarm.cluster import address_towards, tls_options


def test_a_tcp_manager_gets_tls_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    tls = tls_options("tcp://10.0.0.1:2376")["tls"]
    assert tls.verify is True and tls.ca_cert == str(tmp_path / "ca.pem")
    assert tls.cert == (str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    assert tls_options("unix:///var/run/docker.sock") == {}
    assert tls_options("ssh://admin@pi-0") == {}


def test_a_tcp_manager_without_tls_settings_is_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    assert tls_options("tcp://127.0.0.1:2375") == {}


def test_the_orchestrator_is_reached_at_its_address_towards_the_manager() -> None:
    assert address_towards("127.0.0.1") == "127.0.0.1"  # a manager here: its own address
