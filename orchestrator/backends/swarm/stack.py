"""`testbed render SPEC --format stack`: the swarm backend's services as a stack
file for `docker stack deploy`, for users who deploy by hand.

The compose project (docker/compose.py: the same containers the backends run,
the contract's deploy step, health checks, config/, setup/, prometheus/) is
rewritten for a swarm: compose file format 3.8, an attachable overlay network,
dnsrr endpoints and host-mode ports (no IPVS needed), profile limits and
placement constraints under `deploy:`, bind mounts by absolute path (the
project folder must be the same path on every node: NFS on a real cluster).

A stack has no start order: every agent is started again (restart on failure,
after a delay) until the deploy step has written the contract's address into
its config and the services it needs answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from orchestrator.backends.docker.compose import render_compose
from orchestrator.backends.docker.engine import LABEL_ORCHESTRATOR
from orchestrator.backends.swarm.cluster import host_groups
from orchestrator.plan import Plan
from orchestrator.spec.model import DeploymentConfig
from orchestrator.spec.swarm import PROSUMER_LABEL, PROSUMER_LABEL_VALUE

VERSION = "3.8"
ORCHESTRATOR = "stack"  # testbed.orchestrator of what `docker stack deploy` makes
RETRY_DELAY = "3s"
MANAGER = "node.role==manager"
DROPPED = ("container_name", "depends_on", "restart", "mem_limit", "memswap_limit", "cpus")
HEADER = """\
# Stack file of testbed run plan {run_id} (spec {spec}), rendered by
# `testbed render --format stack`: the services the swarm backend runs.
#
#   docker stack deploy -c {folder}/stack.yaml testbed-{run_id}
#   docker stack rm testbed-{run_id}
#
# Bind mounts name {folder}: it must be the same path on every node (NFS).
# The images must be pullable by every node (a registry: `testbed lab up` or
# your own; retag them there and edit image: below).
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


def _port(spec: str) -> dict[str, Any]:
    published, target = spec.split(":")[-2:]
    return {"target": int(target), "published": int(published), "mode": "host"}


def _deploy(service: dict[str, Any], constraints: list[str]) -> dict[str, Any]:
    resources: dict[str, str] = {}
    if service.get("mem_limit"):
        resources["memory"] = str(service["mem_limit"]).upper()  # 512m -> 512M
    if service.get("cpus"):
        resources["cpus"] = str(service["cpus"])
    once = service.get("restart") == "no" or service["hostname"] in ("chain", "prometheus")
    deploy: dict[str, Any] = {
        "replicas": 1,
        "endpoint_mode": "dnsrr",
        "labels": dict(service.get("labels") or {}),
        "restart_policy": {"condition": "none"}
        if once
        else {"condition": "on-failure", "delay": RETRY_DELAY},
        "placement": {"constraints": constraints},
    }
    if resources:
        deploy["resources"] = {"limits": resources}
    return deploy


def stack_document(
    compose: Mapping[str, Any], plan: Plan, deployment: DeploymentConfig, root: Path
) -> dict[str, Any]:
    """The stack file's content from the compose project's."""
    constraints = _constraints(plan, deployment)
    services: dict[str, Any] = {}
    for name, service in compose["services"].items():
        service = {**service, "labels": _ours(service.get("labels"))}
        stacked = {k: v for k, v in service.items() if k not in DROPPED and v is not None}
        stacked["deploy"] = _deploy(service, constraints.get(name, [MANAGER]))
        if service.get("volumes"):
            stacked["volumes"] = [_volume(v, root) for v in service["volumes"]]
        if service.get("ports"):
            stacked["ports"] = [_port(p) for p in service["ports"]]
        services[name] = stacked
    networks = {
        name: {
            **network,
            "driver": "overlay",
            "attachable": True,
            "labels": _ours(network.get("labels")),
        }
        for name, network in compose["networks"].items()
    }
    return {"version": VERSION, "networks": networks, "services": services}


def render_stack(
    plan: Plan,
    images: Mapping[str, str],
    deployment: DeploymentConfig,
    *,
    out: Path | None = None,
    **compose_options: Any,
) -> str:
    """The stack file's text; with `out`, the project (config/, setup/,
    prometheus/, out/) and stack.yaml are written there."""
    text = render_compose(plan, images, out=out, **compose_options)
    root = out.resolve() if out is not None else Path("/path/to/project")
    document = stack_document(yaml.safe_load(text), plan, deployment, root)
    header = HEADER.format(run_id=plan.run_id, spec=plan.spec_name, folder=root)
    stack = header + yaml.safe_dump(document, sort_keys=False, width=100)
    if out is not None:
        (out / "docker-compose.yaml").unlink(missing_ok=True)
        (out / "stack.yaml").write_text(stack)
    return stack
