"""prometheus.yml for a run on Docker Swarm: Prometheus finds the agents itself.

On a swarm the orchestrator does not know where a task runs nor its address
on the run's overlay network (the scheduler decides, and decides again when a
node is drained), so Prometheus asks the manager with its native
`dockerswarm_sd_configs` (role `tasks`) and the relabelling below keeps
exactly this run's agents:

- tasks whose service carries the run label (`testbed.run=<run id>`, also
  the engine-side filter) and the metrics port label (`testbed.metrics_port`:
  the port the agent serves /metrics on; the chain and Prometheus have none);
- their address on the run's own network (the network labelled with the run
  id, not the ingress), with the port from that service label;
- target labels as every backend has them (orchestrator.scrapetargets): `run_id`, `spec`,
  `agent` (the service's `testbed.unit`), `role` (`testbed.role`), plus
  `node` (the swarm node's hostname: a handful of values, bounded).

The orchestrator's own exporter is not a task: it stays a static target in a
second scrape config whose `job` is relabelled to the same "testbed", so the
dashboards' `up{job="testbed"}` counts it as on every other backend.

What the swarm backend provides (orchestrator/backends/swarm/): the services
labelled so (LABEL_METRICS_PORT here, the docker backend's LABEL_* there),
the run's network labelled with the run id, and Prometheus as a service on a
manager node with the manager's engine socket (DOCKER_SOCKET) bind-mounted
and attached to the run's network. Pure: no engine calls here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml

from orchestrator.backends.docker.engine import (  # the labels the relabelling reads
    DOCKER_SOCKET,
    LABEL_METRICS_PORT,
    LABEL_ROLE,
    LABEL_RUN,
    LABEL_UNIT,
)
from orchestrator.plan import Plan
from orchestrator.scrapetargets import (
    JOB,
    MAX_SCRAPE_TIMEOUT_SECONDS,
    ScrapeTarget,
    duration,
)

# How often Prometheus asks the manager for tasks (a rescheduled task is found
# within this). Each refresh lists the run's tasks, every service of the swarm,
# its nodes and networks: the manager's engine spends more the more tasks there
# are, so the refresh is longer for more targets (40: 2 s; 315: 9.5 s).
REFRESH_SECONDS = 5.0
MIN_REFRESH_SECONDS = 2.0
REFRESH_SECONDS_PER_TARGET = 0.03


def refresh_seconds(targets: int) -> float:
    """The discovery's refresh interval for a run of `targets` scrape targets."""
    return max(MIN_REFRESH_SECONDS, targets * REFRESH_SECONDS_PER_TARGET)


ORCHESTRATOR_JOB = f"{JOB}-orchestrator"


def meta(kind: str, docker_label: str) -> str:
    """The discovery's meta label of a docker label (`kind`: service, network,
    container, node): non-alphanumerics become underscores, as Prometheus does."""
    return f"__meta_dockerswarm_{kind}_label_{re.sub(r'[^a-zA-Z0-9_]', '_', docker_label)}"


def agents_scrape_config(
    plan: Plan, *, host: str = f"unix://{DOCKER_SOCKET}", refresh_seconds: float = REFRESH_SECONDS
) -> dict[str, Any]:
    """The scrape config that discovers this run's agents among the swarm's tasks."""
    run = plan.run_id
    port = meta("service", LABEL_METRICS_PORT)
    return {
        "job_name": JOB,
        "honor_labels": False,
        "dockerswarm_sd_configs": [
            {
                "host": host,
                "role": "tasks",
                "refresh_interval": duration(refresh_seconds),
                "filters": [
                    {"name": "label", "values": [f"{LABEL_RUN}={run}"]},
                    {"name": "desired-state", "values": ["running"]},
                ],
            }
        ],
        "relabel_configs": [
            _keep(meta("service", LABEL_RUN), re.escape(run)),
            _keep(meta("network", LABEL_RUN), re.escape(run)),
            _keep(port, r"\d+"),
            {
                "source_labels": ["__address__", port],
                "separator": ";",
                "regex": r"(.+):\d+;(\d+)",
                "target_label": "__address__",
                "replacement": "${1}:${2}",
            },
            _set("run_id", run),
            _set("spec", plan.spec_name),
            _copy(meta("service", LABEL_UNIT), "agent"),
            _copy(meta("service", LABEL_ROLE), "role"),
            _copy("__meta_dockerswarm_node_hostname", "node"),
        ],
    }


def orchestrator_scrape_config(targets: Iterable[ScrapeTarget]) -> dict[str, Any]:
    """Static targets (the orchestrator's exporter) under the same job label."""
    return {
        "job_name": ORCHESTRATOR_JOB,
        "honor_labels": False,
        "static_configs": [{"targets": [t.address], "labels": dict(t.labels)} for t in targets],
        "relabel_configs": [_set("job", JOB)],
    }


def render_swarm_config(
    plan: Plan,
    static: Iterable[ScrapeTarget],
    *,
    interval_seconds: float,
    host: str = f"unix://{DOCKER_SOCKET}",
    refresh_seconds: float = REFRESH_SECONDS,
) -> str:
    """prometheus.yml: the run's agents discovered on the swarm, `static`
    targets (the orchestrator's exporter) as they are."""
    interval = duration(interval_seconds)
    config = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": duration(min(interval_seconds, MAX_SCRAPE_TIMEOUT_SECONDS)),
            "evaluation_interval": interval,
            "external_labels": {"testbed_run": plan.run_id},
        },
        "scrape_configs": [
            agents_scrape_config(plan, host=host, refresh_seconds=refresh_seconds),
            orchestrator_scrape_config(static),
        ],
    }
    header = (
        f"# Rendered by the testbed for run {plan.run_id}; the agents are the swarm "
        "tasks labelled with the run id (dockerswarm_sd_configs).\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False)


def _keep(source: str, regex: str) -> dict[str, Any]:
    return {"source_labels": [source], "regex": regex, "action": "keep"}


def _set(target: str, value: str) -> dict[str, Any]:
    return {"target_label": target, "replacement": value, "action": "replace"}


def _copy(source: str, target: str) -> dict[str, Any]:
    return {"source_labels": [source], "target_label": target, "action": "replace"}
