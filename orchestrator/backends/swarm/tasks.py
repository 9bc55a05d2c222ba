"""What the backend keeps per service, and what it asks the manager about tasks
and nodes: one listing of the run's live services' tasks and one of the nodes
(no per-service calls), reused for a while that grows with the number of live
services: a listing's cost on the manager grows with them (every task's whole
spec), and status() is called several times a second (the readiness wait,
the run's watch), so a run of 310 hosts would keep the manager's engine busy
listing. Between two whole listings, a short one asks only for the tasks that
ended (their desired state is `shutdown` once they exit, fail or are rejected:
a crash is seen as soon as before) and the nodes; what a whole listing adds
(a task's container, its node) may wait. A scale of a service invalidates the
listing."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.backends.docker.engine import LABEL_RUN
from orchestrator.backends.swarm.logs import ServiceLogFollower
from orchestrator.backends.swarm.nodes import Node
from orchestrator.backends.swarm.services import ServiceSpec

RUNNING = frozenset(
    {"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
) | {"running"}
NODE_LOST = frozenset({"down", "disconnected", "unknown"})
# a listing is reused for up to this many seconds per live service (310: 1.2 s;
# a paper-scale run's 40 services: 0.16 s, less than its callers' poll period)
LISTING_SECONDS_PER_SERVICE = 0.004
# ... and the whole listing (every live task) for this many (310: 9.3 s; 40: 1.2 s);
# in between, the ended tasks only
WHOLE_LISTING_SECONDS_PER_SERVICE = 0.03
ENDED = "shutdown"  # a task's desired state once it exited, failed or was rejected


@dataclass
class Record:
    """One service of the run, as the backend knows it."""

    spec: ServiceSpec
    log_file: Path
    node: Node
    future: Future[str] | None = None
    service_id: str | None = None
    exit_code: int | None = None
    done: bool = False
    seen_task: bool = False
    lost_node: str | None = None  # the hostname of the node it was lost with
    follower: ServiceLogFollower | None = None
    start_error: str | None = None
    failed_starts: list[str] = field(default_factory=list)  # its tasks that never ran (IDs)
    reason: str | None = None  # why it ended, when it has no exit code


class Listing:
    """The run's tasks and the lost nodes, as the manager last listed them."""

    def __init__(self, client: Any, run_id: str | None = None) -> None:
        self.client = client
        self.run_id = run_id  # its tasks are asked for by the run's label (newest_tasks)
        self.tasks: dict[str, dict[str, Any]] = {}
        self.lost: dict[str, str] = {}
        self._at = -math.inf
        self._whole_at = -math.inf

    def current(
        self, records: Iterable[Record]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """({service id: newest task}, {node id: hostname} of nodes down), listed
        again when the last listing is older than its live services allow: the
        whole listing, or the ended tasks merged into the last one."""
        live = [r for r in records if r.service_id and not r.done]
        now = time.monotonic()
        if now - self._whole_at >= len(live) * WHOLE_LISTING_SECONDS_PER_SERVICE:
            self.tasks = newest_tasks(self.client, live, run_id=self.run_id)
            self._whole_at = now
        elif now - self._at >= len(live) * LISTING_SECONDS_PER_SERVICE:
            ended = newest_tasks(self.client, live, desired=ENDED, run_id=self.run_id)
            self.tasks = merged(self.tasks, ended)
        else:
            return self.tasks, self.lost
        self.lost = lost_nodes(self.client) if live else {}
        self._at = time.monotonic()
        return self.tasks, self.lost

    def invalidate(self) -> None:
        self._at = self._whole_at = -math.inf


def newest_tasks(
    client: Any, records: Iterable[Record], desired: str | None = None, run_id: str | None = None
) -> dict[str, dict[str, Any]]:
    """{service id: its newest task} of the services not done yet (one call), of
    the tasks in the `desired` state if given. With `run_id`, the manager is asked
    for the tasks carrying the run's label (then kept to those services): asked by
    service ids, it looks every service up first (93 services: 28 ms of the
    manager's time per listing against 9 ms by label)."""
    ids = [r.service_id for r in records if r.service_id and not r.done]
    if not ids:
        return {}
    filters: dict[str, Any] = {"label": f"{LABEL_RUN}={run_id}"} if run_id else {"service": ids}
    if desired is not None:
        filters["desired-state"] = desired
    wanted = set(ids)
    newest: dict[str, dict[str, Any]] = {}
    for task in client.api.tasks(filters=filters):
        sid = task.get("ServiceID")
        if sid not in wanted:
            continue
        if sid not in newest or _order(task) > _order(newest[sid]):
            newest[sid] = task
    return newest


def merged(
    tasks: dict[str, dict[str, Any]], ended: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """`tasks` with the `ended` ones in: a task listed again replaces itself;
    another task replaces a service's task when it comes after it (_order): an
    old task of a restarted service does not hide its new one."""
    out = dict(tasks)
    for sid, task in ended.items():
        known = out.get(sid)
        if known is None or known.get("ID") == task.get("ID") or _order(task) > _order(known):
            out[sid] = task
    return out


def lost_nodes(client: Any) -> dict[str, str]:
    """{node id: hostname} of the nodes the manager sees down."""
    return {
        n["ID"]: n.get("Description", {}).get("Hostname", n["ID"])
        for n in client.api.nodes()
        if n.get("Status", {}).get("State") in NODE_LOST
    }


def _order(task: dict[str, Any]) -> tuple[bool, int]:
    """The task a service is about: the one meant to run (after a restart), else
    the last one updated."""
    return task.get("DesiredState") == "running", int(task["Version"]["Index"])
