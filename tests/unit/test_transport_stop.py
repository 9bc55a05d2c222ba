"""A Requester waiting for a peer that does not answer gives up as soon as its agent is
told to stop (StopRequested), instead of waiting out every retry's timeout; without a
stop it still times out after its retries (PeerTimeout)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from agents.common.errors import PeerTimeout, StopRequested
from agents.common.protocol import Bootstrap
from agents.common.transport import Requester, Router


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def test_stop_ends_a_wait_for_a_silent_peer() -> None:
    endpoint = free_endpoint()
    silent = Router(endpoint)  # receives the request, never replies
    stop = threading.Event()
    asker = Requester(endpoint, timeout=60.0, retries=3, stop=stop.is_set)
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    try:
        with pytest.raises(StopRequested, match="bootstrap"):
            asker.request(Bootstrap())
        waited = time.monotonic() - started
        assert len(silent.recv_all(5.0)) == 1  # it was asked once, and did not answer
    finally:
        asker.close()
        silent.close()
    assert waited < 30  # not 3 x 60 s (generous: the machine is shared)


def test_without_stop_it_times_out_after_its_retries() -> None:
    endpoint = free_endpoint()
    silent = Router(endpoint)
    asker = Requester(endpoint, timeout=0.2, retries=2)
    try:
        with pytest.raises(PeerTimeout, match="2 x 0 s"):
            asker.request(Bootstrap())
    finally:
        asker.close()
        silent.close()
