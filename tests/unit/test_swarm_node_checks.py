"""The check of the swarm's nodes before a run (orchestrator/backends/swarm/ports.py):
the manager that is this machine's engine picks its ports here; the nodes that
publish no port (prosumer hosts only) are checked while the chain starts, and a
unit waits for its node's check."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from orchestrator.backends.base import BackendError
from orchestrator.backends.swarm.ports import Checks, manager_is_here, ports_here


def _ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_ports_picked_here_are_distinct_free_and_below_the_ephemeral_range() -> None:
    ports = ports_here(5)
    assert len(set(ports)) == 5
    assert all(p < _ephemeral_low() for p in ports)
    for port in ports:  # free once picked: the service binds them next
        with socket.socket() as sock:
            sock.bind(("0.0.0.0", port))


def test_a_node_without_a_pending_check_does_not_wait() -> None:
    release = threading.Event()
    checks = Checks(lambda: [] if release.wait(60) else ["never released"], ["w1"])
    checks.wait("manager")  # not pending: returns at once, the check of w1 still going
    release.set()
    checks.wait("w1")
    assert checks.problems == []


def test_a_units_node_whose_check_failed_stops_it_naming_every_failed_node() -> None:
    problems = ["swarm node pi-1 (10.0.0.11) has no /r", "swarm node pi-2 (10.0.0.12) has no /r"]
    checks = Checks(lambda: problems, ["w1", "w2"])
    with pytest.raises(BackendError) as failed:
        checks.wait("w2")
    assert str(failed.value).splitlines() == problems


def test_an_error_of_the_manager_during_the_check_is_a_failed_check() -> None:
    def broken() -> list[str]:
        raise OSError("connection reset by the manager")

    checks = Checks(broken, ["w1"])
    with pytest.raises(BackendError, match="connection reset"):
        checks.wait("w1")


def test_no_pending_node_starts_no_thread() -> None:
    checks = Checks(lambda: ["not called"], [])
    checks.wait("w1")
    assert checks.problems == []


def test_a_manager_over_tcp_is_asked_for_its_ports_even_when_forwarded_from_here() -> None:
    # (no engine call: a tcp:// URL may be forwarded to any machine; this machine's own
    # engine over its socket is the one the swarm integration tests run with)
    assert not manager_is_here(None, "tcp://127.0.0.1:2376")
