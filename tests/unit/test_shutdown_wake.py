"""An idle agent waits on its subscription and its `Shutdown` together, with a long timeout:
a stop request (from a thread, or SIGTERM to the process) ends the wait at once, a
message still arrives, and another signal neither stops it nor leaves it spinning."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time

from agents.common.protocol import Tick
from agents.common.shutdown import Shutdown
from agents.common.transport import Publisher, Subscriber

LONG = 600.0  # the wait's own timeout: never reached in these tests


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def test_a_request_from_another_thread_ends_the_wait() -> None:
    shutdown = Shutdown()
    sub = Subscriber(free_endpoint())  # nobody publishes there
    threading.Timer(0.2, shutdown.request).start()
    started = time.monotonic()
    try:
        assert sub.recv(LONG, wake=shutdown) is None
        shutdown.settle()
        assert shutdown.requested
        assert sub.recv(LONG, wake=shutdown) is None  # stays awake once requested
    finally:
        sub.close()
        shutdown.close()
    assert time.monotonic() - started < 30  # generous: the machine is shared


def test_a_message_arrives_while_waiting_on_shutdown() -> None:
    endpoint = free_endpoint()
    pub, sub, shutdown = Publisher(endpoint), Subscriber(endpoint), Shutdown()
    try:
        deadline = time.monotonic() + 60
        got = None
        while got is None and time.monotonic() < deadline:
            pub.send(Tick(7))  # PUB/SUB drops what is sent before the connection is up
            got = sub.recv(0.2, wake=shutdown)
        assert got == Tick(7)
        assert not shutdown.requested
    finally:
        pub.close()
        sub.close()
        shutdown.close()


# Waits as a prosumer host does; prints "waiting" first, then how each wait ended.
CHILD = """\
import signal, sys
from agents.common.shutdown import install_shutdown
from agents.common.transport import Subscriber
shutdown = install_shutdown()
signal.signal(signal.SIGUSR1, lambda *_: print("usr1", flush=True))
sub = Subscriber(sys.argv[1])
print("waiting", flush=True)
wakes = 0
while not shutdown and wakes < 1000:
    sub.recv(600.0, wake=shutdown)
    shutdown.settle()
    wakes += 1
print("stopped" if shutdown else "spinning", shutdown.signal_name, wakes, flush=True)
"""


def test_sigterm_ends_the_wait_and_other_signals_do_not() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, free_endpoint()], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "waiting"
        child.send_signal(signal.SIGUSR1)
        assert child.stdout.readline().strip() == "usr1"
        started = time.monotonic()
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert time.monotonic() - started < 30  # not the wait's 600 s
    verdict, name, wakes = out.split()
    assert (verdict, name) == ("stopped", "SIGTERM")
    assert int(wakes) <= 3  # USR1 woke it once, then it waited again: no spin
