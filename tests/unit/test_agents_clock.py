"""The clock's bookkeeping of lockstep reports (pure) and its lockstep wait."""

from __future__ import annotations

import time

import pytest

from agents.clock import Clock, Reports
from agents.common.errors import LockstepTimeout
from agents.common.protocol import Posted, Settled, Solved, Tick
from agents.common.shutdown import Shutdown


def test_missing_names_who_has_not_reported() -> None:
    r = Reports(["hosts-1", "hosts-2"], ["solver-1"])
    assert r.missing("posted", 4) == ["hosts-1", "hosts-2"]
    r.add(Posted(4, "hosts-2", 7))
    r.add(Posted(3, "hosts-1", 1))  # an older interval does not count for 4
    assert r.missing("posted", 4) == ["hosts-1"]
    r.add(Posted(4, "hosts-1", 5))
    r.add(Posted(4, "hosts-1", 5))  # repeats are not double counted
    assert r.missing("posted", 4) == []
    assert r.offers_posted[4] == 12
    assert r.missing("solved", 4) == ["solver-1"]
    r.add(Solved(4, "solver-1", False, 0))
    assert r.missing("solved", 4) == []


def test_unexpected_senders_are_ignored() -> None:
    r = Reports(["hosts-1"], [])
    r.add(Posted(1, "intruder", 3))
    r.add(Settled("intruder"))
    assert r.missing("posted", 1) == ["hosts-1"]
    assert r.missing("settled") == ["hosts-1"]
    assert r.missing("solved", 1) == []  # no solvers expected
    r.add(Settled("hosts-1"))
    assert r.missing("settled") == []


class Chain:
    """Block numbers as a node would answer them, one per call (the last repeats)."""

    def __init__(self, heads: list[int]) -> None:
        self.heads = heads

    def block_number(self) -> int:
        return self.heads.pop(0) if len(self.heads) > 1 else self.heads[0]


class Quiet:
    """A socket on which nothing arrives (and nothing is sent anywhere)."""

    def recv(self, timeout: float) -> None:
        time.sleep(min(timeout, 0.001))

    def send(self, msg: object) -> None:
        pass


def waiting_clock(heads: list[int]) -> Clock:
    clock = Clock.__new__(Clock)
    clock.chain = Chain(heads)  # type: ignore[assignment]
    clock.pub = clock.pull = Quiet()  # type: ignore[assignment]
    clock.shutdown = Shutdown()
    clock.reports = Reports(["hosts-1"], [])
    clock.holds, clock.released = set(), set()
    return clock


def test_a_missing_report_times_out_only_once_the_chain_stops() -> None:
    # blocks 5 (start), 6, 7 at the first two deadlines, then nothing new
    clock = waiting_clock([5, 6, 7])
    started = time.monotonic()
    with pytest.raises(LockstepTimeout, match="no 'posted' report from hosts-1"):
        clock._wait_for("posted", 3, Tick(3), timeout=0.05)
    assert time.monotonic() - started >= 0.15  # three timeouts: two extended by new blocks
    assert clock.chain.heads == [7]  # type: ignore[attr-defined]


def test_a_report_ends_the_wait() -> None:
    clock = waiting_clock([5])
    clock.reports.add(Posted(3, "hosts-1", 2))
    assert clock._wait_for("posted", 3, Tick(3), timeout=0.05)
