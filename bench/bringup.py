"""Bring-up of the paper's testbed in containers; prints one JSON object.

The paper topology on the docker backend: 31 testbed hosts of profile `bbb`
(512 MB, half a core each) running the 102 prosumers of the synthetic paper
microgrid, plus chain ("miner"), DSO, clock, solver, recorder and Prometheus
(topologies/paper-c.yaml, lockstep). With the images already built, it runs
`testbed run` as a user does and reports:
- seconds from starting `testbed run` to all agents ready (the orchestrator's
  log line "all agents ready"), and the bring-up timeline of the run;
- peak memory of the whole testbed: the sum over its containers of what
  `docker stats` shows (usage minus inactive file cache), sampled every
  SAMPLE_SECONDS, and the sum of each container's own peak;
- how the run ended (it trades a few intervals by default; --full-day: all 96).

Goals (issue 5): under 60 s to ready; the full paper-scale day inside 24 GiB.

`--backend swarm` (issue 13): the same over a swarm, the 3-node lab of
orchestrator/swarm (made for the bench, or `--lab ID` from `testbed lab up`),
with the images in the lab's registry and on every worker before the run
(push and pull are timed apart), and the peak memory of each worker node
(bench/swarmbench.py). `--scale 10`: ten times the paper (microgrid.dataset.scale,
1,020 prosumers on 310 hosts). Goals: <= 60 s to ready at paper scale, <= 120 s
at 10x, the whole testbed within this machine's 24 GiB.

    .venv/bin/python bench/bringup.py
    .venv/bin/python bench/bringup.py --full-day
    flock /tmp/swarm-dev.lock .venv/bin/python bench/bringup.py --backend swarm [--scale 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "topologies" / "paper-c.yaml"
SAMPLE_SECONDS = 1.0
READY_LINE = "all agents ready"
MB = 2**20


def overrides(hosts: int, profile: str, first: int, last: int, scale: int = 1) -> list[str]:
    return [
        f"microgrid.dataset.scale={scale}",
        "market.clock=lockstep",
        "chain.block_time_seconds=0",
        f"market.first_interval={first}",
        f"market.last_interval={last}",
        "deployment.prosumers_per_host=null",
        f"deployment.hosts=[{{name: bbb, count: {hosts}, profile: {profile}}}]",
    ]


def memory_of(stats: dict[str, Any]) -> tuple[int, int]:
    """(usage without inactive file cache, peak usage) as `docker stats` shows them."""
    mem = stats.get("memory_stats") or {}
    usage = int(mem.get("usage") or 0)
    detail = mem.get("stats") or {}
    inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    return max(0, usage - int(inactive or 0)), int(mem.get("max_usage") or usage)


class MemorySampler:
    """Samples `docker stats` of the run's containers until stopped."""

    def __init__(self, client: Any, out: Path) -> None:
        self.client = client
        self.out = out
        self.run_id: str | None = None
        self.peak_total = 0
        self.peaks: dict[str, int] = {}
        self.roles: dict[str, str] = {}
        self.samples = 0
        self.max_containers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._pool = ThreadPoolExecutor(8)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown()

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            if self.run_id is None:
                found = sorted(self.out.glob("*/*/manifest.json"))
                if not found:
                    continue
                self.run_id = found[-1].parent.name
            self._sample()

    def _sample(self) -> None:
        containers = self.client.api.containers(
            filters={"label": f"testbed.run={self.run_id}", "status": "running"}
        )

        def one(c: dict[str, Any]) -> tuple[str, str, tuple[int, int]] | None:
            try:
                stats = self.client.api.stats(c["Id"], stream=False, one_shot=True)
            except Exception:
                return None
            labels = c.get("Labels") or {}
            return (
                labels.get("testbed.unit", c["Id"]),
                labels.get("testbed.role", "?"),
                (memory_of(stats)),
            )

        total = 0
        for item in self._pool.map(one, containers):
            if item is None:
                continue
            unit, role, (usage, peak) = item
            total += usage
            self.peaks[unit] = max(self.peaks.get(unit, 0), peak, usage)
            self.roles[unit] = role
        self.samples += 1
        self.max_containers = max(self.max_containers, len(containers))
        self.peak_total = max(self.peak_total, total)

    def report(self) -> dict[str, Any]:
        by_role: dict[str, int] = {}
        for unit, peak in self.peaks.items():
            role = self.roles.get(unit, "?")
            by_role[role] = by_role.get(role, 0) + peak
        hosts = [p for u, p in self.peaks.items() if self.roles.get(u) == "prosumer"]
        return {
            "peak_total_mb": round(self.peak_total / MB, 1),
            "sum_of_container_peaks_mb": round(sum(self.peaks.values()) / MB, 1),
            "by_role_peak_mb": {r: round(v / MB, 1) for r, v in sorted(by_role.items())},
            "max_prosumer_host_mb": round(max(hosts) / MB, 1) if hosts else None,
            "containers": self.max_containers,
            "samples": self.samples,
        }


def process_rss(summary: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS of the agent processes as the run sampled them (shared pages
    counted in every process, unlike the containers' memory accounting)."""
    procs = summary.get("processes") or {}
    hosts = [p for p in procs.values() if p.get("role") == "prosumer" and "peak_rss_mb" in p]
    return {
        "max_prosumer_host_mb": max((p["peak_rss_mb"] for p in hosts), default=None),
        "max_per_prosumer_mb": max((p["peak_rss_mb_per_prosumer"] for p in hosts), default=None),
        "sum_all_agents_mb": round(sum(p.get("peak_rss_mb", 0) for p in procs.values()), 1),
    }


def ready_at(log: Path) -> float | None:
    """Unix time of the orchestrator's "all agents ready" line."""
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if READY_LINE in line:
            stamp, millis = line[:23].split(",")
            return time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=SPEC)
    parser.add_argument("--hosts", type=int, default=None, help="testbed hosts (31 x scale)")
    parser.add_argument("--scale", type=int, default=1, help="microgrid.dataset.scale")
    parser.add_argument("--backend", choices=("docker", "swarm"), default="docker")
    parser.add_argument(
        "--lab", help="swarm: an existing lab (testbed lab up) instead of a new one"
    )
    parser.add_argument("--workers", type=int, default=2, help="swarm: workers of a new lab")
    parser.add_argument("--profile", default="bbb")
    parser.add_argument("--intervals", default="48:51", help="first:last traded interval")
    parser.add_argument("--full-day", action="store_true", help="intervals 1..96")
    args = parser.parse_args()
    first, last = (1, 96) if args.full_day else map(int, args.intervals.split(":"))
    args.hosts = args.hosts if args.hosts is not None else 31 * args.scale

    from orchestrator.backends.docker.engine import connect
    from orchestrator.images import ensure_images

    client = connect()
    t = time.monotonic()
    images = ensure_images(client, say=lambda line: print(line, file=sys.stderr))
    images_seconds = time.monotonic() - t

    with contextlib.ExitStack() as stack:
        extra: list[str] = []
        nodes: Any = None
        swarm_figures: dict[str, Any] = {}
        if args.backend == "swarm":
            from bench.swarmbench import NodeMemory, swarm_session, swarm_watch

            session = stack.enter_context(swarm_session(client, images, args.lab, args.workers))
            out, extra, swarm_figures = session.out, session.overrides, session.figures
            nodes = NodeMemory(client, session.lab).start()
        else:
            out = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bringup-")))
        planned = overrides(args.hosts, args.profile, first, last, args.scale) + extra
        sets = [a for o in planned for a in ("--set", o)]
        argv = [sys.executable, "-m", "orchestrator.cli", "run", str(args.spec), "--backend"]
        argv += [args.backend, "--out", str(out), "--json", "--quiet", *sets]
        sampler = MemorySampler(client, out).start()
        started = time.time()
        pipe = subprocess.PIPE
        proc = subprocess.Popen(argv, stdout=pipe, stderr=pipe, text=True, cwd=REPO)
        watch = swarm_watch(client, session.lab, proc.pid, sampler) if nodes is not None else None
        _, stderr = proc.communicate()
        wall = time.time() - started
        sampler.stop()
        bundles = sorted(out.glob("*/*/manifest.json"))
        bundle = bundles[-1].parent if bundles else None
        manifest = json.loads((bundle / "manifest.json").read_text()) if bundle else {}
        summary = json.loads((bundle / "summary.json").read_text()) if bundle else {}
        ready = ready_at(bundle / "logs" / "orchestrator.log") if bundle else None
        if nodes is not None:
            nodes.stop()
            swarm_figures["memory_of_workers"] = nodes.report()
        if watch is not None:
            swarm_figures.update(watch.report(started, ready, bundle))
    run_info: dict[str, Any] = {
        "exit_code": proc.returncode,
        "status": summary.get("status"),
        "wall_seconds": round(wall, 1),
        "energy_traded_kwh": summary.get("total_energy_traded_kwh"),
        "offers": summary.get("offers"),
    }
    if proc.returncode != 0:
        run_info["stderr"] = stderr[-2000:]
    result = {
        "topology": {
            "spec": str(args.spec.relative_to(REPO)),
            "backend": args.backend,
            "scale": args.scale,
            "hosts": args.hosts,
            "profile": args.profile,
            "prosumers": (manifest.get("plan") or {}).get("prosumers"),
            "agents": len((manifest.get("plan") or {}).get("agents") or {}),
            "intervals": [first, last],
        },
        "images": {**images.as_dict(), "check_seconds": round(images_seconds, 2)},
        "seconds_to_all_agents_ready": round(ready - started, 2) if ready else None,
        "timeline": manifest.get("timeline"),
        "memory": sampler.report(),
        "rss": process_rss(summary),
        "run": run_info,
    }
    if swarm_figures:
        result["swarm"] = swarm_figures
    print(json.dumps(result, indent=2))
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
