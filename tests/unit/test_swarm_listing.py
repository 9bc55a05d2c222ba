"""The swarm backend's task listing (orchestrator/backends/swarm/tasks.py): between
two whole listings only the ended tasks are asked for and merged in; what the
merge keeps is pure."""

from __future__ import annotations

from typing import Any

from orchestrator.backends.swarm.tasks import merged


def task(tid: str, sid: str, index: int, desired: str, state: str) -> dict[str, Any]:
    return {
        "ID": tid,
        "ServiceID": sid,
        "Version": {"Index": index},
        "DesiredState": desired,
        "Status": {"State": state},
    }


def test_an_ended_task_replaces_itself_as_last_listed_running() -> None:
    listed = {"s1": task("t1", "s1", 10, "running", "running")}
    ended = {"s1": task("t1", "s1", 14, "shutdown", "failed")}
    assert merged(listed, ended)["s1"]["Status"]["State"] == "failed"


def test_the_old_task_of_a_restarted_service_does_not_hide_its_new_one() -> None:
    listed = {"s1": task("t2", "s1", 20, "running", "starting")}  # the new task
    ended = {"s1": task("t1", "s1", 18, "shutdown", "complete")}  # killed before
    assert merged(listed, ended)["s1"]["ID"] == "t2"


def test_a_service_first_seen_ended_is_added_and_the_others_are_kept() -> None:
    listed = {"s1": task("t1", "s1", 10, "running", "running")}
    ended = {"s2": task("t9", "s2", 12, "shutdown", "rejected")}
    out = merged(listed, ended)
    assert set(out) == {"s1", "s2"} and out["s1"] is listed["s1"]
    assert listed == {"s1": task("t1", "s1", 10, "running", "running")}  # not changed
