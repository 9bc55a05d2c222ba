"""Thin ZeroMQ sockets speaking `agents.common.protocol` messages.

All receives take a timeout (seconds) and return None when it passes, so agent
loops can poll their `Shutdown`. Binders: the clock (PUB, PULL) and the DSO
(ROUTER, or REP). Connectors: everybody else.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Protocol

import zmq

from agents.common.errors import PeerTimeout, ProtocolError, StopRequested
from agents.common.protocol import Dispatcher, Message, decode, encode

LINGER_MS = 2000  # let queued reports leave on close


class HasFileno(Protocol):
    def fileno(self) -> int: ...


def bind_endpoint(endpoint: str) -> str:
    """Where a binder listens for `endpoint`, the address its peers connect to.
    A TCP endpoint that names its host (`tcp://dso:5555`) binds every address
    (`tcp://*:5555`): the name is the peers' view (a network alias), and in the
    binder's own container it may resolve to its address on another network (a
    swarm task on two networks), or to 127.0.1.1 on a Debian board. An IP address
    (127.0.0.1 on the local backend) or localhost binds as given."""
    scheme, sep, rest = endpoint.partition("://")
    host, colon, port = rest.rpartition(":")
    if scheme != "tcp" or not sep or not colon or host in ("*", "localhost"):
        return endpoint
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return f"tcp://*:{port}"
    return endpoint


def _ctx() -> zmq.Context[zmq.Socket[bytes]]:
    return zmq.Context.instance()


class _Socket:
    def __init__(self, kind: int, endpoint: str, bind: bool) -> None:
        self.endpoint = endpoint
        self.sock = _ctx().socket(kind)
        self.sock.setsockopt(zmq.LINGER, LINGER_MS)
        if kind == zmq.SUB:
            self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        if bind:
            self.sock.bind(bind_endpoint(endpoint))
        else:
            self.sock.connect(endpoint)

    def _recv(self, timeout: float) -> bytes | None:
        if self.sock.poll(int(timeout * 1000), zmq.POLLIN):
            return self.sock.recv()
        return None

    def close(self) -> None:
        self.sock.close()


class Publisher(_Socket):
    """Clock side of the broadcast (PUB, bound)."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(zmq.PUB, endpoint, bind=True)

    def send(self, msg: Message) -> None:
        self.sock.send(encode(msg))


class Subscriber(_Socket):
    """Agent side of the broadcast (SUB, connected, every message)."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(zmq.SUB, endpoint, bind=False)

    def recv(self, timeout: float, wake: HasFileno | None = None) -> Message | None:
        """The next message, or None after `timeout` seconds or as soon as `wake`
        (e.g. a `Shutdown`) is readable."""
        if wake is None:
            data = self._recv(timeout)
            return None if data is None else decode(data)
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(wake.fileno(), zmq.POLLIN)
        if self.sock in dict(poller.poll(int(timeout * 1000))):
            return decode(self.sock.recv())
        return None


class Collector(_Socket):
    """Clock side of the reports (PULL, bound)."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(zmq.PULL, endpoint, bind=True)

    def recv(self, timeout: float) -> Message | None:
        data = self._recv(timeout)
        return None if data is None else decode(data)


class Reporter(_Socket):
    """Agent side of the reports (PUSH, connected; queued until connected)."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(zmq.PUSH, endpoint, bind=False)

    def send(self, msg: Message) -> None:
        self.sock.send(encode(msg))


class Responder(_Socket):
    """DSO side of REQ/REP: answer one request per `serve_once` with a dispatcher."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(zmq.REP, endpoint, bind=True)

    def serve_once(self, dispatcher: Dispatcher, timeout: float) -> bool:
        """Answer one request if one arrives within `timeout`; True if it did."""
        data = self._recv(timeout)
        if data is None:
            return False
        reply = dispatcher.handle_bytes(data)
        self.sock.send(reply if reply is not None else b'{"type":"error","reason":"no reply"}')
        return True


class Router(_Socket):
    """Server side for many REQ clients at once (ROUTER, bound): `recv_all` returns
    every request that is waiting, so a server can answer them together."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(zmq.ROUTER, endpoint, bind=True)

    def recv_all(self, timeout: float) -> list[tuple[list[bytes], bytes]]:
        """[(reply envelope, request body)], waiting up to `timeout` for the first."""
        out: list[tuple[list[bytes], bytes]] = []
        if not self.sock.poll(int(timeout * 1000), zmq.POLLIN):
            return out
        while self.sock.poll(0, zmq.POLLIN):
            frames = self.sock.recv_multipart()
            split = frames.index(b"") + 1 if b"" in frames else len(frames) - 1
            out.append((frames[:split], frames[-1]))
        return out

    def reply(self, envelope: list[bytes], body: bytes) -> None:
        self.sock.send_multipart([*envelope, body])


STOP_POLL_SECONDS = 0.5  # how often a Requester waiting for a reply checks `stop`


class Requester:
    """REQ client with timeout and retries (a timed-out REQ socket is replaced,
    the "lazy pirate" pattern). Requests must therefore be idempotent. `stop`: while
    waiting, StopRequested as soon as it returns True (an agent told to stop does not
    wait out the timeouts of a peer that is stopping too)."""

    def __init__(
        self,
        endpoint: str,
        timeout: float = 30.0,
        retries: int = 3,
        stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self.stop = stop
        self._sock: _Socket | None = None

    def request(self, msg: Message) -> Message:
        data = encode(msg)
        for _ in range(self.retries):
            if self._sock is None:
                self._sock = _Socket(zmq.REQ, self.endpoint, bind=False)
            self._sock.sock.send(data)
            reply = self._await_reply(self._sock, msg)
            if reply is not None:
                return decode(reply)
            self._sock.sock.setsockopt(zmq.LINGER, 0)
            self._sock.close()
            self._sock = None
        raise PeerTimeout(
            f"no reply from {self.endpoint} to {msg.TYPE} after "
            f"{self.retries} x {self.timeout:.0f} s"
        )

    def _await_reply(self, sock: _Socket, msg: Message) -> bytes | None:
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            reply = sock._recv(max(0.0, min(left, STOP_POLL_SECONDS)))
            if reply is not None or left <= STOP_POLL_SECONDS:
                return reply
            if self.stop():
                raise StopRequested(f"stopped while waiting for {self.endpoint} ({msg.TYPE})")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


__all__ = [
    "Collector",
    "ProtocolError",
    "Publisher",
    "Reporter",
    "Requester",
    "Responder",
    "Router",
    "Subscriber",
]
