"""`testbed render SPEC --format stack`: the swarm backend's services as a stack
file for `docker stack deploy`, for users who deploy by hand.

The compose project (docker/compose.py: the same containers the backends run,
the contract's deploy step, health checks, config/, setup/, prometheus/) is
rewritten for a swarm: compose file format 3.8, the backend's networks (the
run's internal overlay network, and an edge network for the services that
publish a port: network.py), dnsrr endpoints and host-mode ports (no IPVS
needed), profile limits and placement constraints under `deploy:`, bind
mounts by absolute path (the project folder must be the same path on every
node: NFS on a real cluster).

A stack has no start order of its own: every agent's service runs setup/
start.py first (stackstart.py), which execs the agent once the deploy step has
put a contract with code on the chain into its config and the tier before it
is ready, as `testbed run` starts them. Nothing is restarted: a crash shows as
a failed task, as it ends a run on every backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from orchestrator.backends.docker.compose import PROMETHEUS_PORT, SETUP_DIR, render_compose
from orchestrator.backends.docker.containers import CONFIG_DIR
from orchestrator.backends.docker.engine import LABEL_ORCHESTRATOR, LABEL_RUN
from orchestrator.backends.swarm.cluster import host_groups
from orchestrator.backends.swarm.network import LABEL_EDGE
from orchestrator.plan import Plan
from orchestrator.spec.model import DeploymentConfig
from orchestrator.spec.swarm import PROSUMER_LABEL, PROSUMER_LABEL_VALUE

VERSION = "3.8"
ORCHESTRATOR = "stack"  # testbed.orchestrator of what `docker stack deploy` makes
MANAGER = "node.role==manager"
EDGE = "edge"  # the network of the services that publish a port
START_SCRIPT = Path(__file__).with_name("stackstart.py")  # setup/start.py in the project
DROPPED = (
    "container_name",
    "depends_on",
    "restart",
    "mem_limit",
    "memswap_limit",
    "cpus",
    "healthcheck",
)
HEADER = """\
# Stack file of testbed run plan {run_id} (spec {spec}), rendered by
# `testbed render --format stack`: the services the swarm backend runs.
#
#   docker stack deploy -c {folder}/stack.yaml testbed-{run_id}
#   docker stack rm testbed-{run_id}
#
# Start order: chain -> deploy (the market contract, written into config/*.json)
# -> recorder -> dso -> clock -> solvers -> prosumer hosts; each agent waits in
# setup/start.py for the contract and for the tier before it. Results: the
# recorder's event log in {folder}/out/recorder/ (recorder.json, trades.csv,
# finalizations.csv, ...), every agent's output in out/<agent>/; Prometheus on
# port {prometheus_port} of the manager. The run is over when the clock's task
# is Complete (docker stack ps testbed-{run_id}).
#
# Bind mounts name {folder}: it must be the same path on every node (NFS).
# Images: {images}
"""


def _constraints(plan: Plan, deployment: DeploymentConfig) -> dict[str, list[str]]:
    """{service: its placement constraints} (as the backend places them, minus
    the pinning to a node: here the scheduler spreads them)."""
    settings = deployment.swarm
    prosumers = list(settings.prosumers) or [
        f"node.labels.{PROSUMER_LABEL}=={PROSUMER_LABEL_VALUE}"
    ]
    own = {entry.name: list(entry.placement or ()) for entry in deployment.hosts}
    out = {"chain": [MANAGER], "prometheus": [MANAGER], "deploy": [MANAGER]}
    for group, units in host_groups(plan, deployment).items():
        for unit in units:
            out[unit] = [*prosumers, *own.get(group, [])]
    for agent in plan.agents:
        out.setdefault(agent.name, list(settings.services))
    return out


def _ours(labels: Mapping[str, str] | None) -> dict[str, str]:
    """The compose project's labels, saying who made it: a stack."""
    return {**(labels or {}), LABEL_ORCHESTRATOR: ORCHESTRATOR}


def _volume(spec: str, root: Path) -> str:
    source, _, rest = spec.partition(":")
    if source.startswith("./"):
        source = str(root / source[2:])
    return f"{source}:{rest}"


def _port(spec: str, published: Mapping[int, int]) -> dict[str, Any]:
    host, target = (int(p) for p in spec.split(":")[-2:])
    return {"target": target, "published": published.get(target, host), "mode": "host"}


def _deploy(service: dict[str, Any], constraints: list[str]) -> dict[str, Any]:
    resources: dict[str, str] = {}
    if service.get("mem_limit"):
        resources["memory"] = str(service["mem_limit"]).upper()  # 512m -> 512M
    if service.get("cpus"):
        resources["cpus"] = str(service["cpus"])
    deploy: dict[str, Any] = {
        "replicas": 1,
        "endpoint_mode": "dnsrr",
        "labels": dict(service.get("labels") or {}),
        "restart_policy": {"condition": "none"},
        "placement": {"constraints": constraints},
    }
    if resources:
        deploy["resources"] = {"limits": resources}
    return deploy


def start_order(plan: Plan) -> dict[str, list[str]]:
    """{agent: the agents of the tier before its own} (nothing for the first)."""
    after: dict[str, list[str]] = {}
    previous: list[str] = []
    for tier in plan.tiers():
        for agent in tier:
            after[agent.name] = previous
        previous = [a.name for a in tier]
    return after


def _gated(name: str, command: list[str], after: list[str]) -> list[str]:
    """The agent's command behind setup/start.py (stackstart.py)."""
    gate = ["python", f"{SETUP_DIR}/start.py", f"{CONFIG_DIR}/{name}.json"]
    for other in after:
        gate += ["--after", other]
    return [*gate, "--", *command]


def stack_document(
    compose: Mapping[str, Any],
    plan: Plan,
    deployment: DeploymentConfig,
    root: Path,
    prometheus_port: int = PROMETHEUS_PORT,
) -> dict[str, Any]:
    """The stack file's content from the compose project's."""
    constraints = _constraints(plan, deployment)
    after = start_order(plan)
    published = {PROMETHEUS_PORT: prometheus_port}
    services: dict[str, Any] = {}
    for name, service in compose["services"].items():
        service = {**service, "labels": _ours(service.get("labels"))}
        stacked = {k: v for k, v in service.items() if k not in DROPPED and v is not None}
        if name == "chain":
            stacked["healthcheck"] = service["healthcheck"]
        stacked["deploy"] = _deploy(service, constraints.get(name, [MANAGER]))
        volumes = list(service.get("volumes") or [])
        if name in after:
            stacked["command"] = _gated(name, list(service["command"]), after[name])
            volumes.append(f"./setup:{SETUP_DIR}:ro")
        if volumes:
            stacked["volumes"] = [_volume(v, root) for v in volumes]
        if service.get("ports"):
            stacked["ports"] = [_port(p, published) for p in service["ports"]]
            stacked["networks"] = {**service["networks"], EDGE: {}}
        services[name] = stacked
    return {"version": VERSION, "networks": _networks(compose), "services": services}


def _networks(compose: Mapping[str, Any]) -> dict[str, Any]:
    """The run's network internal, and the edge network, labelled as the
    backend labels them (network.py)."""
    networks: dict[str, Any] = {}
    for name, network in compose["networks"].items():
        labels = _ours(network.get("labels"))
        run = {"driver": "overlay", "attachable": True, "internal": True, "labels": labels}
        networks[name] = {**network, **run}
        edge = {k: v for k, v in labels.items() if k != LABEL_RUN}
        if LABEL_RUN in labels:
            edge[LABEL_EDGE] = labels[LABEL_RUN]
        networks[EDGE] = {"driver": "overlay", "attachable": True, "labels": edge}
    return networks


def _in_registry(ref: str) -> bool:
    """Whether an image reference names a registry host (docker's rule: a first
    path component with a dot or a port)."""
    first, slash, _ = ref.partition("/")
    return bool(slash) and ("." in first or ":" in first or first == "localhost")


def render_stack(
    plan: Plan,
    images: Mapping[str, str],
    deployment: DeploymentConfig,
    *,
    out: Path | None = None,
    prometheus_port: int = PROMETHEUS_PORT,
    **compose_options: Any,
) -> str:
    """The stack file's text; with `out`, the project (config/, setup/ with
    start.py, prometheus/, out/) and stack.yaml are written there."""
    text = render_compose(plan, images, out=out, **compose_options)
    root = out.resolve() if out is not None else Path("/path/to/project")
    document = stack_document(yaml.safe_load(text), plan, deployment, root, prometheus_port)
    pulled = all(_in_registry(ref) for ref in images.values())
    header = HEADER.format(
        run_id=plan.run_id,
        spec=plan.spec_name,
        folder=root,
        prometheus_port=prometheus_port,
        images="from the registry every node pulls from"
        if pulled
        else "local tags: every node must have them (else render with "
        "--set deployment.swarm.registry=HOST:PORT, which pushes them there)",
    )
    stack = header + yaml.safe_dump(document, sort_keys=False, width=100)
    if out is not None:
        (out / "docker-compose.yaml").unlink(missing_ok=True)
        (out / "setup" / "start.py").write_text(START_SCRIPT.read_text())
        (out / "stack.yaml").write_text(stack)
    return stack
