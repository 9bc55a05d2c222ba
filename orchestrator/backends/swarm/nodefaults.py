"""Node faults on a swarm (`faults:` actions drain and stop; orchestrator/faults/).

- drain: the manager sets the node's availability to drain; the swarm shuts
  its tasks down. The run's services are pinned to the node chosen up front,
  so they get no replacement elsewhere: their units are lost to the run.
- stop: the node's engine stopped. The swarm's API cannot stop an engine; in
  the lab (orchestrator/swarm/lab.py) a node is a container on the manager's
  engine, labelled `testbed.lab` and named as the node's hostname, and it is
  `docker stop`ped. A real machine's engine is stopped on that machine (e.g.
  `systemctl stop docker`): refused here, with that hint.

Nodes are named as `docker node ls` shows them: hostname, or ID (or a unique
ID prefix). `check_fault_nodes` refuses, before anything starts, a node the
swarm does not have, the manager the orchestrator talks to (the chain and
Prometheus run there), a node that may carry the DSO, clock, solvers and
recorder (deployment.swarm.services: losing them ends the run), and `stop` of a
node whose engine cannot be stopped from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.backends.base import BackendError
from orchestrator.backends.swarm.nodes import Node, matches, node_of
from orchestrator.errors import SpecError
from orchestrator.spec import Spec
from orchestrator.spec.faults import NODE_ACTIONS
from orchestrator.spec.validate import did_you_mean

LABEL_LAB = "testbed.lab"  # the lab's node containers (orchestrator/swarm/nodes.py)
STOP_SECONDS = 5  # docker stop's grace period for a node container


def named(nodes: list[Node], name: str) -> list[Node]:
    """The nodes `name` names: by hostname, else by ID or ID prefix."""
    return [n for n in nodes if n.hostname == name] or [n for n in nodes if n.id.startswith(name)]


def fault_node_problems(
    spec: Spec, nodes: list[Node], manager_id: str, lab_nodes: set[str]
) -> list[str]:
    """`file:line:col: faults[i].node: ...` for every node fault the run cannot do
    (pure: the swarm's nodes, the manager's ID, the lab's node container names)."""
    problems: list[str] = []
    services = list(spec.deployment.swarm.services)
    listing = ", ".join(
        sorted(n.hostname + ("" if n.state == "ready" else f" ({n.state})") for n in nodes)
    )
    for i, fault in enumerate(spec.faults):
        if fault.action not in NODE_ACTIONS or fault.node is None:
            continue
        where, name = spec.where(f"faults[{i}].node"), fault.node
        found = named(nodes, name)
        if len(found) != 1:
            hint = did_you_mean(name, [n.hostname for n in nodes])
            why = f"no swarm node {name!r}" if not found else f"{name!r} names more than one node"
            also = f" (did you mean {hint!r}?)" if hint and not found else ""
            problems.append(f"{where}: {why}{also}; the swarm's nodes: {listing}")
            continue
        node, ends = found[0], f"{fault.action} of it would end the run"
        if node.id == manager_id:
            problems.append(
                f"{where}: {node.hostname} is the manager the orchestrator talks to (the chain "
                f"and Prometheus run there): {ends}; name a node that carries prosumer hosts"
            )
        elif matches(node, services):
            problems.append(
                f"{where}: {node.hostname} may carry the DSO, clock, solvers or recorder (it "
                f"matches deployment.swarm.services {services}): {ends}"
            )
        elif fault.action == "stop" and node.hostname not in lab_nodes:
            problems.append(
                f"{where}: {node.hostname}: only a lab node's engine can be stopped from here "
                f"(a container labelled {LABEL_LAB} on the manager's engine); stop the engine "
                "on that machine instead (systemctl stop docker), or use action drain"
            )
    return problems


def check_fault_nodes(spec: Spec) -> None:
    """Refuse (SpecError) the spec's node faults this swarm cannot do; asks the
    manager only when the spec has node faults."""
    if not any(f.action in NODE_ACTIONS for f in spec.faults):
        return
    from orchestrator.backends.swarm.cluster import connect_manager

    client = connect_manager(spec.deployment.swarm.manager)
    try:
        nodes = [node_of(n) for n in client.api.nodes()]
        manager_id = str((client.info().get("Swarm") or {}).get("NodeID") or "")
        labelled = client.api.containers(all=True, filters={"label": LABEL_LAB})
        lab_nodes = {name.lstrip("/") for c in labelled for name in c.get("Names") or ()}
    finally:
        client.close()
    if problems := fault_node_problems(spec, nodes, manager_id, lab_nodes):
        raise SpecError(problems)


def find_node(client: Any, name: str) -> tuple[str, str]:
    """(node id, hostname) of the swarm node `name` (hostname, ID or ID prefix)."""
    nodes = client.api.nodes()
    hostname = {n["ID"]: n.get("Description", {}).get("Hostname", "") for n in nodes}
    found = [i for i, host in hostname.items() if host == name] or [
        i for i in hostname if i.startswith(name)
    ]
    if len(found) != 1:
        known = ", ".join(sorted(h or i for i, h in hostname.items()))
        why = "no" if not found else "more than one"
        raise BackendError(f"{why} swarm node {name!r} (nodes: {known})")
    return found[0], hostname[found[0]] or found[0]


def drain(client: Any, name: str) -> tuple[str, str]:
    """Drain node `name`; (node id, hostname)."""
    node_id, hostname = find_node(client, name)
    node = client.api.inspect_node(node_id)
    spec = {**node["Spec"], "Availability": "drain"}
    client.api.update_node(node_id, node["Version"]["Index"], spec)
    return node_id, hostname


def stop_engine(client: Any, name: str) -> tuple[str, str]:
    """Stop the engine of lab node `name` (its container); (node id, hostname)."""
    node_id, hostname = find_node(client, name)
    labelled = client.containers.list(filters={"label": LABEL_LAB})
    containers = [c for c in labelled if c.name == hostname]
    if not containers:
        raise BackendError(
            f"node {hostname}: only a lab node's engine can be stopped from here (a container "
            f"labelled {LABEL_LAB} on the manager's engine); stop the engine on that machine "
            "instead (systemctl stop docker)"
        )
    containers[0].stop(timeout=STOP_SECONDS)
    return node_id, hostname


class NodeFaults:
    """The swarm backend's drain_node/stop_node: the units pinned to the node
    are lost with it, reported exited with `lost_node` (its hostname)."""

    client: Any
    _records: dict[str, Any]  # tasks.py's Record by unit

    def _finish(self, record: Any, code: int | None, note: str | None) -> None:
        raise NotImplementedError  # the backend's

    def drain_node(self, node: str) -> tuple[str, ...]:
        return self._lose_node(node, drain, "drained")

    def stop_node(self, node: str) -> tuple[str, ...]:
        return self._lose_node(node, stop_engine, "stopped")

    def _lose_node(
        self, node: str, action: Callable[[Any, str], tuple[str, str]], what: str
    ) -> tuple[str, ...]:
        node_id, hostname = action(self.client, node)
        lost = [n for n, r in self._records.items() if r.node.id == node_id and not r.done]
        for name in lost:
            record = self._records[name]
            record.lost_node = hostname
            self._finish(record, None, f"its node {hostname} was {what} by a fault")
        return tuple(lost)
