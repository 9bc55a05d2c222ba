"""The backend interface: where and how a planned run's processes run.

Every backend (local processes, docker containers, ssh boards) implements the
same five steps (ARCHITECTURE.md "Backends"):

- `prepare(plan, bundle)`: reserve addresses and directories, record the run's
  state (labelled with the run id) and return a `Placement` (orchestrator/
  placement.py: the backend decides `Addresses`, `placement()` turns them into
  endpoints and the bundle's files): where each agent listens, where its config
  and output go, as seen by the agent and by the orchestrator.
- `start(unit)`: start one process (the chain or an agent).
- `status()`: what is running, what exited and how.
- `stop(names, timeout)`: SIGTERM (or equivalent), then kill after `timeout`.
- `cleanup()`: remove what `prepare` made (never the results bundle).

`clean_leftovers()` finds resources of runs whose orchestrator died (state
labelled with the run id: pidfiles, container labels) and removes exactly those.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from orchestrator.errors import TestbedError
from orchestrator.placement import AgentPlacement as AgentPlacement  # part of the interface
from orchestrator.placement import Placement
from orchestrator.plan import Plan
from orchestrator.spec import Spec
from orchestrator.spec.backends import backend_entry

UnitState = Literal["running", "exited", "missing"]

# `stop` waits this long after SIGTERM before it kills (module level: tests shorten it).
STOP_TIMEOUT_SECONDS = 10.0


class BackendError(TestbedError):
    """A backend could not prepare, start or stop something."""

    exit_code = 1


def state_root() -> Path:
    """Where backends keep per-run state (pidfiles, labels): $TESTBED_STATE_DIR,
    else $XDG_STATE_HOME/testbed, else ~/.local/state/testbed."""
    env = os.environ.get("TESTBED_STATE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "testbed"


def backend_state_root(name: str, root: Path | None = None) -> Path:
    """Where backend `name` keeps its runs' state (one folder per run id)."""
    return (root if root is not None else state_root()) / backend_entry(name).state_dir


def _quiet(_message: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class Unit:
    """One process to start. `argv[0] == "python"` means the backend's agent
    interpreter (the local backend uses the orchestrator's own)."""

    name: str
    role: str  # "chain" or an agent role
    argv: tuple[str, ...]
    log_file: Path
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UnitStatus:
    name: str
    state: UnitState
    pid: int | None = None
    returncode: int | None = None
    rss_bytes: int | None = None
    # Exited because the cluster node it ran on was lost (swarm: the node is
    # Down or drained): that node's name, so the run names node and units.
    lost_node: str | None = None
    # Exited without an exit code: the backend's word on why (swarm: "task failed
    # to start 2 times, last: <engine's reason>"), so the run's message says it.
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class PrometheusSite:
    """Where a run's Prometheus unit listens, as the orchestrator reaches it,
    and the folder it keeps its TSDB in (the orchestrator reads its snapshot there)."""

    host: str
    port: int
    tsdb: Path


@dataclass(frozen=True, slots=True)
class Leftover:
    """Something a dead run left behind, as `clean_leftovers` reports it."""

    run_id: str
    what: str  # e.g. "process 1234 (dso)"
    action: str  # "killed", "already gone", "removed state"


class Backend(ABC):
    """One run on one backend. Not reusable across runs. `name` is its registry
    entry's (orchestrator/spec/backends.py: fault actions, state dir, ...)."""

    name: str = "base"

    def __init__(self, run_id: str, root: Path | None = None) -> None:
        self.run_id = run_id
        self.root = root if root is not None else state_root()
        self.state_dir = backend_state_root(self.name, self.root) / run_id
        # Progress lines for the user (e.g. image builds); the run sets it.
        self.announce: Callable[[str], None] = _quiet

    @classmethod
    def create(cls, run_id: str, spec: Spec) -> Backend:
        """The backend of one run of `spec` (ssh: connects and checks its hosts)."""
        del spec  # most backends need nothing from the spec beyond the plan
        return cls(run_id)

    @abstractmethod
    def prepare(self, plan: Plan, bundle: Path) -> Placement: ...

    @abstractmethod
    def start(self, unit: Unit) -> None: ...

    @abstractmethod
    def status(self) -> dict[str, UnitStatus]: ...

    @abstractmethod
    def stop(
        self, names: Sequence[str], timeout: float = STOP_TIMEOUT_SECONDS
    ) -> dict[str, int | None]:
        """Stop the named units together; returns each one's exit code
        (None when it had to be killed or could not be found)."""

    @abstractmethod
    def cleanup(self) -> None: ...

    @classmethod
    @abstractmethod
    def clean_leftovers(cls, root: Path | None = None) -> list[Leftover]: ...

    def orchestrator_host(self) -> str:
        """The address at which units reach services of the orchestrator itself
        (e.g. its metrics exporter); the local backend's loopback by default."""
        return "127.0.0.1"

    def prometheus_site(self, bundle: Path) -> PrometheusSite | None:
        """Where the run's Prometheus listens and keeps its data, if the backend
        decides (swarm: on the manager node, its data in the shared bundle);
        None: a free port on this machine's loopback, the data in the run state."""
        del bundle
        return None

    def running(self) -> list[str]:
        return [n for n, s in self.status().items() if s.state == "running"]

    # -- faults (orchestrator/faults/): what a backend cannot do, it refuses ------
    # Its registry entry lists the actions it implements; the spec check refuses
    # the others before anything starts.
    def _unsupported(self, action: str) -> BackendError:
        return BackendError(f"fault action {action} is not supported by the {self.name} backend")

    def kill(self, name: str) -> None:
        """Kill unit `name` at once (SIGKILL); the run does not count it as a crash."""
        raise self._unsupported("kill")

    def restart(self, name: str) -> None:
        """Start unit `name` again as it was first started (killing it first if it runs)."""
        raise self._unsupported("restart")

    def pause(self, name: str) -> None:
        """Freeze unit `name` (SIGSTOP on its process group, or the engine's pause)."""
        raise self._unsupported("pause")

    def resume(self, name: str) -> None:
        raise self._unsupported("resume")

    def partition(self, name: str, cut: bool) -> None:
        """Cut unit `name` off the run's network (cut=True) or reconnect it."""
        raise self._unsupported("partition")

    def netem(
        self, name: str, latency_ms: float = 0, jitter_ms: float = 0, loss_percent: float = 0
    ) -> str | None:
        """Emulate this link on unit `name`'s egress from now on (all zero: none);
        returns how (e.g. "kernel" or "userspace"), for the fault log."""
        raise self._unsupported("netem")

    def drain_node(self, node: str) -> tuple[str, ...]:
        """Drain cluster node `node` (its tasks stop, nothing more is placed
        there); returns the run's units that ran on it, lost to the run."""
        raise self._unsupported("drain")

    def stop_node(self, node: str) -> tuple[str, ...]:
        """Stop the engine of cluster node `node` (the lab: `docker stop` of the
        node's container); returns the run's units that ran on it, lost to the run."""
        raise self._unsupported("stop")

    def enable_faults(self, netem_units: Sequence[str]) -> None:
        """Called before `prepare`: units whose link a fault will change (docker
        grants them CAP_NET_ADMIN)."""
        del netem_units  # other backends need no preparation


def settle_starts(
    records: Mapping[str, Any], names: Sequence[str] | None = None, *, raise_errors: bool = True
) -> None:
    """Wait for the queued starts (`record.future`) of `names` (default: all);
    the first failure is raised after all have settled (docker, swarm)."""
    errors: list[BaseException] = []
    for name, record in records.items():
        if (names is None or name in names) and record.future is not None:
            try:
                record.future.result()
            except BaseException as exc:
                errors.append(exc)
            record.future = None
    if errors and raise_errors:
        raise errors[0]
