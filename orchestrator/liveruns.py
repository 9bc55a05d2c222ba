"""Which runs are alive: read from what the backends record per run
(`<state root>/<backend>/<run id>/run.json`) and from the bundles' manifests
(the orchestrator process that writes them). `testbed ps`, `logs -f` and
`results prune` ask here; nothing is matched by process name."""

from __future__ import annotations

import platform
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil
import yaml

from orchestrator.backends.base import backend_state_root
from orchestrator.results.bundle import EVENTS_DIR, read_json
from orchestrator.spec.backends import NAMES as BACKEND_NAMES

CREATE_TIME_TOLERANCE = 0.01  # seconds: psutil's create_time is rounded per platform
FINALIZATIONS = "finalizations.csv"


def process_alive(pid: int | None, create_time: float | None, host: str | None = None) -> bool:
    """True when `pid` is still the process recorded (not a reused pid, not a
    zombie). A process of another machine cannot be judged: counted alive."""
    if host and host not in {socket.gethostname(), platform.node()}:
        return True
    if pid is None or pid <= 0:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(process.create_time() - create_time) < (
            CREATE_TIME_TOLERANCE
        )
    except psutil.Error:
        return False


@dataclass(frozen=True, slots=True)
class LiveRun:
    run_id: str
    backend: str
    bundle: Path | None
    spec: str | None
    started: float | None
    pid: int | None
    alive: bool
    finalized: int | None  # intervals finalized so far
    intervals: int | None  # intervals of the run

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "backend": self.backend,
            "spec": self.spec,
            "bundle": str(self.bundle) if self.bundle else None,
            "started": self.started,
            "pid": self.pid,
            "alive": self.alive,
            "finalized": self.finalized,
            "intervals": self.intervals,
        }


def _orchestrator_of(state: dict[str, Any]) -> tuple[str | None, int | None, float | None]:
    """(host, pid, create time) from a backend's run.json: local and ssh record
    the pid and start time, docker a `host:pid:create time` label."""
    if "orchestrator_pid" in state:
        created = state.get("orchestrator_create_time")
        return None, int(state["orchestrator_pid"]), float(created) if created else None
    label = state.get("orchestrator")
    if isinstance(label, str) and label.count(":") >= 2:
        host, pid, created = label.rsplit(":", 2)
        try:
            return host, int(pid), float(created)
        except ValueError:
            return host, None, None
    return None, None, None


def recorded_runs(include_dead: bool = False) -> list[LiveRun]:
    """Every run some backend has recorded state for (oldest first); those whose
    orchestrator is gone (leftovers for `testbed clean`) only if `include_dead`."""
    by_id: dict[str, LiveRun] = {}
    for backend in BACKEND_NAMES:
        base = backend_state_root(backend)
        for record in sorted(base.glob("*/run.json")) if base.is_dir() else ():
            state = read_json(record)
            if state is not None:
                run = _live_run(backend, record.parent.name, state)
                by_id[run.run_id] = _merged(by_id.get(run.run_id), run)
    runs = [r for r in by_id.values() if r.alive or include_dead]
    return sorted(runs, key=lambda r: (r.started or 0.0, r.run_id))


def _merged(seen: LiveRun | None, run: LiveRun) -> LiveRun:
    """The ssh backend runs its orchestrator-side processes through a local
    backend: one run, two records. It is the ssh run, with the local record's
    bundle, start time and progress."""
    if seen is None:
        return run
    main, other = (run, seen) if seen.backend == "local" else (seen, run)
    return replace(
        main,
        bundle=main.bundle or other.bundle,
        spec=main.spec or other.spec,
        started=main.started or other.started,
        pid=main.pid if main.pid is not None else other.pid,
        alive=main.alive or other.alive,
        finalized=main.finalized if main.finalized is not None else other.finalized,
        intervals=main.intervals or other.intervals,
    )


def _live_run(backend: str, run_id: str, state: dict[str, Any]) -> LiveRun:
    host, pid, created = _orchestrator_of(state)
    bundle = Path(state["bundle"]) if isinstance(state.get("bundle"), str) else None
    manifest = read_json(bundle / "manifest.json") if bundle else None
    manifest = manifest or {}
    started = state.get("started") or manifest.get("started")
    finalized, intervals = progress(bundle) if bundle else (None, None)
    return LiveRun(
        run_id=run_id,
        backend=backend,
        bundle=bundle,
        spec=manifest.get("spec_name") or (bundle.parent.name if bundle else None),
        started=float(started) if started else None,
        pid=pid,
        alive=process_alive(pid, created, host),
        finalized=finalized,
        intervals=intervals,
    )


def progress(bundle: Path) -> tuple[int | None, int | None]:
    """(intervals finalized, intervals of the run) from the bundle's event log
    and resolved spec; None where not known (yet)."""
    intervals = None
    try:
        spec = yaml.safe_load((bundle / "spec.yaml").read_text())
        market = spec["market"]
        intervals = int(market["last_interval"]) - int(market["first_interval"]) + 1
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        pass
    try:
        with (bundle / EVENTS_DIR / FINALIZATIONS).open() as rows:
            finalized: int | None = max(sum(1 for line in rows if line.strip()) - 1, 0)
    except OSError:  # the recorder has written none yet (or there is no bundle)
        finalized = 0 if (bundle / EVENTS_DIR).is_dir() else None
    return finalized, intervals


def bundle_running(bundle: Path) -> bool:
    """True while a run writes into `bundle`: no outcome in its manifest yet and
    its orchestrator alive (as the manifest or a backend's run state records it)."""
    manifest = read_json(bundle / "manifest.json")
    if manifest is not None and manifest.get("outcome"):
        return False
    me = (manifest or {}).get("orchestrator") or {}
    if me and process_alive(me.get("pid"), me.get("create_time"), me.get("host")):
        return True
    resolved = bundle.resolve()
    return any(r.bundle is not None and r.bundle.resolve() == resolved for r in recorded_runs())
