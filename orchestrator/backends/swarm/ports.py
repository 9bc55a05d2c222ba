"""Published ports picked on the nodes that publish them; the shared results
folder checked on every node the run uses. Both before anything starts.

A swarm run publishes ports in host mode on the node that runs each task: the
chain's JSON-RPC and Prometheus on the manager, the clock gateway's two ZeroMQ
ports on the clock's node, every agent's metrics port on its node (the prosumer
hosts publish none: they answer through the metrics gateway, whose port is on
the manager, at HOST_METRICS_PORT inside their own containers). They must be
free on *that* node, which need not be this machine (an orchestrator on a
laptop, the manager elsewhere). So one short job per node (a one-task service
that runs once, pinned there, on the node's host network, in the agent image)
binds as many sockets as the node will publish to free ports below the node's ephemeral range
(which outgoing connections draw their source ports from: an image pull's
connections could take one meanwhile), writes them into the run's bundle and
exits; the services then publish exactly those.

The same job checks the results root: it mounts the bundle at its own path, as
the agents' output folders and Prometheus' data are mounted, reads a token this
machine wrote there and writes its answer next to it. The run stops before
anything starts, naming the node and the path, when the bundle is not the same
shared folder there (NFS on a cluster, the lab's bind mount on one machine):
missing on the node (the engine rejects the mount), another folder at that path
(the token differs), or the node's writes not visible here (no answer arrives).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.backends.base import BackendError, PrometheusSite
from orchestrator.backends.docker.engine import LABEL_ROLE, LABEL_UNIT
from orchestrator.backends.swarm.cluster import Layout
from orchestrator.backends.swarm.nodes import Node
from orchestrator.backends.swarm.services import service_name
from orchestrator.plan import Plan

UNIT = "probe"
PROBE_DIR = ".swarm-probe"  # in the bundle, removed once read
PROBE_TIMEOUT_SECONDS = 300.0  # a fresh node pulls the agent image first
POLL_SECONDS = 0.25
DONE = frozenset({"complete", "failed", "rejected", "shutdown", "orphaned", "remove"})
CHAIN, PROMETHEUS, CLOCK_PUB, CLOCK_PULL = "chain", "prometheus", "clock-pub", "clock-pull"
GATEWAY = "metrics-gateway"
HOST_METRICS_PORT = 9100  # inside a host's container, published nowhere
EXIT_NO_TOKEN, EXIT_OTHER_FOLDER = 3, 4
PROMETHEUS_DATA = "metrics/prometheus-data"  # in the bundle (shared): its snapshot is read here

TOKEN_CHECK = """\
import json, os, socket, sys
token_file, answer, expected, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
try:
    with open(token_file) as f:
        found = f.read().strip()
except OSError as exc:
    print(f'cannot read {token_file}: {exc}', flush=True)
    sys.exit(3)
if found != expected:
    print(f'{token_file} holds another token: not the folder the orchestrator wrote', flush=True)
    sys.exit(4)
"""
ANSWER = """\
ports = ports_here(count)
with open(answer + '.tmp', 'w') as f:
    json.dump({'ports': ports, 'hostname': socket.gethostname()}, f)
os.replace(answer + '.tmp', answer)
"""


def ports_here(count: int) -> list[int]:
    """`count` free ports on this machine, below its ephemeral range (no outgoing
    connection takes them as its source port), at random; the ephemeral range
    only if need be. The node's job runs this very function (SCRIPT)."""
    import random
    import socket

    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    candidates = list(range(10000 if low > 12000 else 1024, low))
    random.shuffle(candidates)
    held: list[socket.socket] = []
    try:
        for port in [*candidates, *[0] * count]:  # port 0: the ephemeral range
            if len(held) == count:
                break
            sock = socket.socket()
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
        return [int(s.getsockname()[1]) for s in held]
    finally:
        for sock in held:
            sock.close()


# the job on each node: the token checked, then ports_here's own source picks the ports
SCRIPT = TOKEN_CHECK + inspect.getsource(ports_here) + ANSWER


class NodePorts:
    """The swarm backend's side of this module (mixed into SwarmBackend)."""

    client: Any
    layout: Layout | None
    images: dict[str, str]
    bundle: Path | None
    announce: Callable[[str], None]
    _checks: Checks | None = None

    def _labels(self) -> dict[str, str]:
        raise NotImplementedError  # the backend's

    def _pick_ports(self, plan: Plan, *, local_manager: bool = False) -> None:
        """Ports picked (the nodes that publish some), the shared folder checked
        there; the nodes that publish nothing (prosumer hosts only) are checked
        meanwhile: `_node_checked` waits for a node's check before its first unit."""
        assert self.layout is not None and self.bundle is not None
        image, labels, started = self.images["agent"], self._labels(), time.monotonic()
        self._checks = pick_ports(
            self.client, self.layout, plan, image, self.bundle, labels, local_manager=local_manager
        )
        later = len(self._checks.pending)
        nodes = len(needs(self.layout, plan)) - later
        self.announce(
            f"swarm: {self.bundle} shared and ports free on {nodes} node(s), "
            f"checked in {time.monotonic() - started:.1f} s"
            + (f"; {later} more checked meanwhile" if later else "")
        )

    def _node_checked(self, node: Node) -> None:
        """Until `node`'s check is done (BackendError naming the nodes that failed)."""
        if self._checks is not None:
            self._checks.wait(node.id)

    def prometheus_site(self, bundle: Path) -> PrometheusSite:
        """On the manager, at the port picked there; its data in the shared bundle."""
        assert self.layout is not None, "prepare() first"
        port = self.layout.prometheus_port
        return PrometheusSite(self.layout.manager.address, port, bundle / PROMETHEUS_DATA)


def needs(layout: Layout, plan: Plan) -> dict[str, list[str]]:
    """{node id: the ports it publishes, by key}: the chain and Prometheus on the
    manager, the metrics gateway's there too, the clock gateway's pair on the
    clock's node, every agent's metrics port (keyed by its name) on the agent's
    node but for the hosts behind the metrics gateway (their nodes are in it,
    with no port: the job there checks the shared folder)."""
    wanted: dict[str, list[str]] = {layout.manager.id: [CHAIN, PROMETHEUS, GATEWAY]}
    clock = layout.node_of("clock").id
    wanted.setdefault(clock, []).extend([CLOCK_PUB, CLOCK_PULL])
    for agent in plan.agents:
        ports = wanted.setdefault(layout.node_of(agent.name).id, [])
        if agent.name not in layout.behind_gateway:  # its node is checked all the same
            ports.append(agent.name)
    return wanted


def assign(layout: Layout, plan: Plan, picked: Mapping[str, Sequence[int]]) -> None:
    """Set the layout's ports from {node id: ports picked there} (in needs() order)."""
    by_key: dict[str, int] = {}
    for node_id, keys in needs(layout, plan).items():
        ports = list(picked[node_id])
        if len(ports) < len(keys):
            raise BackendError(f"swarm: node {node_id} offered {len(ports)} of {len(keys)} ports")
        by_key.update(zip(keys, ports, strict=False))
    layout.chain_port, layout.prometheus_port = by_key[CHAIN], by_key[PROMETHEUS]
    layout.clock_ports = (by_key[CLOCK_PUB], by_key[CLOCK_PULL])
    layout.gateway_port = by_key[GATEWAY]
    layout.metrics_ports = {a.name: by_key.get(a.name, HOST_METRICS_PORT) for a in plan.agents}


class Checks:
    """The checks of the nodes that publish no port, finishing in a thread while
    the chain and the other tiers start."""

    def __init__(self, run: Callable[[], list[str]], pending: Sequence[str]) -> None:
        self.pending = frozenset(pending)
        self.problems: list[str] = []
        self._thread = threading.Thread(target=self._run, args=(run,), name="swarm-node-checks")
        self._thread.daemon = True  # cleanup removes its jobs (labelled) if the run ends first
        if self.pending:
            self._thread.start()

    def _run(self, run: Callable[[], list[str]]) -> None:
        try:
            self.problems = run()
        except Exception as exc:  # the manager's API: the run stops at the node's first unit
            self.problems = [f"swarm: the check of the nodes failed: {exc}"]

    def wait(self, node_id: str) -> None:
        if node_id not in self.pending:
            return
        self._thread.join()
        if self.problems:
            raise BackendError("\n".join(self.problems))


def pick_ports(
    client: Any,
    layout: Layout,
    plan: Plan,
    image: str,
    bundle: Path,
    labels: Mapping[str, str],
    *,
    local_manager: bool = False,
) -> Checks:
    """Probe every node the run uses (ports free there, the bundle shared with
    this machine) and set the layout's ports; BackendError naming every node
    whose check failed, and the path, when the bundle is not shared. The manager
    that is this machine's engine (`local_manager`) picks its ports here: its
    bind mounts are this machine's folders. The nodes that publish no port go on
    being checked in the returned Checks."""
    wanted = needs(layout, plan)
    nodes = {n.id: n for n in layout.nodes}
    folder = bundle / PROBE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    (folder / "token").write_text(token + "\n")
    picked: dict[str, list[int]] = {}
    if local_manager:
        picked[layout.manager.id] = ports_here(len(wanted[layout.manager.id]))
    probed = [n for n in wanted if n not in picked]
    jobs: dict[str, str] = {}
    try:
        for node_id in probed:
            count = len(wanted[node_id])
            jobs[node_id] = _create_job(
                client, plan.run_id, image, bundle, folder, token, nodes[node_id], count, labels
            )
    except BaseException:
        _remove(client, jobs, folder)
        raise
    later = [n for n in probed if not wanted[n]]  # nothing to pick: checked meanwhile
    now = {n: jobs[n] for n in probed if wanted[n]}

    def check(which: Mapping[str, str]) -> tuple[dict[str, list[int]], list[str]]:
        answers, problems = {}, []
        tasks = _wait_done(client, which, nodes)
        for node_id in which:  # every node's problem, one line each
            try:
                answers[node_id] = _answer(
                    client, jobs[node_id], tasks[node_id], nodes[node_id], folder, bundle
                )
            except BackendError as exc:
                problems.append(str(exc))
        return answers, problems

    def rest() -> list[str]:
        try:
            return check({n: jobs[n] for n in later})[1]
        finally:
            _remove(client, jobs, folder)

    try:
        answers, problems = check(now)
        if problems and later:  # one line for every node that fails, as when all are waited for
            problems += check({n: jobs[n] for n in later})[1]
        if problems:
            raise BackendError("\n".join(problems))
    except BaseException:
        _remove(client, jobs, folder)
        raise
    picked.update(answers)
    picked.update({n: [] for n in later})
    assign(layout, plan, picked)
    if not later:
        _remove(client, jobs, folder)
    return Checks(rest, later)


def _remove(client: Any, jobs: Mapping[str, str], folder: Path) -> None:
    for job in jobs.values():
        with contextlib.suppress(Exception):  # labelled: cleanup removes what is left
            client.api.remove_service(job)
    shutil.rmtree(folder, ignore_errors=True)


def manager_is_here(client: Any, url: str) -> bool:
    """Whether the manager the orchestrator talks to is this machine's engine (its
    socket, and the engine's name is this machine's): its ports are this machine's."""
    if not url.startswith("unix://"):
        return False
    try:
        return bool(client.info().get("Name") == socket.gethostname())
    except Exception:  # the API's errors: ask its node, as any other
        return False


def _create_job(
    client: Any,
    run_id: str,
    image: str,
    bundle: Path,
    folder: Path,
    token: str,
    node: Node,
    count: int,
    labels: Mapping[str, str],
) -> str:
    answer = folder / f"{node.id}.json"
    args = ["python3", "-c", SCRIPT, str(folder / "token"), str(answer), token, str(count)]
    created = client.api.create_service(
        {
            "ContainerSpec": {
                "Image": image,
                "Args": args,
                "Mounts": [{"Type": "bind", "Source": str(bundle), "Target": str(bundle)}],
            },
            "RestartPolicy": {"Condition": "none"},
            "Placement": {"Constraints": [f"node.id=={node.id}"]},
            "Networks": [{"Target": "host"}],  # the node's own ports
        },
        name=service_name(run_id, f"{UNIT}-{node.id[:12]}"),
        labels={**labels, LABEL_UNIT: UNIT, LABEL_ROLE: UNIT},
        # one task, run once; not a ReplicatedJob, whose tasks and containers Docker
        # 20.10 keeps after the service is removed (moby/moby#42789; prepull.py)
        mode={"Replicated": {"Replicas": 1}},
    )
    return str(created["ID"])


def _wait_done(
    client: Any, jobs: Mapping[str, str], nodes: Mapping[str, Node]
) -> dict[str, dict[str, Any]]:
    """{node id: its job's finished task}; BackendError naming the nodes whose
    job did not finish in time."""
    deadline = time.monotonic() + PROBE_TIMEOUT_SECONDS
    latest: dict[str, dict[str, Any]] = {}
    while True:
        for node_id, job in jobs.items():
            tasks = client.api.tasks(filters={"service": job})
            if tasks:
                latest[node_id] = max(tasks, key=lambda t: int(t["Version"]["Index"]))
            elif node_id in latest:  # the job is gone (the run's cleanup): no answer
                latest[node_id] = {"Status": {"State": "remove", "Err": "its check was removed"}}
        pending = [n for n in jobs if _state(latest.get(n)) not in DONE]
        if not pending:
            return latest
        if time.monotonic() > deadline:
            where = ", ".join(
                f"{nodes[n].hostname} ({_state(latest.get(n)) or 'no task'})" for n in pending
            )
            raise BackendError(
                f"swarm: the check of the results folder and ports did not finish within "
                f"{PROBE_TIMEOUT_SECONDS:g} s on node(s) {where}"
            )
        time.sleep(POLL_SECONDS)


def _state(task: Mapping[str, Any] | None) -> str:
    return str((task or {}).get("Status", {}).get("State", ""))


def _answer(
    client: Any, job: str, task: Mapping[str, Any], node: Node, folder: Path, bundle: Path
) -> list[int]:
    """The ports the node's job picked, or BackendError saying why the bundle is
    not shared with that node."""
    status = task.get("Status", {})
    state, err = _state(task), str(status.get("Err") or "")
    code = (status.get("ContainerStatus") or {}).get("ExitCode")
    shared = "the results root must be the same shared folder (NFS) on every node the run uses"
    where = f"swarm node {node.hostname} ({node.address})"
    if "bind source path does not exist" in err:
        raise BackendError(f"{where} has no {bundle}: {shared}")
    if state != "complete":
        output = _output(client, job)
        if code == EXIT_NO_TOKEN:
            raise BackendError(f"{where} cannot read {folder}/token in {bundle}: {output}")
        if code == EXIT_OTHER_FOLDER:
            raise BackendError(f"{where}: {bundle} there is another folder than here: {shared}")
        detail = err or output or f"exit code {code}"
        raise BackendError(f"{where}: the check of {bundle} and ports failed ({state}): {detail}")
    answer = folder / f"{node.id}.json"
    try:
        ports = json.loads(answer.read_text())["ports"]
    except (OSError, ValueError, KeyError):
        raise BackendError(
            f"{where} wrote into {bundle}, but this machine does not see it: {shared}"
        ) from None
    return [int(p) for p in ports]


def _output(client: Any, job: str) -> str:
    """The job's last lines (best effort: the node streams them through the manager)."""
    try:
        chunks = client.api.service_logs(job, stdout=True, stderr=True, tail=5)
        return b"".join(chunks).decode(errors="replace").strip()
    except Exception:  # the API's errors and the SDK's own: it is only a detail
        return ""
