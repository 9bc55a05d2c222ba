"""The clock's side of fault injection: expect(peer, present) and hold/release."""

from __future__ import annotations

import pytest

from agents import clock as clock_module
from agents.clock import Clock, Reports
from agents.common.errors import LockstepTimeout
from agents.common.protocol import Expect, Finalized, Hold, Message, Posted, Release, Solved
from agents.common.shutdown import Shutdown


def test_expect_removes_and_returns_peers() -> None:
    r = Reports(["h1", "h2"], ["s1", "s2"])
    assert r.expect("s1", False) and r.expect("h2", False)
    assert r.missing("solved", 3) == ["s2"]
    assert r.missing("posted", 3) == ["h1"]
    r.add(Solved(3, "s1", True, 1))  # a report of an absent peer is not counted
    assert r.missing("solved", 3) == ["s2"]
    assert r.expect("s1", True)
    assert r.missing("solved", 4) == ["s1", "s2"]
    assert not r.expect("nobody", False)
    assert r.missing("posted", 3) == ["h1"]
    r.add(Posted(3, "h1", 2))
    assert r.missing("posted", 3) == []


class Pub:
    def __init__(self) -> None:
        self.sent: list[Message] = []

    def send(self, msg: Message) -> None:
        self.sent.append(msg)


class Pull:
    """Returns queued messages; after `after` polls, the queued release."""

    def __init__(self, messages: list[Message], release_after: int | None = None) -> None:
        self.messages = messages
        self.polls = 0
        self.release_after = release_after

    def recv(self, timeout: float) -> Message | None:
        self.polls += 1
        if self.messages:
            return self.messages.pop(0)
        if self.release_after is not None and self.polls >= self.release_after:
            self.release_after = None
            return Release(7)
        return None


def make_clock(pull: Pull) -> tuple[Clock, Pub]:
    clock = Clock.__new__(Clock)
    pub = Pub()
    clock.pub = pub  # type: ignore[assignment]
    clock.pull = pull  # type: ignore[assignment]
    clock.shutdown = Shutdown()
    clock.reports = Reports(["h1"], ["s1"])
    clock.holds, clock.released = set(), set()
    clock.last_finalized = 6
    return clock, pub


def test_hold_waits_for_release_and_tells_where_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock_module, "POLL_SECONDS", 0.001)
    monkeypatch.setattr(clock_module, "REPUBLISH_SECONDS", 0.0)
    clock, pub = make_clock(Pull([Hold(7), Hold(9), Expect("s1", False)], release_after=6))
    assert clock._hold(7, timeout=10)
    assert clock.holds == {7, 9} and 7 in clock.released
    assert clock.reports.solvers == frozenset()
    assert pub.sent and all(m == Finalized(6) for m in pub.sent)
    pub.sent.clear()
    assert clock._hold(8, timeout=10)  # not held: no wait, nothing published
    assert pub.sent == []


def test_a_hold_never_released_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock_module, "POLL_SECONDS", 0.001)
    clock, _ = make_clock(Pull([Hold(7)]))
    with pytest.raises(LockstepTimeout, match="interval 7: held"):
        clock._hold(7, timeout=0.05)
