"""The swarm backend: every unit of a run is a service on a Docker Swarm.

One service per unit (replicas 1, restart condition none: a crash ends the run
as on the other backends; a task that never ran gets one more, unitstatus.py),
on an attachable overlay network of the run where agents reach each other by
unit name (dnsrr endpoints: no IPVS needed); the network is internal and
the services that publish a port join the run's edge network too (network.py).
The containers are the docker
backend's (containers.py: image, command, mounts, profile limits, netem,
labels); what the swarm adds is in services.py. Each
service is pinned to a node chosen up front (nodes.py), its ports published
in host mode there, picked on that node (ports.py). The chain and Prometheus
run on the manager. Inputs: each agent's config (keys) its own file
bind-mounted read-only, prometheus.yml a config (files.py); inputs and
outputs come from the results root, shared with every node (NFS).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from orchestrator.backends.base import (
    STOP_TIMEOUT_SECONDS,
    Backend,
    BackendError,
    Leftover,
    Placement,
    Unit,
    UnitStatus,
    backend_state_root,
    settle_starts,
    state_root,
)
from orchestrator.backends.docker.containers import Mount, unit_spec
from orchestrator.backends.docker.engine import (
    DOCKER_SOCKET,
    LABEL_METRICS_PORT,
    LABEL_ORCHESTRATOR,
    LABEL_ROLE,
    LABEL_RUN,
    LABEL_SPEC,
    LABEL_UNIT,
    orchestrator_alive,
    orchestrator_label,
)
from orchestrator.backends.swarm import cluster, metricsgw
from orchestrator.backends.swarm.files import create_files, inputs_of
from orchestrator.backends.swarm.gateway import gateway_container
from orchestrator.backends.swarm.logs import ServiceLogFollower
from orchestrator.backends.swarm.network import RunNetworks, create_run_networks, edge_name
from orchestrator.backends.swarm.nodefaults import NodeFaults, check_fault_nodes
from orchestrator.backends.swarm.ports import NodePorts, manager_is_here
from orchestrator.backends.swarm.prepull import prepull
from orchestrator.backends.swarm.resources import (
    LABEL_SWARM_STATE,
    remove_swarm_resources,
    swarm_resources,
)
from orchestrator.backends.swarm.services import ServiceSpec, service_name
from orchestrator.backends.swarm.tasks import Listing, Record
from orchestrator.backends.swarm.unitstatus import ServiceStatus
from orchestrator.hosts import PROFILES, Netem
from orchestrator.placement import local_out_dirs
from orchestrator.plan import Plan
from orchestrator.results.bundle import Bundle
from orchestrator.spec import Spec
from orchestrator.spec.model import DeploymentConfig

START_PARALLELISM = 4  # services created at once
API_PARALLELISM = 8  # services scaled down, logs saved at once (calls to the manager)
POLL_SECONDS = 0.2
STOP_MARGIN_SECONDS = 20.0  # the manager's own round trips to the nodes
LOGS_SECONDS = 5.0  # for every log stream to end after its service is removed


class SwarmBackend(ServiceStatus, NodeFaults, NodePorts, Backend):
    name = "swarm"

    def __init__(
        self, run_id: str, root: Path | None = None, deployment: DeploymentConfig | None = None
    ) -> None:
        super().__init__(run_id, root)
        self.deployment = deployment or DeploymentConfig(backend="swarm")
        self.client: Any = None
        self.plan: Plan | None = None
        self.bundle: Path | None = None
        self.layout: cluster.Layout | None = None
        self.images: dict[str, str] = {}
        self.networks: RunNetworks | None = None  # the run's (internal) and its edge network
        self.registry: Any = None  # orchestrator.swarm.registry.Registry, if this run started one
        self._registry_address: str | None = None  # where the nodes pull from (None: no registry)
        self._orchestrator = orchestrator_label()
        self._state = str(self.root.resolve())
        self._records: dict[str, Record] = {}
        self._outs: dict[str, Path] = {}
        self._pool = ThreadPoolExecutor(START_PARALLELISM, thread_name_prefix="swarm-start")
        self._netem_units: frozenset[str] = frozenset()
        self._listing = Listing(None)  # the manager's tasks (prepare connects)

    @classmethod
    def create(cls, run_id: str, spec: Spec) -> Backend:
        check_fault_nodes(spec)  # before anything starts: nodefaults.py
        return cls(run_id, deployment=spec.deployment)

    # -- prepare ---------------------------------------------------------------
    def prepare(self, plan: Plan, bundle: Path) -> Placement:
        self.plan = plan
        self.bundle = bundle.resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._write_state()
        self.client = cluster.connect_manager(self.deployment.swarm.manager)
        self._listing = Listing(self.client, self.run_id)
        self.layout = cluster.plan_layout(self.client, plan, self.deployment)
        images = cluster.images_for_nodes(
            self.client, self.deployment.swarm.registry, self.layout, self.state_dir, self.announce
        )
        self.images, self.registry, self._registry_address = (
            images.refs,
            images.started,
            images.registry,
        )
        self._write_state()
        self.networks = create_run_networks(self.client, self.run_id, self._labels())
        if self._registry_address is not None:  # fresh nodes pull while the chain starts
            prepull(self.client, self.run_id, self.images["agent"], self._labels())
        here = manager_is_here(self.client, cluster.manager_url(self.deployment.swarm.manager))
        self._pick_ports(plan, local_manager=here)  # on the nodes, sharing the bundle with us
        self._start_metrics_gateway()  # on the manager, while the chain starts
        self._outs = local_out_dirs(plan, self.bundle)
        self._write_info(self.networks)
        return self.layout.placement(plan, self.bundle)

    def _labels(self) -> dict[str, str]:
        assert self.plan is not None
        return {
            LABEL_RUN: self.run_id,
            LABEL_SPEC: self.plan.spec_name,
            LABEL_ORCHESTRATOR: self._orchestrator,
            LABEL_SWARM_STATE: self._state,
        }

    def _write_state(self) -> None:
        registry = self.registry.as_dict() if self.registry is not None else None
        state = {
            "run_id": self.run_id,
            "orchestrator": self._orchestrator,
            "bundle": str(self.bundle),  # `testbed clean` marks it killed
            "manager": self.deployment.swarm.manager,
            "registry": registry,  # started for this run: `testbed clean` stops it
        }
        (self.state_dir / "run.json").write_text(json.dumps(state) + "\n")

    def _write_info(self, networks: RunNetworks) -> None:
        assert self.plan is not None and self.bundle is not None and self.layout is not None
        info = {
            "manager": cluster.manager_url(self.deployment.swarm.manager),
            "images": self.images,
            "registry": self._registry_address,
            "network": {"name": f"testbed-{self.run_id}", "subnet": networks.subnet},
            "edge_network": {"name": edge_name(self.run_id), "subnet": networks.edge_subnet},
            "nodes": {n.hostname: n.address for n in self.layout.nodes},
            "placement": {unit: node.hostname for unit, node in self.layout.units.items()},
            "hosts": {
                name: {
                    "profile": host.profile.name,
                    "memory_bytes": host.profile.memory_bytes,
                    "nano_cpus": host.profile.nano_cpus,
                    "netem": host.netem.describe(),
                    "node": self.layout.node_of(name).hostname,
                }
                for name, host in self.plan.hosts.items()
            },
        }
        (self.bundle / "swarm.json").write_text(json.dumps(info, indent=2) + "\n")

    def orchestrator_host(self) -> str:
        """This machine's address towards the manager: the nodes reach it there."""
        assert self.layout is not None, "prepare() first"
        return cluster.address_towards(self.layout.manager.address)

    # -- start -----------------------------------------------------------------
    def start(self, unit: Unit) -> None:
        if self.layout is None or self.bundle is None or self.plan is None:
            raise BackendError("swarm backend: prepare() was not called")
        if unit.name in self._records:
            raise BackendError(f"{unit.name}: already started in run {self.run_id}")
        self._node_checked(self.layout.node_of(unit.name))  # its node's check (ports.py)
        spec = self.service_spec(unit)
        record = Record(spec, unit.log_file, self.layout.node_of(unit.name))
        record.future = self._pool.submit(self._create, record)
        self._records[unit.name] = record
        if unit.role == "clock":  # the fault injector's way to its sockets (gateway.py)
            self._pool.submit(self._create, self._gateway(record))

    def service_spec(self, unit: Unit) -> ServiceSpec:
        assert self.layout is not None and self.bundle is not None and self.plan is not None
        host = self.plan.hosts.get(unit.name)
        container = unit_spec(
            unit,
            "",
            config_dir=Bundle(self.bundle).config_dir,
            out_dir=self._outs.get(unit.name),
            profile=host.profile if host else PROFILES["none"],
            netem=host.netem if host else Netem(),
        )
        if unit.name in self._netem_units:
            container = dataclasses.replace(container, fault_netem=True)
        labels = container.labels(self.run_id, self.plan.spec_name, self._orchestrator)
        labels[LABEL_SWARM_STATE] = self._state
        if unit.name in self.layout.metrics_ports:  # Prometheus finds the agents by it
            labels[LABEL_METRICS_PORT] = str(self.layout.metrics_ports[unit.name])
        if unit.role == "prometheus":  # it asks the manager for the run's tasks
            socket = Mount(DOCKER_SOCKET, DOCKER_SOCKET)
            container = dataclasses.replace(container, mounts=(*container.mounts, socket))
        container, inputs = inputs_of(container)  # its own config file; prometheus.yml a config
        return ServiceSpec(
            container,
            self.images[container.image_kind],
            labels,
            constraints=self.layout.constraints(unit.name),
            ports=self.layout.ports(unit.name, container),
            stop_grace_seconds=STOP_TIMEOUT_SECONDS,
            files=inputs,
        )

    def _gateway(self, clock: Record) -> Record:
        assert self.layout is not None
        ports = self.layout.clock_ports
        container = gateway_container("clock", ports)
        labels = {k: v for k, v in clock.spec.labels.items() if k != LABEL_METRICS_PORT}
        labels.update({"testbed.unit": container.unit, "testbed.role": "gateway"})
        spec = ServiceSpec(
            container,
            self.images["agent"],
            labels,
            constraints=clock.spec.constraints,
            ports={p: p for p in ports},
        )
        return Record(spec, clock.log_file.with_name(f"{container.unit}.log"), clock.node)

    def _start_metrics_gateway(self) -> None:
        """The prosumer hosts' /metrics through one service on the manager (metricsgw.py)."""
        assert self.layout is not None and self.bundle is not None
        units = self.layout.gateway_units()
        if not units:
            return
        container = metricsgw.gateway_container(self.layout.gateway_port, units)
        labels = {**self._labels(), LABEL_UNIT: container.unit, LABEL_ROLE: container.role}
        spec = ServiceSpec(
            container,
            self.images["agent"],
            labels,
            constraints=(f"node.id=={self.layout.manager.id}",),
            ports=dict(container.published),
        )
        log = Bundle(self.bundle).log_file(container.unit)
        record = Record(spec, log, self.layout.manager)
        record.future = self._pool.submit(self._create, record)
        self._records[container.unit] = record

    def _create(self, record: Record) -> str:
        import docker.errors

        assert self.networks is not None
        spec, net = record.spec, self.networks
        try:
            files = create_files(self.client, self.run_id, spec.unit, spec.files, self._labels())
            template = spec.task_template(
                self.run_id, net.id, files, edge_id=net.edge_id, subnet=net.subnet
            )
            created = self.client.api.create_service(
                template,
                name=service_name(self.run_id, spec.unit),
                labels=dict(spec.labels),
                mode={"replicated": {"Replicas": 1}},
                endpoint_spec=spec.endpoint(),
            )
        except docker.errors.APIError as exc:
            record.start_error = str(exc)
            raise BackendError(f"{spec.unit}: cannot create its service: {exc}") from exc
        record.service_id = str(created["ID"])
        # started once the task has a container (status): see logs.py
        record.follower = ServiceLogFollower(self.client, record.service_id, record.log_file)
        return record.service_id

    def _settle(self, names: Sequence[str] | None = None, *, raise_errors: bool = True) -> None:
        """Wait for queued starts; the first failure is raised (after all settled)."""
        settle_starts(self._records, names, raise_errors=raise_errors)

    # -- stop ------------------------------------------------------------------
    def stop(
        self, names: Sequence[str], timeout: float = STOP_TIMEOUT_SECONDS
    ) -> dict[str, int | None]:
        """Scale the services to 0: the swarm sends SIGTERM, and SIGKILL after
        their stop grace period."""
        import docker.errors

        self._settle(raise_errors=False)  # a failed start is stopped as what it is
        records = {n: self._records[n] for n in names if n in self._records}
        running = {n for n, s in self.status().items() if n in records and s.state == "running"}

        def scale_down(name: str) -> None:
            with contextlib.suppress(docker.errors.APIError):
                self._scale(str(records[name].service_id), 0)

        with ThreadPoolExecutor(API_PARALLELISM, thread_name_prefix="swarm-stop") as pool:
            list(pool.map(scale_down, sorted(running)))
        deadline = time.monotonic() + timeout + STOP_MARGIN_SECONDS
        while running and time.monotonic() < deadline:
            status = self.status()
            running = {n for n in running if status[n].state == "running"}
            if running:
                time.sleep(POLL_SECONDS)
        # log streams end when the services go (cleanup), not when their tasks do
        return {n: None if n in running else r.exit_code for n, r in records.items()}

    def _scale(self, service_id: str, replicas: int) -> None:
        import docker.types

        self._listing.invalidate()  # its tasks change now
        info = self.client.api.inspect_service(service_id)
        self.client.api.update_service(
            service_id,
            info["Version"]["Index"],
            mode=docker.types.ServiceMode("replicated", replicas=replicas),
            fetch_current_spec=True,
        )

    # -- faults: what a manager can do to a service ----------------------------
    def kill(self, name: str) -> None:
        """Stop unit `name` now: its service scaled to 0 (the manager cannot
        signal a container on another node; the task gets SIGTERM, then SIGKILL
        after the stop grace period)."""
        self._settle(raise_errors=False)
        record = self._records.get(name)
        if record is None or record.service_id is None:
            raise BackendError(f"{name}: no service in run {self.run_id}")
        self._scale(record.service_id, 0)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS + STOP_MARGIN_SECONDS
        while self.status()[name].state == "running":
            if time.monotonic() > deadline:
                raise BackendError(f"{name}: its task did not stop")
            time.sleep(POLL_SECONDS)

    def restart(self, name: str) -> None:
        """A new task of the same service (scaled back to 1), on the same node;
        the service's log stream goes on with it."""
        if self.status().get(name, UnitStatus(name, "missing")).state == "running":
            self.kill(name)
        record = self._records[name]
        assert record.service_id is not None
        self._scale(record.service_id, 1)
        record.done, record.exit_code, record.seen_task = False, None, False
        record.reason = None
        if record.follower is not None:  # the old task's stream ends here; a new one follows
            record.follower.saved = True
            record.follower = ServiceLogFollower(self.client, record.service_id, record.log_file)

    def enable_faults(self, netem_units: Sequence[str]) -> None:
        self._netem_units = frozenset(netem_units)

    # -- cleanup ---------------------------------------------------------------
    def cleanup(self) -> None:
        """Remove every service, network, secret and config labelled with this run."""
        try:
            self._settle(raise_errors=False)
            if self.client is not None:
                live = [n for n, r in self._records.items() if r.service_id]
                self.stop(live, timeout=5)
                self._save_logs()
                found = swarm_resources(self.client, self.run_id).get(self.run_id)
                report = remove_swarm_resources(self.client, found) if found else []
                self._wait_tasks_gone()
                self._finish_logs()
                failed = [f"{i.what}: {i.action}" for i in report if i.action.startswith("failed")]
                if failed:
                    raise BackendError(f"run {self.run_id}: cleanup: " + "; ".join(failed))
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
            if self.registry is not None:
                self.registry.stop()
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def _wait_tasks_gone(self, seconds: float = 30.0) -> None:
        """A removed service's task containers stop after it (bounded; inspects none)."""
        deadline, label = time.monotonic() + seconds, {"label": f"{LABEL_RUN}={self.run_id}"}
        while self.client.api.containers(all=True, filters=label) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)  # then `testbed clean` finds what is still there

    def _save_logs(self) -> None:
        followers = [r.follower for r in self._records.values() if r.follower is not None]
        with ThreadPoolExecutor(API_PARALLELISM, thread_name_prefix="swarm-logs") as pool:
            list(pool.map(lambda f: f.save(), followers))

    def _finish_logs(self) -> None:
        """Let the log streams of the removed services end (bounded in all)."""
        deadline = time.monotonic() + LOGS_SECONDS
        for record in self._records.values():
            if record.follower is not None:
                record.follower.finish(max(0.0, deadline - time.monotonic()))

    @classmethod
    def clean_leftovers(cls, root: Path | None = None) -> list[Leftover]:
        """Services, networks, secrets and configs of this state directory's runs
        whose orchestrator is gone (on the manager each run named), and their state."""
        report: list[Leftover] = []
        state = str((root or state_root()).resolve())
        base = backend_state_root(cls.name, root)
        runs = sorted(base.iterdir()) if base.is_dir() else []
        managers: set[str | None] = {None}
        for run in runs:
            with contextlib.suppress(OSError, ValueError):
                managers.add(json.loads((run / "run.json").read_text()).get("manager"))
        for manager in managers:
            report += cluster.clean_dead_runs(manager, state)
        for run in runs:
            try:
                saved = json.loads((run / "run.json").read_text())
            except (OSError, ValueError):
                saved = {}
            if run.is_dir() and not orchestrator_alive(saved.get("orchestrator")):
                report += cluster.stop_registry(run.name, saved.get("registry"))
                shutil.rmtree(run, ignore_errors=True)
                report.append(Leftover(run.name, str(run), "removed state"))
        return report
