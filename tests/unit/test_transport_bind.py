"""A binder (clock, DSO) listens on every address when its endpoint names its
host: the name is its peers' view (a network alias) and need not resolve, in
its own container, to the address they reach (a swarm task on two networks).
An IP address binds as given."""

from __future__ import annotations

import socket

import pytest

from agents.common.protocol import Tick
from agents.common.transport import Collector, Reporter, bind_endpoint

TIMEOUT_SECONDS = 30.0  # generous: the machine is shared


@pytest.mark.parametrize(
    ("endpoint", "bound"),
    [
        ("tcp://clock:5555", "tcp://*:5555"),
        ("tcp://pi-0.local:7000", "tcp://*:7000"),
        ("tcp://127.0.0.1:5555", "tcp://127.0.0.1:5555"),
        ("tcp://10.214.4.7:5555", "tcp://10.214.4.7:5555"),
        ("tcp://[::1]:5555", "tcp://[::1]:5555"),
        ("tcp://localhost:5555", "tcp://localhost:5555"),
        ("tcp://*:5555", "tcp://*:5555"),
        ("ipc:///tmp/clock", "ipc:///tmp/clock"),
    ],
)
def test_bind_endpoint(endpoint: str, bound: str) -> None:
    assert bind_endpoint(endpoint) == bound


def test_a_binder_named_by_an_alias_this_machine_cannot_resolve_is_reached() -> None:
    """Bound as `tcp://<alias>:port` (no such name here), reached at 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    collector = Collector(f"tcp://testbed-alias-of-nobody.invalid:{port}")
    reporter = Reporter(f"tcp://127.0.0.1:{port}")
    try:
        reporter.send(Tick(7))
        assert collector.recv(TIMEOUT_SECONDS) == Tick(7)
    finally:
        reporter.close()
        collector.close()
