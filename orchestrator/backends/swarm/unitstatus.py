"""A unit's state from its service's newest task, and the one more try a task
that never started gets (mixed into SwarmBackend).

Services restart on no condition: a crash of a running agent ends the run, as
on every backend. A task whose container never ran is another matter: the agent
did nothing yet, so a new task is safe, and the engine's reasons are often
passing (a worker's engine under load could not remount a task's secrets tmpfs
read-only, "device or resource busy"). Such a task gets one new task on the
same node (the service's ForceUpdate raised by one: the engine replaces the
failed task at once; a scale to 0 and back to 1 left the service with no task
at all on the lab), a line in the unit's log, and the unit stays `running`
(pending) meanwhile. A second failure to start ends the unit as any failure
does, its log naming the node and the engine's reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.backends.base import UnitStatus
from orchestrator.backends.docker.backend import exit_code
from orchestrator.backends.swarm.logs import ServiceLogFollower
from orchestrator.backends.swarm.tasks import RUNNING, Listing, Record

START_TRIES = 2  # tasks a unit may have that fail to start; a crash ends it at once


def start_failure(task: dict[str, Any]) -> str | None:
    """The engine's reason when `task` ended before its container ran, else None.

    The engine keeps the step a task failed at in Status.Message: `preparing`
    (state rejected: a bind mount's source missing on the node, an image it
    cannot pull) or `starting` (state failed, Err "starting container failed:
    ..."); a container that ran and exited says `started` (Err "task: non-zero
    exit (N)"), one that ended well `finished`, a task scaled down `shutdown`.
    Exit codes tell nothing here: a container that failed to start has one
    (127), and a rejected task has 0 (tests/unit/data/swarm-tasks.json)."""
    status = task.get("Status") or {}
    state, step = status.get("State"), status.get("Message") or ""
    if state == "rejected" or (state == "failed" and step != "started"):
        return str(status.get("Err") or f"task {state} while {step or 'starting'}")
    return None


def force_new_task(client: Any, service_id: str) -> None:
    """A new task of the service, with the same spec (ForceUpdate + 1): the engine
    replaces the service's task, on the same node (its constraints stay)."""
    info = client.api.inspect_service(service_id)
    force = int(info["Spec"].get("TaskTemplate", {}).get("ForceUpdate", 0)) + 1
    client.api.update_service(
        service_id,
        info["Version"]["Index"],
        task_template={"ForceUpdate": force},
        fetch_current_spec=True,
    )


class ServiceStatus:
    """status() of the swarm backend: one listing of the run's tasks, read per unit."""

    client: Any
    _records: dict[str, Record]
    _listing: Listing

    def _settle(self, names: Sequence[str] | None = None, *, raise_errors: bool = True) -> None:
        raise NotImplementedError  # the backend's

    def status(self) -> dict[str, UnitStatus]:
        self._settle()
        tasks, lost = self._listing.current(self._records.values())
        out: dict[str, UnitStatus] = {}
        for name, record in self._records.items():
            if record.service_id is None:
                out[name] = UnitStatus(name, "missing")
            elif record.done:
                out[name] = self._ended(name, record)
            else:
                out[name] = self._unit_status(name, record, tasks.get(record.service_id), lost)
        return out

    def _unit_status(
        self, name: str, record: Record, task: dict[str, Any] | None, lost: dict[str, str]
    ) -> UnitStatus:
        if task is None and record.seen_task:
            self._finish(record, None, "its task is gone")  # removed by the manager
            return self._ended(name, record)
        if task is None or task.get("ID") in record.failed_starts:
            return UnitStatus(name, "running")  # not scheduled yet, or its new task not yet
        record.seen_task = True
        state = task.get("Status", {}).get("State", "")
        node = task.get("NodeID") or record.node.id
        follower = record.follower
        if follower is not None and not follower.started and task["Status"].get("ContainerStatus"):
            follower.start()
        if state in RUNNING and node in lost:
            record.lost_node = lost[node]
            self._finish(record, None, f"its node {lost[node]} is down (engine stopped or gone)")
            return self._ended(name, record)
        if state in RUNNING:
            return UnitStatus(name, "running")
        if (why := start_failure(task)) is not None:
            return self._failed_start(name, record, task, why)
        container = task.get("Status", {}).get("ContainerStatus") or {}
        code = container.get("ExitCode")
        err, note = str(task.get("Status", {}).get("Err") or ""), None
        if state == "orphaned" or code is None or (err and "non-zero exit" not in err):
            note = f"task {state}: {err or 'no exit code'}"
        self._finish(record, exit_code(int(code)) if code is not None else None, note)
        return self._ended(name, record)

    def _failed_start(
        self, name: str, record: Record, task: dict[str, Any], why: str
    ) -> UnitStatus:
        """One more task for a unit whose task never ran; its end after START_TRIES."""
        import docker.errors

        record.failed_starts.append(str(task.get("ID")))
        tries = len(record.failed_starts)
        if tries >= START_TRIES:
            self._finish(record, None, f"task failed to start {tries} times, last: {why}")
            return self._ended(name, record)
        self._note(record, f"task failed to start ({why}); starting it once more")
        self._listing.invalidate()  # its tasks change now
        try:
            force_new_task(self.client, str(record.service_id))
        except docker.errors.APIError as exc:
            self._finish(record, None, f"task failed to start ({why}); no new task: {exc}")
            return self._ended(name, record)
        old = record.follower
        if old is not None and old.started:  # its stream was the failed task's
            old.saved = True
            record.follower = ServiceLogFollower(self.client, old.container_id, record.log_file)
            record.follower.notes = old.notes
        return UnitStatus(name, "running")

    def _ended(self, name: str, record: Record) -> UnitStatus:
        return UnitStatus(
            name,
            "exited",
            None,
            record.exit_code,
            lost_node=record.lost_node,
            reason=record.reason,
        )

    def _finish(self, record: Record, code: int | None, note: str | None) -> None:
        record.done, record.exit_code = True, code
        if code is None:
            record.reason = note
        if record.follower is not None and not record.follower.started:
            record.follower.save()  # it ended before a status saw it run: its log now
        if note:
            self._note(record, note)

    def _note(self, record: Record, note: str) -> None:
        """A line of the testbed's own in the unit's log (kept when the log is saved)."""
        if record.follower is not None:
            where = f"{record.spec.unit} on node {record.node.hostname}"
            record.follower.note(f"testbed: {where}: {note}")
