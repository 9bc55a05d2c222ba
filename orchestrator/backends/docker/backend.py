"""The docker backend: every unit of a run is a container on one Docker Engine.

One container per testbed host (a prosumer host process, with the host's
profile limits and netem), and one each for the chain ("miner"), DSO, clock,
solvers, recorder and Prometheus, on a private bridge network of the run.
Containers reach each other by unit name; the orchestrator reaches them at
fixed addresses on that network (readiness probes, metrics, JSON-RPC).

Starts are asynchronous with bounded parallelism: `start` queues the
container, and `status`/`stop` first wait for queued starts, so the run
lifecycle starts a whole tier at once and then waits for its readiness.
Everything carries the run's labels (engine.py); `cleanup` and `testbed clean`
remove exactly what those name. Images are built (or reused) in `prepare`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

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
from orchestrator.backends.docker import faults
from orchestrator.backends.docker.containers import (
    ContainerSpec,
    container_name,
    docker_placement,
    unit_spec,
)
from orchestrator.backends.docker.engine import (
    LABEL_ORCHESTRATOR,
    LABEL_RUN,
    LABEL_SPEC,
    LABEL_STATE,
    DockerUnavailable,
    clean_dead_runs,
    connect,
    orchestrator_alive,
    orchestrator_label,
    remove_resources,
    run_resources,
)
from orchestrator.backends.docker.logs import LogFollower
from orchestrator.backends.docker.network import FIRST_AGENT_OFFSET, RunNetwork, create_network
from orchestrator.hosts import PROFILES, Netem
from orchestrator.images import KINDS, ensure_images
from orchestrator.placement import local_out_dirs
from orchestrator.plan import Plan
from orchestrator.results.bundle import Bundle

START_PARALLELISM = 4  # containers created and started at once
POLL_SECONDS = 0.1
CHAIN_INDEX = 2


@dataclass
class _Record:
    spec: ContainerSpec
    log_file: Path
    future: Future[str] | None = None
    container_id: str | None = None
    pid: int | None = None
    exit_code: int | None = None
    follower: LogFollower | None = None
    start_error: str | None = None


class DockerBackend(Backend):
    name = "docker"

    def __init__(self, run_id: str, root: Path | None = None) -> None:
        super().__init__(run_id, root)
        self.client: Any = None
        self.plan: Plan | None = None
        self.bundle: Path | None = None
        self.images: Any = None  # images.ImageSet
        self.network: RunNetwork | None = None
        self._orchestrator = orchestrator_label()
        self._state = str(self.root.resolve())
        self._records: dict[str, _Record] = {}
        self._addresses: dict[str, int] = {"chain": CHAIN_INDEX}
        self._outs: dict[str, Path] = {}
        self._pool = ThreadPoolExecutor(START_PARALLELISM, thread_name_prefix="docker-start")
        self._netem_units: frozenset[str] = frozenset()

    # -- prepare ---------------------------------------------------------------
    def prepare(self, plan: Plan, bundle: Path) -> Placement:
        self.plan = plan
        self.bundle = bundle.resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "run.json").write_text(
            json.dumps(
                {
                    "run_id": self.run_id,
                    "orchestrator": self._orchestrator,
                    "bundle": str(self.bundle),  # `testbed clean` marks it killed
                }
            )
            + "\n"
        )
        self.client = connect()
        self.images = ensure_images(
            self.client, say=self.announce, run_id=self.run_id, overrides=image_overrides()
        )
        labels = {
            LABEL_RUN: self.run_id,
            LABEL_SPEC: plan.spec_name,
            LABEL_ORCHESTRATOR: self._orchestrator,
            LABEL_STATE: self._state,
        }
        self.network = create_network(self.client, f"testbed-{self.run_id}", self.run_id, labels)
        for i, agent in enumerate(plan.agents):
            self._addresses[agent.name] = FIRST_AGENT_OFFSET + i
        self._outs = local_out_dirs(plan, self.bundle)
        self._write_info()
        return docker_placement(plan, self.bundle, self.address_of)

    def orchestrator_host(self) -> str:
        """The host's side of the run's network (containers reach the orchestrator there)."""
        assert self.network is not None, "prepare() first"
        return str(self.network.gateway)

    def address_of(self, unit: str) -> str:
        """The unit's fixed address on the run's network (allocated on first use)."""
        assert self.network is not None, "prepare() first"
        if unit not in self._addresses:
            self._addresses[unit] = max(self._addresses.values()) + 1
        return self.network.address(self._addresses[unit])

    def _write_info(self) -> None:
        assert self.plan is not None and self.bundle is not None and self.network is not None
        info = {
            "engine": os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock",
            "images": self.images.as_dict(),
            "network": {"name": self.network.name, "subnet": str(self.network.subnet)},
            "hosts": {
                name: {
                    "profile": host.profile.name,
                    "memory_bytes": host.profile.memory_bytes,
                    "nano_cpus": host.profile.nano_cpus,
                    "netem": host.netem.describe(),
                }
                for name, host in self.plan.hosts.items()
            },
        }
        (self.bundle / "docker.json").write_text(json.dumps(info, indent=2) + "\n")

    # -- start -----------------------------------------------------------------
    def start(self, unit: Unit) -> None:
        if self.network is None or self.bundle is None:
            raise BackendError("docker backend: prepare() was not called")
        if unit.name in self._records:
            raise BackendError(f"{unit.name}: already started in run {self.run_id}")
        host = self.plan.hosts.get(unit.name) if self.plan is not None else None
        spec = unit_spec(
            unit,
            self.address_of(unit.name),
            config_dir=Bundle(self.bundle).config_dir,
            out_dir=self._outs.get(unit.name),
            profile=host.profile if host else PROFILES["none"],
            netem=host.netem if host else Netem(),
        )
        if unit.name in self._netem_units:
            spec = dataclasses.replace(spec, fault_netem=True)
        record = _Record(spec, unit.log_file)
        record.future = self._pool.submit(self._create_and_start, record)
        self._records[unit.name] = record

    def _create_and_start(self, record: _Record) -> str:
        import docker.errors

        assert self.network is not None and self.plan is not None
        spec, api = record.spec, self.client.api
        host_config = api.create_host_config(
            binds=[f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}" for m in spec.mounts],
            mem_limit=spec.profile.memory_bytes,
            memswap_limit=spec.profile.memory_bytes,  # no swap: a board has none
            nano_cpus=spec.profile.nano_cpus,
            cap_add=spec.cap_add or None,
            init=True,  # forwards SIGTERM to the agent, reaps its children
            port_bindings={p: ("127.0.0.1", h) for p, h in spec.published.items()} or None,
        )
        endpoint = api.create_endpoint_config(ipv4_address=spec.address, aliases=[spec.unit])
        try:
            created = api.create_container(
                self.images.of(spec.image_kind),
                command=list(spec.command),
                name=container_name(self.run_id, spec.unit),
                hostname=spec.unit,
                environment=spec.env(self.run_id),
                labels={
                    **spec.labels(self.run_id, self.plan.spec_name, self._orchestrator),
                    LABEL_STATE: self._state,
                },
                host_config=host_config,
                ports=list(spec.published) or None,
                networking_config=api.create_networking_config({self.network.name: endpoint}),
            )
            api.start(created["Id"])
        except docker.errors.APIError as exc:
            record.start_error = str(exc)
            raise BackendError(f"{spec.unit}: cannot start its container: {exc}") from exc
        record.container_id = str(created["Id"])
        record.follower = LogFollower(self.client, record.container_id, record.log_file).start()
        with contextlib.suppress(Exception):
            record.pid = int(api.inspect_container(record.container_id)["State"]["Pid"]) or None
        return record.container_id

    def _settle(self, names: Sequence[str] | None = None, *, raise_errors: bool = True) -> None:
        """Wait for queued starts; the first failure is raised (after all settled)."""
        settle_starts(self._records, names, raise_errors=raise_errors)

    # -- status ----------------------------------------------------------------
    def status(self) -> dict[str, UnitStatus]:
        self._settle()
        states = self._states()
        out: dict[str, UnitStatus] = {}
        for name, record in self._records.items():
            if record.container_id is None:
                out[name] = UnitStatus(name, "missing")
                continue
            state = states.get(record.container_id)
            if state in ("running", "created", "restarting", "paused"):
                out[name] = UnitStatus(name, "running", record.pid, None, self._rss(record))
            elif state is None and record.exit_code is None:
                out[name] = UnitStatus(name, "missing", record.pid)
            else:
                out[name] = UnitStatus(name, "exited", record.pid, self._exit_code(record))
        return out

    def _states(self) -> dict[str, str]:
        listed = self.client.api.containers(
            all=True, filters={"label": f"{LABEL_RUN}={self.run_id}"}
        )
        return {c["Id"]: c["State"] for c in listed}

    def _exit_code(self, record: _Record) -> int | None:
        if record.exit_code is None and record.container_id is not None:
            state = self.client.api.inspect_container(record.container_id)["State"]
            record.exit_code = exit_code(int(state["ExitCode"]))
            if state.get("OOMKilled"):
                limit = record.spec.profile.memory_bytes or 0
                note = (
                    f"testbed: {record.spec.unit} was killed by the kernel: out of memory "
                    f"(profile {record.spec.profile.name}, limit {limit // 2**20} MB)\n"
                )
                with open(record.log_file, "a") as f:
                    f.write(note)
        return record.exit_code

    @staticmethod
    def _rss(record: _Record) -> int | None:
        """Resident memory of the container's processes (engine on this machine)."""
        if record.pid is None:
            return None
        try:
            root = psutil.Process(record.pid)
            procs = [root, *root.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs)
        except psutil.Error:
            return None

    # -- stop ------------------------------------------------------------------
    def stop(
        self, names: Sequence[str], timeout: float = STOP_TIMEOUT_SECONDS
    ) -> dict[str, int | None]:
        self._settle(names, raise_errors=False)
        records = {n: self._records[n] for n in names if n in self._records}
        live = {n: r for n, r in records.items() if r.container_id is not None}
        running = {
            n for n, r in live.items() if self._states().get(str(r.container_id)) == "running"
        }
        for name in running:
            self._signal(live[name], "SIGTERM")
        deadline = time.monotonic() + timeout
        while running and time.monotonic() < deadline:
            states = self._states()
            running = {n for n in running if states.get(str(live[n].container_id)) == "running"}
            if running:
                time.sleep(POLL_SECONDS)
        killed = set(running)
        for name in killed:
            self._signal(live[name], "SIGKILL")
        result: dict[str, int | None] = {}
        for name, record in records.items():
            if record.container_id is None:
                result[name] = None
                continue
            with contextlib.suppress(Exception):
                self.client.api.wait(record.container_id, timeout=timeout + 10)
            code = self._exit_code(record)
            result[name] = None if name in killed else code
            if record.follower is not None:
                record.follower.finish()
        return result

    def _signal(self, record: _Record, signal: str) -> None:
        import docker.errors

        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.client.api.kill(record.container_id, signal=signal)

    # -- faults (docker/faults.py) ----------------------------------------------
    def enable_faults(self, netem_units: Sequence[str]) -> None:
        self._netem_units = frozenset(netem_units)

    def _container(self, name: str) -> str:
        self._settle([name], raise_errors=False)
        record = self._records.get(name)
        if record is None or record.container_id is None:
            raise BackendError(f"{name}: no container in run {self.run_id}")
        return record.container_id

    def kill(self, name: str) -> None:
        cid = self._container(name)
        with contextlib.suppress(Exception):
            self.client.api.unpause(cid)  # a paused container cannot be killed
        self.client.api.kill(cid, signal="SIGKILL")
        self.client.api.wait(cid, timeout=STOP_TIMEOUT_SECONDS + 10)

    def restart(self, name: str) -> None:
        cid = self._container(name)
        record = self._records[name]
        if self._states().get(cid) in ("running", "paused"):
            self.kill(name)
        if record.follower is not None:
            record.follower.finish()
        since = int(time.time())
        self.client.api.start(cid)
        record.exit_code = None
        record.follower = LogFollower(self.client, cid, record.log_file, since=since).start()
        with contextlib.suppress(Exception):
            record.pid = int(self.client.api.inspect_container(cid)["State"]["Pid"]) or None

    def pause(self, name: str) -> None:
        self.client.api.pause(self._container(name))

    def resume(self, name: str) -> None:
        self.client.api.unpause(self._container(name))

    def partition(self, name: str, cut: bool) -> None:
        assert self.network is not None
        cid = self._container(name)
        if cut:
            faults.disconnect(self.client, cid, self.network.id)
        else:
            faults.reconnect(self.client, cid, self.network.id, self.address_of(name), name)

    def netem(
        self, name: str, latency_ms: float = 0, jitter_ms: float = 0, loss_percent: float = 0
    ) -> str | None:
        script = faults.netem_script("eth0", latency_ms, jitter_ms, loss_percent)
        output = faults.exec_in(self.client, self._container(name), script)
        return output.splitlines()[-1] if output else "none"

    # -- cleanup ---------------------------------------------------------------
    def cleanup(self) -> None:
        """Remove every container, network and volume labelled with this run."""
        try:
            self._settle(raise_errors=False)
            if self.client is not None:
                self.stop([n for n, r in self._records.items() if r.container_id], timeout=5)
                found = run_resources(self.client, self.run_id).get(self.run_id)
                failed = [
                    f"{item.what}: {item.action}"
                    for item in (remove_resources(found) if found else [])
                    if item.action.startswith("failed")
                ]
                if failed:
                    raise BackendError(f"run {self.run_id}: cleanup: " + "; ".join(failed))
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
            shutil.rmtree(self.state_dir, ignore_errors=True)

    @classmethod
    def clean_leftovers(cls, root: Path | None = None) -> list[Leftover]:
        """Containers, networks and volumes of the runs of this state directory
        whose orchestrator is gone, and their state."""
        report: list[Leftover] = []
        try:
            client = connect(timeout=30)
        except DockerUnavailable:
            client = None
        if client is not None:
            try:
                report += clean_dead_runs(client, str((root or state_root()).resolve()))
            finally:
                client.close()
        base = backend_state_root(cls.name, root)
        for run in sorted(base.iterdir()) if base.is_dir() else []:
            try:
                owner = json.loads((run / "run.json").read_text()).get("orchestrator")
            except (OSError, ValueError):
                owner = None
            if run.is_dir() and not orchestrator_alive(owner):
                shutil.rmtree(run, ignore_errors=True)
                report.append(Leftover(run.name, str(run), "removed state"))
        return report


def image_overrides() -> dict[str, str]:
    """$TESTBED_IMAGE_AGENT / _CHAIN / _PROMETHEUS: run these images instead of
    building the project's (e.g. a custom agent image)."""
    return {k: v for k in KINDS if (v := os.environ.get(f"TESTBED_IMAGE_{k.upper()}"))}


def exit_code(container_code: int) -> int:
    """A container's exit code as a process's: 128 + n (the init's report of a
    child killed by signal n, or the engine's of the container) becomes -n."""
    if 128 < container_code <= 128 + 64:
        return -(container_code - 128)
    return container_code
