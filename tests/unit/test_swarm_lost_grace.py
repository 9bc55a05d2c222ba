"""The swarm backend's grace before a node the manager sees down is lost
(orchestrator/backends/swarm/nodes.py DownSince): under load a live worker's
heartbeats come late and the manager lists it down for a while."""

from __future__ import annotations

from orchestrator.backends.swarm.nodes import DownSince

W1 = {"w1": "lab-w1"}


def test_a_node_is_lost_only_once_down_for_its_grace() -> None:
    watch = DownSince(grace=10.0)
    assert watch.lost(W1, now=100.0) == {}
    assert watch.lost(W1, now=109.9) == {}
    assert watch.lost(W1, now=110.0) == W1
    assert watch.lost(W1, now=250.0) == W1


def test_a_node_seen_up_again_starts_over() -> None:
    watch = DownSince(grace=10.0)
    watch.lost(W1, now=100.0)
    assert watch.lost({}, now=105.0) == {}  # its heartbeats arrived: Ready again
    assert watch.lost(W1, now=112.0) == {}  # down again: a new grace from 112
    assert watch.lost(W1, now=122.0) == W1


def test_each_node_has_its_own_grace() -> None:
    watch = DownSince(grace=10.0)
    watch.lost(W1, now=100.0)
    both = {**W1, "w2": "lab-w2"}
    assert watch.lost(both, now=108.0) == {}
    assert watch.lost(both, now=111.0) == W1
    assert watch.lost(both, now=118.0) == both
