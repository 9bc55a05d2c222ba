"""What one prosumer host's service costs a swarm worker's engine, with and
without a port published in host mode (issue 13; since metricsgw.py the hosts
publish none). Prints one JSON object.

On a lab (`--lab ID`, from `testbed lab up`), `--services` services of the
agent image that only sleep, built as the backend builds a host's service
(services.py: `bbb` limits, the run's attachable overlay with the unit as
alias, dnsrr, init), all pinned to one worker, are created at once and then
removed. Per phase (up: until every task runs; down: until their containers are
gone) it measures the CPU seconds of
- the worker's engine: its node container's cpuacct cgroup (dockerd,
  containerd, shims, and the short-lived runc, iptables, docker-proxy),
- the worker's tasks: the cgroup subtree its dockerd puts containers under,
- the manager's dockerd (this machine's engine, from /proc),
and the wall seconds. The variants alternate `--rounds` times.

    flock /tmp/swarm-dev.lock .venv/bin/python bench/swarmport.py --lab sl1
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.swarmcost import Meter
from orchestrator.backends.base import state_root
from orchestrator.backends.docker.containers import ContainerSpec
from orchestrator.backends.docker.engine import LABEL_RUN, connect
from orchestrator.backends.local import free_ports
from orchestrator.backends.swarm.network import create_overlay
from orchestrator.backends.swarm.resources import remove_swarm_resources, swarm_resources
from orchestrator.backends.swarm.services import ServiceSpec, service_name
from orchestrator.hosts import PROFILES
from orchestrator.images import ensure_images
from orchestrator.swarm import Lab

TIMEOUT_SECONDS = 900.0
POLL_SECONDS = 0.5


def one_round(client: Any, lab: Lab, worker: str, ref: str, n: int, publish: bool) -> dict:
    run = f"swarmport{uuid.uuid4().hex[:8]}"
    labels = {LABEL_RUN: run}
    node_id = next(x["ID"] for x in client.api.nodes() if x["Description"]["Hostname"] == worker)
    meter = Meter(client.containers.get(worker).id, worker)
    network_id, _ = create_overlay(client, f"testbed-{run}", run, labels)
    ports = free_ports(n, "0.0.0.0") if publish else [0] * n
    specs = []
    for i, port in enumerate(ports):
        unit = f"host-{i:03d}"
        container = ContainerSpec(
            unit, "prosumer", "agent", ("sleep", "infinity"), "", profile=PROFILES["bbb"]
        )
        specs.append(
            ServiceSpec(
                container,
                ref,
                {**labels, "testbed.unit": unit},
                constraints=(f"node.id=={node_id}",),
                ports={port: port} if publish else {},
            )
        )

    def create(spec: ServiceSpec) -> str:
        made = client.api.create_service(
            spec.task_template(run, network_id),
            name=service_name(run, spec.unit),
            labels=dict(spec.labels),
            mode={"replicated": {"Replicas": 1}},
            endpoint_spec=spec.endpoint(),
        )
        return str(made["ID"])

    try:
        start = meter.read()
        with ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(create, specs))
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            states = [t["Status"]["State"] for t in client.api.tasks(filters={"service": ids})]
            assert not {"failed", "rejected"} & set(states), states
            if states.count("running") == n:
                break
            time.sleep(POLL_SECONDS)
        running = meter.read()
        found = swarm_resources(client, run)[run]
        found.networks = []  # removed below, once the containers are gone
        remove_swarm_resources(client, found)
        while time.monotonic() < deadline:
            code, out = lab.node_docker(
                client, worker, "ps", "-aq", "--filter", f"label={LABEL_RUN}={run}"
            )
            if code == 0 and not out.strip():
                break
            time.sleep(POLL_SECONDS)
        gone = meter.read()
    finally:  # whatever failed: nothing of the round is left
        for found in swarm_resources(client, run).values():
            remove_swarm_resources(client, found)
    return {"up": Meter.delta(start, running), "down": Meter.delta(running, gone)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", required=True)
    parser.add_argument("--services", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    client = connect()
    lab = Lab.load(state_root(), args.lab)
    assert lab.registry is not None, "the lab needs a registry"
    agent = ensure_images(client).of("agent")
    ref = lab.registry.push_images(client, {"agent": agent})["agent"]
    worker = lab.workers[0]
    lab.node_docker(client, worker, "pull", ref)
    rounds: dict[str, list[dict]] = {"published": [], "none": []}
    for _ in range(args.rounds):
        for variant in ("published", "none"):
            rounds[variant].append(
                one_round(client, lab, worker, ref, args.services, variant == "published")
            )
    summary = {
        variant: {
            phase: {
                key: round(statistics.median(r[phase][key] for r in got) / args.services, 4)
                for key in got[0][phase]
            }
            for phase in ("up", "down")
        }
        for variant, got in rounds.items()
    }
    print(
        json.dumps(
            {
                "services": args.services,
                "worker": worker,
                "per_service_median": summary,
                "rounds": rounds,
                "load_average": Path("/proc/loadavg").read_text().split()[:3],
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
