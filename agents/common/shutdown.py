"""Clean shutdown: SIGTERM/SIGINT set an event that agent loops poll or wait on.

Agents block only in bounded waits (zmq polls with a timeout, receipt waits),
so they notice the event within about a second, flush and exit 0. A loop with
nothing to do may instead wait on `Shutdown` itself (it has a `fileno()`,
readable once a stop is requested: zmq.Poller and select take it) beside its
sockets, for as long as it likes: an idle prosumer host then wakes for messages
only, not twice a second to look at the event.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Shutdown:
    """Set when the process was asked to stop. `bool(shutdown)` is True then."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name: str | None = None
        # a byte in _wake_w makes fileno() readable (request(), or the signal handler's
        # C half through signal.set_wakeup_fd: it wakes a poll in any thread)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    def request(self, reason: str = "requested") -> None:
        self.signal_name = self.signal_name or reason
        self.event.set()
        with contextlib.suppress(OSError):  # full: readable already
            self._wake_w.send(b"\0")

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def __bool__(self) -> bool:
        return self.event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if shutdown was requested meanwhile."""
        return self.event.wait(seconds)

    def fileno(self) -> int:
        """Readable once a stop was requested (see `settle` for other signals)."""
        return self._wake_r.fileno()

    def settle(self) -> None:
        """After a wait on `fileno()` woke: a stop signal requests the stop now (its
        Python handler may not have run yet); any other signal's byte is dropped, so
        the descriptor stays readable only once a stop was requested."""
        if self.requested:
            return
        with contextlib.suppress(OSError):  # BlockingIOError: drained
            while data := self._wake_r.recv(512):
                stops = [n for n in data if n in STOP_SIGNALS]
                if stops:
                    self.request(signal.Signals(stops[0]).name)  # readable again
                    return

    def close(self) -> None:
        self._wake_r.close()
        self._wake_w.close()


def install_shutdown() -> Shutdown:
    """Route SIGTERM and SIGINT to a fresh `Shutdown` (main thread only)."""
    shutdown = Shutdown()

    def _handler(signum: int, _frame: FrameType | None) -> None:
        shutdown.request(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    signal.set_wakeup_fd(shutdown._wake_w.fileno(), warn_on_full_buffer=False)
    return shutdown
