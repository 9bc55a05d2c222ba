"""Start-up of an agent among many: reaching its peers while the cluster settles.

On a swarm, a task can start before its node knows the other services' names
(the overlay's name records travel by gossip, late when hundreds of tasks
start on a few cores) or before a peer listens: the first connection then
fails with "Name or service not known" or "Connection refused". That is no
reason to end the run: `until_reachable` tries again, backing off, for up to
REACH_SECONDS, and only then lets the error out. Errors that are not about
reaching the peer (a wrong contract address, a malformed answer) are raised at
once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from agents.common.errors import AgentError

REACH_SECONDS = 180.0  # how long a peer may stay unreachable at start-up
BACKOFF_SECONDS = (0.5, 5.0)  # first and longest wait between attempts

T = TypeVar("T")
log = logging.getLogger("agents.startup")


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is a failure to reach the peer."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError):  # socket.gaierror, ConnectionRefusedError, timeouts
            return True
        seen = seen.__cause__
    return False


def until_reachable(
    what: str,
    action: Callable[[], T],
    seconds: float = REACH_SECONDS,
    stop: Callable[[], bool] = lambda: False,
) -> T:
    """`action()`, tried again while it fails to reach its peer (for up to
    `seconds`, or until `stop()` is true)."""
    deadline = time.monotonic() + seconds
    wait, longest = BACKOFF_SECONDS
    attempts = 0
    while True:
        try:
            return action()
        except AgentError as exc:
            attempts += 1
            if not unreachable(exc) or time.monotonic() + wait > deadline or stop():
                raise
            if attempts == 1:
                log.warning("%s: %s; trying again for up to %.0f s", what, exc, seconds)
        time.sleep(wait)
        wait = min(longest, wait * 2)
