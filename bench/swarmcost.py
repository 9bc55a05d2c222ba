"""What a prosumer host's service costs a swarm worker's engine, by variant of
its spec (issue 13). Prints one JSON object.

On a lab (`--lab ID`, from `testbed lab up`), `--services` services of the
agent image that only sleep, built as the backend builds a prosumer host's
service (services.py: `bbb` limits, init, dnsrr, the run's overlay with the
unit as alias, its output folder bind-mounted from the shared results folder),
all pinned to one worker, are created at once (4 at a time, as the backend
does) and then removed. `today` is the spec before this bench (the run's
overlay not internal, the host's config file a swarm secret); each other
variant changes one or two things of it (VARIANTS); `internal+bind` is what
the backend builds now (network.py, files.py). The variants alternate
`--rounds` times, after one warm-up round. Per phase (up: until every task
runs; down: until their containers are gone on the worker) it measures the
CPU seconds of
- the worker's engine: its node container's cpuacct cgroup (dockerd,
  containerd, shims, and the short-lived runc, iptables... processes),
- the worker's tasks: the cgroup subtree its dockerd puts containers under,
- the manager's dockerd (this machine's engine, from /proc),
and the wall seconds. After the up phase (outside both) it counts the
containers the worker's docker_gwbridge holds (a task on an internal network
has no endpoint there).

    flock /tmp/swarm-dev.lock .venv/bin/python bench/swarmcost.py --lab b1 --services 40
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.exectrace import ExecTrace
from bench.swarmcpu import CPUACCT, cgroup_cpu, cpuacct_of
from orchestrator.backends.base import Unit, state_root
from orchestrator.backends.docker.containers import unit_spec
from orchestrator.backends.docker.engine import LABEL_RUN, connect
from orchestrator.backends.swarm.files import InputFile, inputs_of
from orchestrator.backends.swarm.network import create_overlay
from orchestrator.backends.swarm.resources import remove_swarm_resources, swarm_resources
from orchestrator.backends.swarm.services import ServiceSpec, service_name
from orchestrator.hosts import PROFILES
from orchestrator.images import ensure_images
from orchestrator.swarm import Lab

TIMEOUT_SECONDS = 900.0
POLL_SECONDS = 0.5
CONFIG_BYTES = 96 * 1024  # a paper-c prosumer host's config (keys and offer traces)
CREATE_PARALLELISM = 4  # as the backend (START_PARALLELISM)


def manager_dockerd_cpu() -> float:
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] == "dockerd" and not cpuacct_of(proc.pid).startswith("/docker/"):
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


@dataclass(frozen=True)
class Variant:
    internal: bool = False  # the run's overlay internal: no docker_gwbridge endpoint
    config: str = "secret"  # secret | bind (the file from the shared results folder)
    init: bool = True  # docker-init as the container's PID 1
    cpu_limit: bool = True  # bbb's NanoCPUs (a CFS quota)
    log_driver: str | None = None  # None: the engine's default (json-file)


VARIANTS = {
    "today": Variant(),
    "internal": Variant(internal=True),
    "bind": Variant(config="bind"),
    "no-init": Variant(init=False),
    "no-cpu-limit": Variant(cpu_limit=False),
    "log-local": Variant(log_driver="local"),
    "log-none": Variant(log_driver="none"),
    "internal+bind": Variant(internal=True, config="bind"),
}


class Meter:
    """CPU seconds of a lab worker's engine and of its tasks, and the manager's dockerd."""

    def __init__(self, worker_cid: str, worker: str) -> None:
        if (CPUACCT / worker / worker_cid).is_dir():  # the node a cgroup subtree of its own
            self.engine, self.tasks = CPUACCT / worker / worker_cid, CPUACCT / worker / "containers"
        else:
            self.engine, self.tasks = CPUACCT / "docker" / worker_cid, CPUACCT / worker

    def read(self) -> tuple[float, float, float, float]:
        return (
            time.monotonic(),
            cgroup_cpu(self.engine),
            cgroup_cpu(self.tasks),
            manager_dockerd_cpu(),
        )

    def alive(self, containers: list[str]) -> int:
        """How many of `containers` still have a cgroup (it goes when a container stops)."""
        return sum(1 for c in containers if (self.tasks / c).is_dir())

    @staticmethod
    def delta(a: tuple[float, ...], b: tuple[float, ...]) -> dict[str, float]:
        keys = ("wall_seconds", "worker_engine_cpu", "worker_tasks_cpu", "manager_dockerd_cpu")
        return {k: round(y - x, 2) for k, x, y in zip(keys, a, b, strict=True)}


def host_specs(
    folder: Path, ref: str, labels: dict[str, str], node_id: str, n: int, variant: Variant
) -> list[ServiceSpec]:
    """`n` prosumer hosts' services as services.py builds them, changed by `variant`."""
    specs = []
    for i in range(n):
        unit = f"host-{i:03d}"
        config, out = folder / "config", folder / "out" / unit
        out.mkdir(parents=True, exist_ok=True)
        (config / f"{unit}.json").write_text(
            json.dumps({"pad": os.urandom(CONFIG_BYTES // 2).hex()})
        )
        # the command names its config, as the agents' does (files.inputs_of finds it)
        argv = ("sh", "-c", "exec sleep infinity", f"/testbed/config/{unit}.json")
        container = unit_spec(
            Unit(unit, "prosumer", argv, Path("/dev/null")),
            "",
            config_dir=config,
            out_dir=out,
            profile=PROFILES["bbb"],
        )
        container, files = inputs_of(container)  # the backend's: a bind mount of that file
        if variant.config == "secret":  # as before: the file a swarm secret
            mounts = [m for m in container.mounts if m.target != argv[-1]]
            files = (InputFile(config / f"{unit}.json", argv[-1]),)
            container = dataclasses.replace(container, mounts=tuple(mounts))
        specs.append(
            ServiceSpec(
                container,
                ref,
                {**labels, "testbed.unit": unit},
                constraints=(f"node.id=={node_id}",),
                files=files,
            )
        )
    return specs


def create_secrets(
    client: Any, run: str, files: tuple[InputFile, ...], labels: dict[str, str]
) -> dict[str, Any]:
    """The `Secrets` of a host's config, as files.py made them before (mode 0400)."""
    secrets = []
    for item in files:
        name = f"testbed-{run}-{uuid.uuid4().hex[:12]}"
        made = client.api.create_secret(name, item.source.read_bytes(), labels=labels)
        file = {"Name": item.target, "UID": "0", "GID": "0", "Mode": 0o400}
        secrets.append({"File": file, "SecretID": made["ID"], "SecretName": name})
    return {"Secrets": secrets}


def template_of(
    spec: ServiceSpec, run: str, network_id: str, files: dict[str, Any], variant: Variant
) -> dict[str, Any]:
    template = spec.task_template(run, network_id, files)
    template["ContainerSpec"]["Init"] = variant.init
    if not variant.cpu_limit:
        template["Resources"]["Limits"].pop("NanoCPUs", None)
    if variant.log_driver:
        template["LogDriver"] = {"Name": variant.log_driver}
    return template


def one_round(
    client: Any, lab: Lab, worker: str, ref: str, n: int, variant: Variant
) -> dict[str, Any]:
    run = f"swarmcost{uuid.uuid4().hex[:8]}"
    labels = {LABEL_RUN: run}
    node_id = next(x["ID"] for x in client.api.nodes() if x["Description"]["Hostname"] == worker)
    meter = Meter(client.containers.get(worker).id, worker)
    folder = Path(lab.shared[0]) / f".{run}"  # the results root every node shares
    (folder / "config").mkdir(parents=True)
    specs = host_specs(folder, ref, labels, node_id, n, variant)
    network_id, _ = create_overlay(client, f"testbed-{run}", run, labels, internal=variant.internal)

    def create(spec: ServiceSpec) -> str:
        files = create_secrets(client, run, spec.files, labels)
        made = client.api.create_service(
            template_of(spec, run, network_id, files, variant),
            name=service_name(run, spec.unit),
            labels=dict(spec.labels),
            mode={"replicated": {"Replicas": 1}},
            endpoint_spec=spec.endpoint(),
        )
        return str(made["ID"])

    try:
        start = meter.read()
        with ThreadPoolExecutor(CREATE_PARALLELISM) as pool:
            ids = list(pool.map(create, specs))
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            tasks = client.api.tasks(filters={"service": ids})
            states = [t["Status"]["State"] for t in tasks]
            bad = [t["Status"] for t in tasks if t["Status"]["State"] in ("failed", "rejected")]
            assert not bad, bad[0]
            if states.count("running") == n:
                break
            time.sleep(POLL_SECONDS)
        running = meter.read()
        containers = [t["Status"]["ContainerStatus"]["ContainerID"] for t in tasks]
        gwbridge = gwbridge_containers(client, lab, worker)
        removing = meter.read()
        found = swarm_resources(client, run)[run]
        found.networks = []  # removed below, once the containers are gone
        remove_swarm_resources(client, found)
        while meter.alive(containers) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS / 5)
        while time.monotonic() < deadline:  # their containers removed too (1 s polls: cheap)
            code, out = lab.node_docker(
                client, worker, "ps", "-aq", "--filter", f"label={LABEL_RUN}={run}"
            )
            if code == 0 and not out.strip():
                break
            time.sleep(1.0)
        gone = meter.read()
    finally:  # whatever failed: nothing of the round is left
        for found in swarm_resources(client, run).values():
            remove_swarm_resources(client, found)
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "up": Meter.delta(start, running),
        "down": Meter.delta(removing, gone),
        "gwbridge_containers_when_up": gwbridge,
        "windows": {"up": (start[0], running[0]), "down": (removing[0], gone[0])},
    }


def traced_round(
    client: Any, lab: Lab, worker: str, ref: str, args: argparse.Namespace, variant: Variant
) -> dict[str, Any]:
    """One round; with --trace, what the worker ran in each phase, per service."""
    if not args.trace:
        got = one_round(client, lab, worker, ref, args.services, variant)
        got.pop("windows")
        return got
    with ExecTrace(worker) as trace:
        got = one_round(client, lab, worker, ref, args.services, variant)
    try:
        got["trace_per_service"] = {
            phase: per_service(table, args.services)
            for phase, table in trace.breakdown(got.pop("windows")).items()
        }
    finally:
        trace.remove()
    return got


def per_service(table: dict[str, Any], n: int) -> dict[str, Any]:
    programs = {
        name: {"cpu_seconds": round(p["cpu_seconds"] / n, 4), "execs": round(p["execs"] / n, 2)}
        for name, p in table["programs"].items()
        if p["cpu_seconds"] / n >= 0.0005 or p["execs"]
    }
    return {"cpu_seconds": round(table["cpu_seconds"] / n, 4), "programs": programs}


def gwbridge_containers(client: Any, lab: Lab, worker: str) -> int | None:
    code, out = lab.node_docker(
        client, worker, "network", "inspect", "docker_gwbridge", "--format", "{{json .Containers}}"
    )
    return len(json.loads(out) or {}) if code == 0 else None


def summarize(rounds: dict[str, list[dict[str, Any]]], n: int) -> dict[str, Any]:
    """Per service, the median of the rounds; `*_vs_first`: against the first variant."""
    out: dict[str, Any] = {}
    for name, got in rounds.items():
        per = {
            phase: {
                key: round(statistics.median(r[phase][key] for r in got) / n, 4)
                for key in got[0][phase]
            }
            for phase in ("up", "down")
        }
        engine = per["up"]["worker_engine_cpu"] + per["down"]["worker_engine_cpu"]
        per["worker_engine_cpu_up_and_down"] = round(engine, 4)
        per["worker_cpu_up"] = round(
            per["up"]["worker_engine_cpu"] + per["up"]["worker_tasks_cpu"], 4
        )
        out[name] = per
    first = next(iter(out.values()), None)
    if first and first["worker_engine_cpu_up_and_down"] and first["worker_cpu_up"]:
        for per in out.values():
            engine = per["worker_engine_cpu_up_and_down"] / first["worker_engine_cpu_up_and_down"]
            per["engine_vs_first"] = round(engine - 1, 3)
            per["worker_cpu_up_vs_first"] = round(
                per["worker_cpu_up"] / first["worker_cpu_up"] - 1, 3
            )
    return out


def node_config(client: Any, lab: Lab, worker: str) -> dict[str, Any]:
    """What the worker's engine runs with (the node-config dimension)."""
    _, runtime = lab.node_docker(client, worker, "info", "--format", "{{.DefaultRuntime}}")
    container = client.containers.get(worker)
    _, iptables = container.exec_run(["iptables", "--version"])
    env = container.attrs["Config"]["Env"] or []
    return {
        "image": container.attrs["Config"]["Image"],
        "default_runtime": runtime,
        "iptables": iptables.decode(errors="replace").strip(),
        "engine_env": sorted(e for e in env if e.startswith(("GO", "TESTBED_ENGINE"))),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", required=True)
    parser.add_argument("--services", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument(
        "--workers",
        default="1",
        help="the lab's workers to run on, by number (comma-separated: each variant on each, "
        "alternating: nodes configured differently compared)",
    )
    parser.add_argument(
        "--trace", action="store_true", help="the worker's programs by CPU and execs (perf)"
    )
    args = parser.parse_args()
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    client = connect()
    lab = Lab.load(state_root(), args.lab)
    assert lab.registry is not None and lab.shared, "the lab needs a registry and a shared folder"
    workers = [lab.workers[int(i) - 1] for i in args.workers.split(",")]
    agent = ensure_images(client).of("agent")
    ref = lab.registry.push_images(client, {"agent": agent})["agent"]
    cases = [(n, w) for n in names for w in workers]

    def key(name: str, worker: str) -> str:
        return f"{name}@{worker.rpartition('-')[2]}" if len(workers) > 1 else name

    for worker in workers:
        lab.node_docker(client, worker, "pull", ref)
        one_round(client, lab, worker, ref, args.services, VARIANTS[names[0]])  # warm-up
    rounds: dict[str, list[dict[str, Any]]] = {key(n, w): [] for n, w in cases}
    for _ in range(args.rounds):
        for name, worker in cases:
            got = traced_round(client, lab, worker, ref, args, VARIANTS[name])
            rounds[key(name, worker)].append(got)
    report = {
        "services": args.services,
        "workers": {w: node_config(client, lab, w) for w in workers},
        "variants": {name: dataclasses.asdict(VARIANTS[name]) for name in names},
        "per_service_median": summarize(rounds, args.services),
        "rounds": rounds,
        "load_average": Path("/proc/loadavg").read_text().split()[:3],
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
