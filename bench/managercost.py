"""The manager's dockerd CPU by caller while a swarm run's hosts come up; prints JSON.

A 10x bring-up cost the manager's engine 23.6 CPU-s (issue 13). Its callers during
a bring-up: the backend's task listing (swarm/tasks.py Listing, at the readiness
wait's pace), one log stream per service (swarm/logs.py), Prometheus'
dockerswarm_sd refresh (observability/swarmsd.py: per refresh it lists the run's
tasks, every service, the nodes and the networks). This bench makes N services
on a lab's workers (the agent image, labelled like a run's hosts, each printing a
host's start-up lines and then a line every few seconds), waits until they run,
then measures this machine's dockerd (and containerd) CPU from /proc for
`--seconds` per caller, one caller at a time, with an idle phase first:

    flock /tmp/swarm-dev.lock .venv/bin/python bench/managercost.py --lab b1 --services 93

Figures: CPU-s per phase, per second, and per call; `extrapolated_to_225s` scales
each rate to a 10x bring-up's 225 s (at N services: listings and SD scale with N).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import psutil

from bench.cpu import proc_cpu
from bench.swarmcpu import cpuacct_of

REPO = Path(__file__).resolve().parent.parent
HOST_LINES = 12  # a prosumer host's start-up lines, then one every LINE_SECONDS
LINE_SECONDS = 5


def manager_engine() -> list[int]:
    """This machine's dockerd and containerd: in this process's pid namespace (a lab
    node's, or any other container's, run in their own) and not in a node's cgroup."""
    ours = os.readlink("/proc/self/ns/pid")
    pids = []
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] in ("dockerd", "containerd"):
            try:
                same = os.readlink(f"/proc/{proc.pid}/ns/pid") == ours
            except OSError:
                continue
            if same and not cpuacct_of(proc.pid).startswith(("/testbed-lab", "/docker")):
                pids.append(proc.pid)
    return pids


def engine_cpu(pids: list[int]) -> float:
    return sum((proc_cpu(p) or (0.0, 0))[0] for p in pids)


@contextmanager
def measured(name: str, pids: list[int], out: dict[str, Any]) -> Iterator[dict[str, Any]]:
    figures: dict[str, Any] = {}
    cpu, wall = engine_cpu(pids), time.monotonic()
    yield figures
    spent, seconds = engine_cpu(pids) - cpu, time.monotonic() - wall
    figures.update(cpu_seconds=round(spent, 2), wall_seconds=round(seconds, 1))
    figures["cpu_per_second"] = round(spent / seconds, 4)
    if figures.get("calls"):
        figures["cpu_ms_per_call"] = round(1000 * spent / figures["calls"], 2)
    out[name] = figures
    print(name, figures, file=sys.stderr, flush=True)


def repeat(seconds: float, period: float, call: Callable[[], object]) -> int:
    calls, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        mark = time.monotonic()
        call()
        calls += 1
        time.sleep(max(0.0, period - (time.monotonic() - mark)))
    return calls


SCRIPT = f"""\
import sys, time
for i in range({HOST_LINES}):
    print(f'host start-up line {{i}}: importing, connecting, reading the trace', flush=True)
    print(f'stderr line {{i}}', file=sys.stderr, flush=True)
while True:
    time.sleep({LINE_SECONDS})
    print('host: interval done', flush=True)
"""


def make_services(client: Any, lab: Any, image: str, count: int, run: str) -> list[str]:
    """`count` services on the lab's workers, labelled like a run's hosts."""
    from orchestrator.backends.docker.engine import LABEL_METRICS_PORT, LABEL_RUN

    network = client.api.create_network(
        f"testbed-{run}", driver="overlay", attachable=True, labels={LABEL_RUN: run}
    )["Id"]
    ids = []
    for i in range(count):
        labels = {
            LABEL_RUN: run,
            "testbed.unit": f"bbb-{i + 1}",
            "testbed.role": "prosumer-host",
            "testbed.spec": "managercost",
            LABEL_METRICS_PORT: "9100",
        }
        template = {
            "ContainerSpec": {
                "Image": image,
                "Args": ["python3", "-c", SCRIPT],
                "Labels": labels,
                "Env": [f"TESTBED_VAR_{k}=value-{k}-{i}" for k in range(8)],
            },
            "Resources": {"Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 512 * 2**20}},
            "RestartPolicy": {"Condition": "none"},
            "Placement": {"Constraints": [f"node.hostname=={lab.workers[i % len(lab.workers)]}"]},
            "Networks": [{"Target": network, "Aliases": [f"bbb-{i + 1}"]}],
        }
        created = client.api.create_service(
            template,
            name=f"testbed-{run}-bbb-{i + 1}",
            labels=labels,
            mode={"replicated": {"Replicas": 1}},
            endpoint_spec={"Mode": "dnsrr"},
        )
        ids.append(str(created["ID"]))
    return ids


def wait_running(client: Any, ids: list[str], timeout: float = 600.0) -> float:
    started, deadline = time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = client.api.tasks(filters={"service": ids})
        if sum(1 for t in tasks if t["Status"]["State"] == "running") >= len(ids):
            return time.monotonic() - started
        time.sleep(2.0)
    raise SystemExit(f"services not running within {timeout:g} s")


def remove(client: Any, ids: list[str], run: str) -> None:
    for sid in ids:
        try:
            client.api.remove_service(sid)
        except Exception as exc:  # report, go on
            print(f"remove {sid}: {exc}", file=sys.stderr)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            client.api.remove_network(f"testbed-{run}")
            return
        except Exception:  # its tasks are still going
            time.sleep(2.0)


DNS = """\
import socket, sys, time
count, seconds, known = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == '1'
calls, end, i = 0, time.monotonic() + seconds, 0
while time.monotonic() < end:
    name = f'bbb-{i % count + 1}' if known else f'nobody-{i % count + 1}'
    try:
        socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        pass
    i += 1
    time.sleep(0.01)
print(i)
"""


def dns_lookups(client: Any, run: str, count: int, seconds: float, known: bool) -> int:
    """Names looked up from a container on the manager, on the run's network."""
    image = client.api.inspect_service(f"testbed-{run}-bbb-1")["Spec"]["TaskTemplate"]
    argv = ["python3", "-c", DNS, str(count), str(seconds), "1" if known else "0"]
    out = client.containers.run(
        image["ContainerSpec"]["Image"], argv, network=f"testbed-{run}", remove=True
    )
    return int(out.decode().split()[-1])


def phases(
    client: Any, ids: list[str], run: str, seconds: float, sd: float, only: set[str]
) -> dict[str, Any]:
    from orchestrator.backends.swarm.tasks import ENDED, Listing, Record, newest_tasks

    pids, out = manager_engine(), dict[str, Any]()
    records = [Record(None, Path("/dev/null"), None, service_id=s) for s in ids]  # type: ignore[arg-type]
    if "idle" in only:
        with measured("idle", pids, out):
            time.sleep(seconds)
    if "listing" in only:
        listing = Listing(client, run)
        with measured("listing_as_backend", pids, out) as f:  # status() every 0.2 s
            f["calls"] = repeat(seconds, 0.2, lambda: listing.current(records))
        asked: dict[str, dict[str, Any]] = {
            "whole_by_service_ids": {},
            "whole_by_run_label": {"run_id": run},
            "ended_by_service_ids": {"desired": ENDED},
            "ended_by_run_label": {"desired": ENDED, "run_id": run},
        }
        for name, how in asked.items():
            with measured(f"{name}_every_0.2s", pids, out) as f:
                f["calls"] = repeat(seconds, 0.2, partial(newest_tasks, client, records, **how))

    def refresh() -> None:  # what Prometheus' dockerswarm_sd (role tasks) asks per refresh
        client.api.tasks(filters={"label": f"testbed.run={run}", "desired-state": "running"})
        client.api.services()
        client.api.nodes()
        client.api.networks()

    if "sd" in only:
        with measured(f"sd_refresh_every_{sd:g}s", pids, out) as f:
            f["calls"] = repeat(seconds, sd, refresh)
    if "dns" in only:  # the metrics gateway's lookups, 100 a second, less the container's cost
        with measured("dns_container_alone", pids, out) as f:
            f["calls"] = dns_lookups(client, run, len(ids), 0.0, True) + 1
        for names in ("known", "unknown"):
            with measured(f"dns_{names}_names_100_per_s", pids, out) as f:
                f["calls"] = dns_lookups(client, run, len(ids), seconds, names == "known")
            alone = out["dns_container_alone"]["cpu_seconds"]
            f = out[f"dns_{names}_names_100_per_s"]
            f["cpu_ms_per_lookup_net"] = round(1000 * (f["cpu_seconds"] - alone) / f["calls"], 3)
    if "logs" in only:
        out.update(log_phases(client, ids, run, seconds, pids))
    return out


def log_phases(
    client: Any, ids: list[str], run: str, seconds: float, pids: list[int]
) -> dict[str, Any]:
    from orchestrator.backends.swarm.logs import ServiceLogFollower

    out: dict[str, Any] = {}
    folder = Path(f"/tmp/managercost-{run}")
    folder.mkdir(exist_ok=True)
    with measured("log_streams_open", pids, out) as f:
        followers = [ServiceLogFollower(client, s, folder / f"{s}.log") for s in ids]
        for follower in followers:
            follower.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
            (folder / f"{s}.log").exists() and (folder / f"{s}.log").stat().st_size for s in ids
        ):
            time.sleep(0.2)
        f["calls"] = len(ids)
    with measured("log_streams_following", pids, out) as f:
        time.sleep(seconds)
        f["streams"] = len(ids)
    with measured("logs_read_once", pids, out) as f:
        for follower in followers:
            follower.saved = True
        reader = [ServiceLogFollower(client, s, folder / f"once-{s}.log") for s in ids]
        threads = [threading.Thread(target=r.save) for r in reader]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        f["calls"] = len(ids)
    return out


PHASES = ("idle", "listing", "sd", "dns", "logs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", required=True)
    parser.add_argument("--services", type=int, default=93)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--sd-refresh", type=float, default=1.0, help="the run's refresh")
    parser.add_argument("--phases", default=",".join(PHASES), help="some of " + ",".join(PHASES))
    args = parser.parse_args()

    from orchestrator.backends.base import state_root
    from orchestrator.backends.docker.engine import connect
    from orchestrator.images import ensure_images
    from orchestrator.swarm import Lab

    client = connect()
    lab = Lab.load(state_root(), args.lab)
    assert lab.registry is not None, "the lab needs a registry"
    image = lab.registry.push(client, ensure_images(client).of("agent"))
    run = f"managercost-{secrets.token_hex(3)}"
    ids: list[str] = []
    try:
        ids = make_services(client, lab, image, args.services, run)
        up = wait_running(client, ids)
        only = set(args.phases.split(","))
        figures = phases(client, ids, run, args.seconds, args.sd_refresh, only)
    finally:
        remove(client, ids, run)
    scale = 225.0
    result = {
        "bench": "managercost",
        "services": args.services,
        "seconds_per_phase": args.seconds,
        "services_running_after_seconds": round(up, 1),
        "load_average": [round(x, 2) for x in psutil.getloadavg()],
        "manager_engine_cpu": figures,
        "extrapolated_to_225s": {
            k: round(v["cpu_per_second"] * scale, 1)
            for k, v in figures.items()
            if k not in ("log_streams_open", "logs_read_once", "dns_container_alone")
        },
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
