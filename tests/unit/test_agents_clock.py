"""The clock's bookkeeping of lockstep reports (pure)."""

from __future__ import annotations

from agents.clock import Reports
from agents.common.protocol import Posted, Settled, Solved


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
