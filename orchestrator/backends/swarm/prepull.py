"""The agent image onto every node while the chain starts.

A node pulls a service's image when its first task lands there: on a fresh
swarm the prosumer hosts' tasks would wait for the agent image (17 s for both
lab workers) after the chain, the contract and the other agents are up. Right
after the images are pushed, `prepull` creates a global service running `true`
once (restart condition none) in the agent image: every node pulls it at once,
while the orchestrator starts the chain and deploys the contract. A task that
needs the image while the pull goes on joins that download (the engine shares it).
The service carries the run's labels, so cleanup and `testbed clean` remove it,
and the swarm then removes its tasks and their exited containers on every node.
Not a global *job*: Docker 20.10 keeps a removed job's tasks in the swarm's store
and their containers on the nodes for good (moby/moby#42789), one more per node
with every run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.backends.docker.engine import LABEL_ROLE, LABEL_UNIT
from orchestrator.backends.swarm.services import service_name

UNIT = "prepull"


def prepull(client: Any, run_id: str, image: str, labels: Mapping[str, str]) -> str:
    """Start the pull of `image` on every node; returns the job's service id."""
    tagged = {**labels, LABEL_UNIT: UNIT, LABEL_ROLE: UNIT}
    created = client.api.create_service(
        {
            "ContainerSpec": {"Image": image, "Args": ["true"]},  # labelled: the service
            "RestartPolicy": {"Condition": "none"},
        },
        name=service_name(run_id, UNIT),
        labels=tagged,
        mode={"Global": {}},  # not GlobalJob: see the module's docstring
    )
    return str(created["ID"])


def pulled(client: Any, service_id: str) -> dict[str, str]:
    """{node id: state of its pull job} (complete once the node has the image)."""
    return {
        str(t.get("NodeID")): str(t.get("Status", {}).get("State"))
        for t in client.api.tasks(filters={"service": service_id})
    }
