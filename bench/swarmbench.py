"""bench/bringup.py --backend swarm: the swarm lab around the run, and memory per node.

`swarm_session` gives the run a lab (an existing one, `--lab ID` from `testbed lab
up`, or one made for the bench and removed after), the testbed's images in the
lab's registry and on every worker (push and pull timed apart from the run),
and an output folder inside the lab's shared folder (same path on every node).

`NodeMemory` samples each worker's memory: its node container (its dockerd)
plus the cgroup subtree its dockerd puts the node's containers under
(/sys/fs/cgroup/memory/<node>), usage minus inactive file cache as `docker
stats` counts it. The manager's share is the run's containers on this engine
(bringup.MemorySampler).
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.backends.base import state_root
from orchestrator.images import ImageSet
from orchestrator.swarm import Lab

MEMORY = Path("/sys/fs/cgroup/memory")
MB = 2**20


@dataclass
class SwarmSession:
    lab: Lab
    out: Path
    overrides: list[str]
    figures: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def swarm_session(
    client: Any, images: ImageSet, lab_id: str | None, workers: int
) -> Iterator[SwarmSession]:
    figures: dict[str, Any] = {}
    made = lab_id is None
    shared = Path(tempfile.mkdtemp(prefix="bringup-swarm-"))
    started = time.monotonic()
    if lab_id is None:
        lab = Lab.up(client, state_root(), workers=workers, shared=[shared])
        figures["lab_up_seconds"] = round(time.monotonic() - started, 2)
    else:
        lab = Lab.load(state_root(), lab_id)
        if not lab.shared:
            raise SystemExit(f"lab {lab_id} shares no folder with its nodes (--shared)")
        shared = Path(tempfile.mkdtemp(prefix="bringup-swarm-", dir=lab.shared[0]))
    try:
        assert lab.registry is not None, "the lab needs a registry (testbed lab up)"
        kinds = {kind: images.of(kind) for kind in ("agent", "chain", "prometheus")}
        mark = time.monotonic()
        refs = lab.registry.push_images(client, kinds)
        figures["push_seconds"] = round(time.monotonic() - mark, 2)
        mark = time.monotonic()
        with ThreadPoolExecutor(len(lab.workers)) as pool:
            pulls = list(pool.map(lambda w: _pull(client, lab, w, refs["agent"]), lab.workers))
        figures["pull_agent_every_node_seconds"] = round(time.monotonic() - mark, 2)
        figures["pulled"] = pulls
        overrides = [
            "deployment.backend=swarm",
            f"deployment.swarm.registry={lab.registry.address}",
            # the hosts on this lab's workers, not on another lab's in the same swarm
            f"deployment.swarm.prosumers=[node.labels.testbed.lab=={lab.id}]",
        ]
        figures["lab"] = {"id": lab.id, "workers": lab.workers, "made_for_the_bench": made}
        yield SwarmSession(lab, shared, overrides, figures)
    finally:
        if made:
            lab.down(client, strict=False)
        with contextlib.suppress(OSError):
            import shutil

            shutil.rmtree(shared)


def _pull(client: Any, lab: Lab, worker: str, ref: str) -> str:
    code, out = lab.node_docker(client, worker, "pull", ref)
    assert code == 0, f"{worker}: docker pull {ref}: {out}"
    return worker


def _cgroup_memory(folder: Path) -> int:
    """usage minus inactive file cache of a memory cgroup (0 if it is gone)."""
    try:
        usage = int((folder / "memory.usage_in_bytes").read_text())
        stat = dict(line.split() for line in (folder / "memory.stat").read_text().splitlines())
    except (OSError, ValueError):
        return 0
    return max(0, usage - int(stat.get("total_inactive_file", 0)))


class NodeMemory:
    """Samples every worker's memory every `period` seconds until stopped."""

    def __init__(self, client: Any, lab: Lab, period: float = 1.0) -> None:
        self.period = period
        self.folders: dict[str, list[Path]] = {}
        for worker in lab.workers:
            container = client.containers.get(worker)
            self.folders[worker] = [MEMORY / "docker" / str(container.id), MEMORY / worker]
        self.peaks = dict.fromkeys(self.folders, 0)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> NodeMemory:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            for worker, folders in self.folders.items():
                used = sum(_cgroup_memory(f) for f in folders)
                self.peaks[worker] = max(self.peaks[worker], used)
            self.samples += 1

    def report(self) -> dict[str, Any]:
        return {
            "peak_mb_by_worker": {w: round(p / MB, 1) for w, p in self.peaks.items()},
            "samples": self.samples,
        }


class SwarmWatch:
    """CPU seconds by process class and the tasks' timeline of one run (swarmcpu.py)."""

    def __init__(self, client: Any, lab: Lab, run_pid: int, memory: Any) -> None:
        from bench.swarmcpu import CpuByClass, Timeline

        self.memory = memory  # bringup.MemorySampler: it finds the run id
        self.timeline = Timeline(client).start()
        self.cpu = CpuByClass(client, lab.workers, lambda: run_pid).start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._find_run, daemon=True)
        self._thread.start()

    def _find_run(self) -> None:
        while self.memory.run_id is None and not self._stop.wait(0.5):
            pass
        self.timeline.run_id = self.memory.run_id

    def report(self, started: float, ready: float | None, bundle: Path | None) -> dict[str, Any]:
        self._stop.set()
        self.cpu.stop()
        self.timeline.stop()
        from bench.swarmcpu import POSTED_LOG, ready_times

        logs = bundle / "logs" if bundle else None
        hosts_ready = ready_times(logs) if logs else {}
        posted = ready_times(logs, POSTED_LOG) if logs else {}
        return {
            "per_host": self.cpu.hosts.report(hosts_ready, posted, ready),
            "cpu_seconds_to_ready": self.cpu.report(started, ready) if ready else None,
            "cpu_seconds_whole_run": self.cpu.report(),
            "tasks_timeline": self.timeline.report(started, logs),
        }


def swarm_watch(client: Any, lab: Lab, run_pid: int, memory: Any) -> SwarmWatch:
    return SwarmWatch(client, lab, run_pid, memory)
