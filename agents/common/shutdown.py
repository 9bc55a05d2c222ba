"""Clean shutdown: SIGTERM/SIGINT set an event that agent loops poll.

Agents block only in bounded waits (zmq polls with a timeout, receipt waits),
so they notice the event within about a second, flush and exit 0.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


class Shutdown:
    """Set when the process was asked to stop. `bool(shutdown)` is True then."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name: str | None = None

    def request(self, reason: str = "requested") -> None:
        self.signal_name = self.signal_name or reason
        self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def __bool__(self) -> bool:
        return self.event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if shutdown was requested meanwhile."""
        return self.event.wait(seconds)


def install_shutdown() -> Shutdown:
    """Route SIGTERM and SIGINT to a fresh `Shutdown` (main thread only)."""
    shutdown = Shutdown()

    def _handler(signum: int, _frame: FrameType | None) -> None:
        shutdown.request(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    return shutdown
