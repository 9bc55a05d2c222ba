"""What one prosumer host costs to start: CPU seconds and wall seconds from exec to
ready and through its first tick, and its imports; prints one JSON object.

A real chain (anvil, the compiled contract deployed for the run) and a real DSO
process serve a prosumer host of topologies/paper-c.yaml as the orchestrator plans
it (`microgrid.dataset.scale` 1: 102 prosumers; 10: 1,020), its config rendered the
way `orchestrator.render` renders it (bench/hostbed.py). The host (`python -m agents
prosumer --config ...`, the command every backend runs) is started `--runs` times, one
after the other; each start is timed from exec to its ready log line (it marks itself
ready and logs "N prosumers, M offers" once it reached the chain and the DSO), and
its CPU seconds (utime + stime from /proc) are read at that moment. Then it is
stopped (SIGTERM). Figures are medians over the runs; CPU seconds depend little on
the machine's load (the 1-minute load average is printed beside the wall times).
Host processes started here read the project's bytecode from a cache of their own
(compiled first, as the agent image has it: bench/hostbed.py PYCACHE).

- `process`: exec to ready.
- `first_tick`: exec through the host's answer to the clock's first tick (its offers
  withdrawn from the DSO, signed, posted and mined: `posted` back to the clock), what
  a host costs before the run's first interval is done: `ready_cpu_s` at the ready
  line, `cpu_s` at its `posted`, `tick_cpu_s` the difference. Each run has a fresh
  chain and DSO (a host's withdrawals change the DSO's accounts).
- `import`: a Python that only imports what a host imports (`agents.__main__` and
  `agents.prosumer`): its CPU seconds from exec to exit, and the sum of
  `-X importtime`'s top-level entries (microseconds of imports alone).
- `first_tick_import`: the CPU seconds of importing, after that, what a host first
  needs when the clock's first tick comes (ABI codec, signing).
- `scrape`: what one read of a ready host's /metrics costs (Prometheus' scrapes, down to
  every 0.5 s in short runs, and the orchestrator's readiness polls): the host's and
  this process's CPU milliseconds per read (`orchestrator.progress.scrape`, as the
  readiness wait reads it), and the body's bytes.
- `idle`: what a ready host costs while it waits for the clock (the clock's endpoints
  bound, nothing sent): CPU milliseconds per second over IDLE_SECONDS, from the
  threads' nanosecond run times (/proc/<pid>/task/*/schedstat), and its wake-ups
  (context switches) per second.
- `--image TAG` (or `--image current`, the agent image of this tree, built if
  missing): `container` and `container_first_tick`, the same host in the agent image
  on the local engine (`docker run --network host`, the image's entrypoint), its
  Python's CPU from /proc through the container's pid; wall from `docker run` to the
  ready line in `docker logs -f`; `import` also for the image's Python.
- `--profile FILE`: one more start through the first tick under cProfile (pstats in
  FILE; its top entries by cumulative time go to stderr).

    .venv/bin/python bench/hoststart.py                # paper and 10x, 9 starts each
    .venv/bin/python bench/hoststart.py --scale 10 --runs 15
    .venv/bin/python bench/hoststart.py --image current
"""

from __future__ import annotations

import argparse
import json
import pstats
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.hostbed import (
    Clock,
    Host,
    Testbed,
    host_container,
    host_env,
    host_process,
    load,
    median,
    precompile,
)

SCRAPES = 200  # reads of a ready host's /metrics (scrape cost)
IDLE_SECONDS = 20.0  # a ready host left waiting (idle cost)
PROFILE_TOP = 40  # entries of --profile's report
HOST_IMPORTS = "import agents.__main__, agents.prosumer"
# what the first tick needs beyond the start: the call encoder, signing, log decoding
FIRST_TICK_IMPORTS = (
    "import agents.common.abi, agents.chain.encoding, agents.chain.errors, agents.common.rpc"
)


def host_start(host: Host) -> dict[str, float]:
    """One host from exec to ready: CPU and wall seconds."""
    wall = host.await_ready()
    return {"cpu_s": host.cpu(), "wall_s": wall}


def first_tick(bed: Testbed, label: str, image: str | None = None) -> dict[str, float]:
    """One host from exec through its answer to the first tick, on a fresh chain and DSO."""
    bed.rewire()
    with bed.running():
        clock = Clock(bed.endpoints)
        config = bed.host_config(label)
        started = host_container(config, image) if image else host_process(config)
        try:
            with started as host:
                ready_wall = host.await_ready()
                ready = host.cpu()
                offers = clock.tick(bed.plan.market.first_clock_interval)
                wall, cpu = time.monotonic() - host.began, host.cpu()
        finally:
            clock.close()
    return {
        "ready_cpu_s": ready,
        "cpu_s": cpu,
        "wall_s": wall,
        "ready_wall_s": ready_wall,
        "offers": offers,
    }


def profile(bed: Testbed, path: Path) -> None:
    """A start through the first tick under cProfile; its top entries to stderr."""
    bed.rewire()
    with bed.running():
        clock = Clock(bed.endpoints)
        python = [sys.executable, "-m", "cProfile", "-o", str(path)]
        try:
            with host_process(bed.host_config("profiled"), python) as host:
                host.await_ready()
                clock.tick(bed.plan.market.first_clock_interval)
        finally:
            clock.close()
    stats = pstats.Stats(str(path), stream=sys.stderr)
    stats.sort_stats("cumulative").print_stats(PROFILE_TOP)
    stats.sort_stats("tottime").print_stats(PROFILE_TOP)


def scrape_cost(bed: Testbed, reads: int = SCRAPES) -> dict[str, float]:
    """CPU milliseconds per /metrics read of a ready host: its own and the reader's."""
    from orchestrator.progress import scrape

    path = bed.host_config("scraped")
    url = f"http://127.0.0.1:{json.loads(path.read_text())['metrics_port']}/metrics"
    with host_process(path) as host:
        host.await_ready()
        cpu, reader = host.cpu(), time.process_time()
        for _ in range(reads):
            scrape(url)
        cpu, reader = host.cpu() - cpu, time.process_time() - reader
        with urllib.request.urlopen(url, timeout=30) as response:
            size = len(response.read())
    per = 1000 / reads
    host_ms, reader_ms = round(cpu * per, 2), round(reader * per, 2)
    return {"reads": reads, "host_ms": host_ms, "reader_ms": reader_ms, "bytes": size}


def run_time(pid: int) -> tuple[float, int]:
    """Seconds on CPU (ns precision) and context switches, over the live threads of `pid`."""
    seconds, switches = 0.0, 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            seconds += int((task / "schedstat").read_text().split()[0]) / 1e9
            status = (task / "status").read_text()
        except (OSError, ValueError, IndexError):
            continue
        switches += sum(
            int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line
        )
    return seconds, switches


def idle_cost(bed: Testbed, seconds: float = IDLE_SECONDS) -> dict[str, float]:
    """CPU milliseconds and wake-ups per second of a ready host waiting for the clock."""
    clock = Clock(bed.endpoints)  # bound, silent: the host's sockets connect
    try:
        with host_process(bed.host_config("idle")) as host:
            host.await_ready()
            time.sleep(1.0)  # its last start-up steps after the ready line
            cpu0, switches0 = run_time(host.pid)
            time.sleep(seconds)
            cpu1, switches1 = run_time(host.pid)
    finally:
        clock.close()
    return {
        "seconds": seconds,
        "cpu_ms_per_s": round((cpu1 - cpu0) / seconds * 1000, 3),
        "wakeups_per_s": round((switches1 - switches0) / seconds, 1),
    }


def import_cost(
    runs: int, python: list[str], env: dict[str, str] | None = None
) -> dict[str, float]:
    """CPU seconds of a Python that imports what a host imports (exec to its end), the
    first tick's further imports, and the sum of -X importtime's top-level entries
    (measured apart: -X importtime itself costs CPU)."""
    cpu, later, imports = [], [], []
    probe = (
        "import os\n"
        f"{HOST_IMPORTS}\n"
        "t = os.times(); a = t.user + t.system\n"
        f"{FIRST_TICK_IMPORTS}\n"
        "t = os.times(); print(a, t.user + t.system - a)\n"
    )
    top = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| \S")
    for _ in range(runs):
        out = subprocess.run(
            [*python, "-c", probe], capture_output=True, text=True, check=True, env=env
        )
        before, after = (float(x) for x in out.stdout.split())
        cpu.append(before)
        later.append(after)
        timed = subprocess.run(
            [*python, "-X", "importtime", "-c", HOST_IMPORTS],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        imports.append(sum(int(m[1]) for m in top.finditer(timed.stderr)) / 1e6)
    return {
        "import_cpu_s": median(cpu),
        "first_tick_import_cpu_s": median(later),
        "importtime_s": median(imports),
    }


def measure(scale: int, runs: int, image: str | None, prof: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hoststart-") as tmp:
        bed = Testbed(scale, Path(tmp))
        host = bed.host
        out: dict[str, Any] = {
            "scale": scale,
            "hosts": len(bed.plan.by_role("prosumer")),
            "host": host.name,
            "host_prosumers": host.prosumer_count,
            "host_offers": sum(len(p.offers) for p in host.prosumers),
        }
        with bed.running():
            out["host_config_bytes"] = bed.host_config("config").stat().st_size
            starts = []
            for i in range(runs):
                with host_process(bed.host_config(f"start{i}")) as started:
                    starts.append(host_start(started))
            out["process"] = summary(starts)
            out["scrape"] = scrape_cost(bed)
            out["idle"] = idle_cost(bed)
            if image:
                starts = []
                for i in range(runs):
                    with host_container(bed.host_config(f"docker{i}"), image) as started:
                        starts.append(host_start(started))
                out["container"] = {"image": image, **summary(starts)}
        out["first_tick"] = tick_summary([first_tick(bed, f"tick{i}") for i in range(runs)])
        if image:
            ticks = [first_tick(bed, f"dtick{i}", image) for i in range(runs)]
            out["container_first_tick"] = tick_summary(ticks)
        if prof is not None:
            profile(bed, prof)
    return out


def summary(starts: list[dict[str, float]]) -> dict[str, Any]:
    return {
        "runs": len(starts),
        "cpu_s": median([s["cpu_s"] for s in starts]),
        "cpu_s_min": round(min(s["cpu_s"] for s in starts), 3),
        "wall_s": median([s["wall_s"] for s in starts]),
        "load": load(),
    }


def tick_summary(ticks: list[dict[str, float]]) -> dict[str, Any]:
    return {
        **summary(ticks),
        "ready_cpu_s": median([t["ready_cpu_s"] for t in ticks]),
        "tick_cpu_s": median([t["cpu_s"] - t["ready_cpu_s"] for t in ticks]),
        "ready_wall_s": median([t["ready_wall_s"] for t in ticks]),
        "offers": median([t["offers"] for t in ticks]),
    }


def current_image() -> str:
    import docker

    from orchestrator.images.build import ensure_images

    say = lambda line: print(line, file=sys.stderr)  # noqa: E731 - stdout is the JSON
    return ensure_images(docker.from_env(), kinds=("agent",), say=say).agent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--runs", type=int, default=9, help="starts per figure (median)")
    parser.add_argument("--image", help="agent image tag, or 'current' (this tree's)")
    parser.add_argument("--profile", type=Path, help="pstats file of a profiled start")
    args = parser.parse_args(argv)
    image = current_image() if args.image == "current" else args.image
    precompile()
    result: dict[str, Any] = {
        "python": sys.version.split()[0],
        "load_before": load(),
        "import": import_cost(args.runs, [sys.executable], host_env()),
    }
    if image:
        python = ["docker", "run", "--rm", "--entrypoint", "python", image]
        result["image_import"] = import_cost(args.runs, python)
    result["starts"] = [measure(s, args.runs, image, args.profile) for s in args.scale]
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
