"""Which ended task never ran (a new task is safe) and which ran and ended (a
crash ends the run): orchestrator/backends/swarm/unitstatus.py's start_failure,
on tasks recorded from the lab's engine (tests/unit/data/swarm-tasks.json).

How each was made, a service of restart condition none pinned to a worker:
- bind-source-missing: a bind mount whose source the node lacks (rejected
  while preparing, no container);
- image-missing: an image the registry does not have (rejected while preparing);
- mount-fails-at-start: a file bind-mounted onto a directory of the image: the
  container is created, runc fails to start it (failed while starting: it has
  a container id and exit code 127, yet never ran);
- exit-3, exit-0: `sh -c 'exit 3'`, `sh -c 'echo ok'`;
- command-not-found-in-entrypoint: a program the image lacks, which the image's
  entrypoint script runs (the container ran: exit 127 from the shell);
- running, then killed: `sleep 600`, then `docker kill` of its container on
  the node (exit 137);
- bind-source-missing-then-created-after-force-update: the source made on the
  node, the service's ForceUpdate raised: a new task, which ran.
A service scaled to 0 (the backend's kill) leaves no task to read: the
backend sees its task gone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.swarm.unitstatus import start_failure

TASKS: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "swarm-tasks.json").read_text()
)["tasks"]
NEVER_RAN = {
    "bind-source-missing": "bind source path does not exist",
    "image-missing": "No such image",
    "mount-fails-at-start": "starting container failed",
}


@pytest.mark.parametrize("case", sorted(NEVER_RAN))
def test_a_task_that_never_ran_is_a_start_failure_with_the_engines_reason(case: str) -> None:
    why = start_failure(TASKS[case])
    assert why == TASKS[case]["Status"]["Err"]
    assert NEVER_RAN[case] in why


@pytest.mark.parametrize("case", sorted(set(TASKS) - set(NEVER_RAN)))
def test_a_task_that_ran_or_runs_is_no_start_failure(case: str) -> None:
    assert start_failure(TASKS[case]) is None


def test_exit_codes_do_not_tell_a_start_failure_from_a_crash() -> None:
    """Why the decision reads the step the task failed at, not its exit code."""
    code = {case: TASKS[case]["Status"]["ContainerStatus"]["ExitCode"] for case in TASKS}
    assert code["mount-fails-at-start"] == code["command-not-found-in-entrypoint"] == 127
    assert code["bind-source-missing"] == code["exit-0"] == 0
    assert TASKS["mount-fails-at-start"]["Status"]["ContainerStatus"]["ContainerID"]


def test_a_start_failure_without_a_message_from_the_engine_still_says_where() -> None:
    task = {"Status": {"State": "failed", "Message": "starting"}}
    assert start_failure(task) == "task failed while starting"
