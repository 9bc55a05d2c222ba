"""The ssh backend: prosumer host processes on boards (BeagleBone Blacks or any
Linux host) reached over ssh; the chain, DSO, clock, solvers, recorder and
Prometheus on this machine, as in the paper (its miner and solver ran off-board).

`for_spec` opens one connection per host and runs the preflight (preflight.py):
a host that is unreachable, refuses the key, presents an unknown or changed
host key, lacks a usable Python or disk, or whose clock is off, stops the run
before anything starts. `prepare` builds (or reuses) the wheelhouse, installs
it in a virtualenv on every board that gets agents (reused across runs), and
places the services on `bind_address`, an address of this machine the boards
reach. Agents on boards run in the background in their own sessions with
pidfiles (remote.py); `status` and `stop` work through those, logs and output
folders are pulled back into the bundle, and `cleanup` removes the run's
directory on every board. A board that stops answering has its agents
reported as exited (no exit code), which ends the run; the others are stopped.

Local processes are the local backend's (same pidfiles under
`<state root>/runs/<run id>/`); the boards of a run are recorded under
`<state root>/ssh/<run id>/run.json`, so `testbed clean` can stop exactly the
agents of a run whose orchestrator died.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
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
)
from orchestrator.backends.local import LocalBackend
from orchestrator.backends.ssh.clean import clean_dead_runs, write_run_state
from orchestrator.backends.ssh.connection import Connection, Pool
from orchestrator.backends.ssh.deploy import (
    busy_ports,
    check_solver_hosts,
    install,
    prepare_bundle,
    pull_log,
    pull_tree,
    push_file,
)
from orchestrator.backends.ssh.inventory import Inventory, inventory_of
from orchestrator.backends.ssh.preflight import HostReport, format_reports, host_facts, preflight
from orchestrator.backends.ssh.remote import (
    RemoteState,
    kill_all_script,
    parse_status,
    q,
    remote_path,
    signal_script,
    start_script,
    status_command,
)
from orchestrator.backends.ssh.units import (
    Board,
    RemoteUnit,
    chain_on,
    remote_addresses,
)
from orchestrator.placement import placement
from orchestrator.plan import Plan
from orchestrator.results.bundle import Bundle
from orchestrator.spec import Spec
from orchestrator.spec.model import SshConfig

POLL_SECONDS = 0.2
STATUS_TIMEOUT_SECONDS = 10.0
SERVICE_ROLES = ("dso", "clock", "solver")  # may run on deployment.ssh.services_host


class PreflightFailed(BackendError):
    """A host failed `testbed hosts check` (nothing was started)."""

    exit_code = 1


class SshBackend(Backend):
    name = "ssh"

    def __init__(
        self,
        run_id: str,
        root: Path | None = None,
        *,
        inventory: Inventory | None = None,
        pool: Pool | None = None,
        reports: Sequence[HostReport] = (),
    ) -> None:
        super().__init__(run_id, root)
        self.inventory = inventory
        self.pool = pool
        self.reports = list(reports)
        self.local = LocalBackend(run_id, root)
        self.bind_address: str | None = None
        self.boards: dict[str, Board] = {}
        self._agent_host: dict[str, str] = {}  # board agent -> host name
        self._remote: dict[str, RemoteUnit] = {}
        self._placement: Placement | None = None
        self._bundle: Bundle | None = None

    @classmethod
    def for_spec(
        cls,
        run_id: str,
        spec: Spec,
        root: Path | None = None,
        say: Callable[[str], None] | None = None,
    ) -> SshBackend:
        """Connect to every host and check it; PreflightFailed (nothing started) otherwise."""
        inventory = inventory_of(spec)
        pool = Pool(inventory)
        try:
            reports = preflight(pool, inventory)
            if not all(r.ok for r in reports):
                raise PreflightFailed(
                    "ssh preflight failed:\n" + format_reports(reports, inventory)
                )
            if say is not None:
                say(format_reports(reports, inventory))
        except BaseException:
            pool.close()
            raise
        return cls(run_id, root, inventory=inventory, pool=pool, reports=reports)

    @classmethod
    def create(cls, run_id: str, spec: Spec) -> SshBackend:
        return cls.for_spec(run_id, spec)

    def manifest_hosts(self) -> dict[str, Any]:
        """Per host: address, system facts and clock offset (for manifest.json)."""
        return host_facts(self.reports)

    # -- prepare ---------------------------------------------------------------
    def prepare(self, plan: Plan, bundle: Path) -> Placement:
        if self.inventory is None or self.pool is None:
            raise BackendError("ssh backend: created without a spec (use SshBackend.for_spec)")
        inventory, pool = self.inventory, self.pool
        bundle = bundle.resolve()
        self.announce(format_reports(self.reports, inventory))
        services = inventory.settings.services_host
        homes = {r.name: r.home or "" for r in self.reports}
        for agent in plan.agents:
            host = agent.host if agent.role == "prosumer" else None
            if services is not None and agent.role in SERVICE_ROLES:
                host = services
            if host is None:
                continue
            if host not in self.boards:
                self.boards[host] = Board(inventory.host(host), homes.get(host, ""))
            self._agent_host[agent.name] = host
        self._write_state(inventory.settings)
        local = self.local.addresses(plan, bundle)
        first = next(iter(self.boards), inventory.hosts[0].name)
        bind = inventory.settings.bind_address
        if bind in ("0.0.0.0", "::"):
            raise BackendError(
                f"deployment.ssh.bind_address: {bind} is not an address the boards can "
                "connect to; give this machine's address on the boards' network (or auto)"
            )
        self.bind_address = pool.get(first).local_address() if bind == "auto" else bind
        self.announce(
            f"ssh: chain on {self.bind_address}; "
            + "; ".join(
                f"{n} ({b.host.target}): "
                + ", ".join(a for a, h in self._agent_host.items() if h == n)
                for n, b in self.boards.items()
            )
        )
        check_solver_hosts(self.pool, plan, self._agent_host)
        self._deploy(plan.run_id)
        busy = busy_ports(pool, self._agent_host.values())
        addresses = remote_addresses(
            local, self.bind_address, self._agent_host, self.boards, busy=busy
        )
        self._placement = placement(addresses, bundle)
        self._bundle = Bundle(bundle)
        self._write_info(bundle)
        return self._placement

    def _deploy(self, run_id: str) -> None:
        assert self.inventory is not None and self.pool is not None
        if not self.boards:
            return
        settings = self.inventory.settings
        wheelhouse = self.inventory.wheelhouse
        files = full = prepare_bundle(wheelhouse, self.announce)
        if settings.services_host in self.boards:
            full = prepare_bundle(wheelhouse, self.announce, services=True)
        remote_dir = settings.remote_dir

        def one(conn: Connection) -> None:
            board = self.boards[conn.host.name]
            wheels = full if conn.host.name == settings.services_host else files
            board.python = install(conn, board.home, remote_dir, wheels, self.announce)
            board.run_dir = remote_path(board.home, remote_dir, "runs", run_id)
            run_dir = q(board.run_dir)
            conn.run(f"mkdir -p {run_dir}/config {run_dir}/logs").check(conn.host.name, "mkdir")

        failed = [
            f"{name}: {exc}"
            for name, exc in self.pool.each(one, self.boards).items()
            if isinstance(exc, BaseException)
        ]
        if failed:
            raise BackendError("ssh: cannot deploy the agents:\n" + "\n".join(failed))
        self._write_state(self.inventory.settings)

    def _write_state(self, settings: SshConfig) -> None:
        hosts = {name: (b.host, b.run_dir) for name, b in self.boards.items()}
        write_run_state(self.state_dir, self.run_id, settings, hosts)

    def _write_info(self, bundle: Path) -> None:
        info = {
            "bind_address": self.bind_address,
            "hosts": self.manifest_hosts(),
            "boards": {
                name: {"run_dir": b.run_dir, "python": b.python} for name, b in self.boards.items()
            },
            "agents": dict(self._agent_host),
        }
        (bundle / "ssh.json").write_text(json.dumps(info, indent=2) + "\n")
        manifest = bundle / "manifest.json"
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(manifest.read_text())
            data["ssh"] = {"bind_address": self.bind_address, "hosts": self.manifest_hosts()}
            manifest.write_text(json.dumps(data, indent=2) + "\n")

    def orchestrator_host(self) -> str:
        return self.bind_address or "127.0.0.1"

    # -- start -----------------------------------------------------------------
    def start(self, unit: Unit) -> None:
        host_name = self._agent_host.get(unit.name)
        if host_name is None:
            self.local.start(self._local_unit(unit))
            return
        if unit.name in self._remote:
            raise BackendError(f"{unit.name}: already started in run {self.run_id}")
        assert self.pool is not None and self._placement is not None and self._bundle is not None
        board = self.boards[host_name]
        where = self._placement.agents[unit.name]
        conn = self.pool.get(host_name)
        push_file(conn, where.config_file, where.config_path)
        argv = [board.python if a == "python" and i == 0 else a for i, a in enumerate(unit.argv)]
        env = {"PYTHONUNBUFFERED": "1", "TESTBED_RUN_ID": self.run_id, **unit.env}
        result = conn.sh(start_script(board.run_dir, unit.name, argv, env))
        result.check(host_name, f"starting {unit.name}")
        record = RemoteUnit(
            unit, host_name, where.out_dir, self._bundle.out_dir(unit.name, unit.role)
        )
        record.pid = int(result.stdout.split()[-1])
        self._remote[unit.name] = record

    def _local_unit(self, unit: Unit) -> Unit:
        """The chain listens on the bind address (the boards send it transactions)."""
        if unit.role != "chain" or self.bind_address is None:
            return unit
        return chain_on(unit, self.bind_address)

    # -- status ----------------------------------------------------------------
    def status(self) -> dict[str, UnitStatus]:
        out = self.local.status()
        for name, state in self._remote_states().items():
            out[name] = UnitStatus(name, state.state, state.pid, state.returncode, state.rss_bytes)
        return out

    def _remote_states(self, names: Sequence[str] | None = None) -> dict[str, RemoteState]:
        assert self.pool is not None
        wanted = [n for n in self._remote if names is None or n in names]
        hosts = {self._remote[n].board for n in wanted if self._remote[n].final is None}
        live = [h for h in hosts if self.boards[h].lost is None]

        def one(conn: Connection) -> dict[str, RemoteState]:
            board = self.boards[conn.host.name]
            return parse_status(
                conn.run(status_command(board.run_dir), STATUS_TIMEOUT_SECONDS).stdout
            )

        answers = self.pool.each(one, live) if live else {}
        for host, answer in answers.items():
            if isinstance(answer, BaseException):
                self._lose(host, answer)
        states: dict[str, RemoteState] = {}
        for name in wanted:
            states[name] = self._state_of(self._remote[name], answers.get(self._remote[name].board))
        return states

    def _state_of(self, record: RemoteUnit, answer: object) -> RemoteState:
        """The unit's state from its host's answer; once it ended, its final state."""
        name = record.unit.name
        if record.final is not None:
            return record.final
        if self.boards[record.board].lost is not None or not isinstance(answer, dict):
            record.final = RemoteState(name, "exited", record.pid, None)
            return record.final
        state: RemoteState = answer.get(name, RemoteState(name, "missing", record.pid))
        if state.state == "running":
            return state
        if state.state != "exited":
            with open(record.unit.log_file, "a") as f:
                f.write(f"testbed: {name} vanished on {record.board} (no exit status recorded)\n")
            state = replace(state, state="exited")
        record.final = state
        self._pull_log(record)
        return record.final

    def _lose(self, host: str, error: BaseException) -> None:
        board = self.boards[host]
        if board.lost is not None:
            return
        board.lost = str(error)
        self.announce(f"ssh: lost host: {error}")
        for record in self._remote.values():
            if record.board == host and record.final is None:
                with open(record.unit.log_file, "a") as f:
                    f.write(f"testbed: lost host: {error}\n")

    def _pull_log(self, record: RemoteUnit) -> None:
        board = self.boards[record.board]
        if board.lost is None and self.pool is not None:
            pull_log(self.pool, board.run_dir, record)

    # -- stop ------------------------------------------------------------------
    def stop(
        self, names: Sequence[str], timeout: float = STOP_TIMEOUT_SECONDS
    ) -> dict[str, int | None]:
        local = [n for n in names if n not in self._agent_host]
        result = self.local.stop(local, timeout) if local else {}
        remote = [n for n in names if n in self._remote]
        if remote:
            result.update(self._stop_remote(remote, timeout))
        return result

    def _stop_remote(self, names: Sequence[str], timeout: float) -> dict[str, int | None]:
        assert self.pool is not None
        self._signal(names, "TERM")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self._remote_states(names)
            if all(s.state != "running" for s in states.values()):
                break
            time.sleep(POLL_SECONDS)
        states = self._remote_states(names)
        killed = [n for n, s in states.items() if s.state == "running"]
        if killed:
            self._signal(killed, "KILL")
            wait_until = time.monotonic() + 5
            while time.monotonic() < wait_until:
                if all(s.state != "running" for s in self._remote_states(killed).values()):
                    break
                time.sleep(POLL_SECONDS)
        states = self._remote_states(names)
        self._pull(names)
        return {n: (None if n in killed else states[n].returncode) for n in names}

    def _signal(self, names: Sequence[str], signal: str) -> None:
        assert self.pool is not None
        by_host: dict[str, list[str]] = {}
        for name in names:
            record = self._remote[name]
            if self.boards[record.board].lost is None and record.final is None:
                by_host.setdefault(record.board, []).append(name)

        def one(conn: Connection) -> None:
            board = self.boards[conn.host.name]
            conn.sh(signal_script(board.run_dir, by_host[conn.host.name], signal))

        for host, answer in self.pool.each(one, by_host).items():
            if isinstance(answer, BaseException):
                self._lose(host, answer)

    def _pull(self, names: Sequence[str]) -> None:
        """Logs and output folders of `names` into the bundle (hosts that answer)."""
        assert self.pool is not None
        by_host: dict[str, list[RemoteUnit]] = {}
        for name in names:
            record = self._remote[name]
            if self.boards[record.board].lost is None:
                by_host.setdefault(record.board, []).append(record)

        def one(conn: Connection) -> None:
            board = self.boards[conn.host.name]
            for record in by_host[conn.host.name]:
                self._pull_log(record)
                pull_tree(conn, record.out_dir, record.local_out)
            del board

        for host, answer in self.pool.each(one, by_host).items():
            if isinstance(answer, BaseException):
                self._lose(host, answer)

    # -- faults (orchestrator/faults/) -------------------------------------------
    def kill(self, name: str) -> None:
        record = self._remote.get(name)
        if record is None:
            self.local.kill(name)
            return
        self._signal([name], "KILL")
        self._signal([name], "CONT")
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while self._remote_states([name])[name].state == "running":
            if time.monotonic() > deadline:
                raise BackendError(f"{name}: still running on {record.board} after SIGKILL")
            time.sleep(POLL_SECONDS)
        with open(record.unit.log_file, "a") as f:
            f.write(f"testbed: {name} killed on {record.board} (fault injection)\n")
        record.final = RemoteState(name, "exited", record.pid, -9)

    def restart(self, name: str) -> None:
        record = self._remote.get(name)
        if record is None:
            self.local.restart(name)
            return
        self.kill(name)
        del self._remote[name]
        self.start(record.unit)

    def pause(self, name: str) -> None:
        self._fault_signal(name, "STOP")

    def resume(self, name: str) -> None:
        self._fault_signal(name, "CONT")

    def _fault_signal(self, name: str, signal: str) -> None:
        if name not in self._remote:
            (self.local.pause if signal == "STOP" else self.local.resume)(name)
            return
        if self._remote_states([name])[name].state != "running":
            raise BackendError(f"{name}: not running")
        self._signal([name], signal)

    # -- cleanup ---------------------------------------------------------------
    def cleanup(self) -> None:
        """Stop what still runs on the boards, remove the run's directory there,
        close the connections, remove the local state."""
        errors: list[str] = []
        try:
            running = [n for n, s in self._remote_states().items() if s.state == "running"]
            if running:
                self._stop_remote(running, timeout=5)
            if self.pool is not None:
                live = [h for h, b in self.boards.items() if b.lost is None and b.run_dir]

                def one(conn: Connection) -> None:
                    conn.sh(kill_all_script(self.boards[conn.host.name].run_dir)).check(
                        conn.host.name, "removing the run directory"
                    )

                for host, answer in self.pool.each(one, live).items():
                    if isinstance(answer, BaseException):
                        errors.append(f"{host}: {answer}")
            lost = [f"{h}: {b.lost}" for h, b in self.boards.items() if b.lost is not None]
            if lost:
                errors += [f"not cleaned (host lost): {line}" for line in lost]
            self.local.cleanup()
        finally:
            if self.pool is not None:
                self.pool.close()
            if not errors:
                shutil.rmtree(self.state_dir, ignore_errors=True)
        if errors:
            raise BackendError(f"run {self.run_id}: ssh cleanup: " + "; ".join(errors))

    @classmethod
    def clean_leftovers(cls, root: Path | None = None) -> list[Leftover]:
        """Agents (and run directories) of runs whose orchestrator is gone, on
        the boards recorded for them; the local processes are the local backend's."""
        return clean_dead_runs(backend_state_root(cls.name, root))
