"""The local backend: every part of the testbed is a process on this machine.

Each process runs in its own session (process group = its pid), so signals
from the terminal (Ctrl-C) reach only the orchestrator, which then stops the
agents in reverse dependency order, and a stop reaches whatever the agent
spawned (e.g. glpsol). Every process is recorded in a pidfile under
`<state root>/runs/<run id>/pids/` with its start time, so `testbed clean`
can find and stop exactly the processes of a killed run, never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
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
)
from orchestrator.placement import Address, Addresses, AgentAddress, local_out_dirs, placement
from orchestrator.plan import Plan
from orchestrator.results.bundle import Bundle, write_json

HOST = "127.0.0.1"
POLL_SECONDS = 0.05
# `testbed clean`: how long a leftover process gets between SIGTERM and SIGKILL.
CLEAN_TIMEOUT_SECONDS = 5.0


def free_ports(n: int, host: str = HOST) -> list[int]:
    """`n` distinct ports the OS considers free right now.

    They are drawn at random from below the kernel's ephemeral range: between this
    check and the agent's own bind, an ephemeral port can be taken by any outgoing
    connection (thousands of JSON-RPC calls in a run) or by a `--port 0` server,
    while ports below that range are only ever taken on purpose."""
    low, _ = _ephemeral_range()
    pool_low = 10_000
    if low - pool_low < 10 * n:
        return _os_chosen_ports(n, host)
    rng = random.SystemRandom()
    chosen: list[int] = []
    for port in rng.sample(range(pool_low, low), min(low - pool_low, 50 * n + 100)):
        if len(chosen) == n:
            break
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        chosen.append(port)
    if len(chosen) < n:
        return _os_chosen_ports(n, host)
    return chosen


def _ephemeral_range() -> tuple[int, int]:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        low, high = (int(x) for x in text.split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def _os_chosen_ports(n: int, host: str) -> list[int]:
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _same_process(pid: int, create_time: float) -> bool:
    """True when `pid` is still the living process we recorded (not a reused
    pid, not a zombie)."""
    try:
        p = psutil.Process(pid)
        return abs(p.create_time() - create_time) < 0.01 and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _reap(proc: subprocess.Popen[bytes]) -> int | None:
    """The exit code of `proc` if it has exited, else None.

    On exit, whatever is left in its process group (e.g. a solver's glpsol) is
    killed first, while the leader is still an unreaped zombie: its pid, and
    so the group id, cannot have been reused by then.
    """
    if proc.returncode is not None:
        return proc.returncode
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        info = None
    if info is None and proc.poll() is None:
        return None
    _killpg(proc.pid, signal.SIGKILL)
    return proc.wait()


class LocalBackend(Backend):
    name = "local"

    def __init__(self, run_id: str, root: Path | None = None) -> None:
        super().__init__(run_id, root)
        self.pid_dir = self.state_dir / "pids"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._create: dict[str, float] = {}
        self._exited: dict[str, int] = {}
        self._units: dict[str, Unit] = {}

    # -- prepare ---------------------------------------------------------------
    def prepare(self, plan: Plan, bundle: Path) -> Placement:
        return placement(self.addresses(plan, bundle), bundle.resolve())

    def addresses(self, plan: Plan, bundle: Path) -> Addresses:
        """Record the run, make the bundle's folders, pick a free port for
        every service and agent (all on loopback)."""
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        me = psutil.Process()
        write_json(
            self.state_dir / "run.json",
            {
                "run_id": self.run_id,
                "backend": self.name,
                "bundle": str(bundle.resolve()),
                "orchestrator_pid": me.pid,
                "orchestrator_create_time": me.create_time(),
                "started": time.time(),
            },
        )
        layout = Bundle(bundle.resolve())
        outs = local_out_dirs(plan, layout.path)
        chain, dso, pub, pull, *ports = (Address(HOST, p) for p in free_ports(4 + len(plan.agents)))
        agents = {
            agent.name: AgentAddress(
                bind=port,
                scrape_host=HOST,
                config_path=str(layout.config_file(agent.name)),
                out_dir=str(outs[agent.name]),
            )
            for agent, port in zip(plan.agents, ports, strict=True)
        }
        return Addresses(chain, chain, dso, pub, pull, agents)

    # -- start -----------------------------------------------------------------
    def start(self, unit: Unit) -> None:
        if unit.name in self._procs:
            raise BackendError(f"{unit.name}: already started in run {self.run_id}")
        argv = list(unit.argv)
        if argv and argv[0] == "python":
            argv[0] = sys.executable
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TESTBED_RUN_ID": self.run_id, **unit.env}
        unit.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        with open(unit.log_file, "ab") as log:
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            except OSError as e:
                raise BackendError(f"{unit.name}: cannot start {argv[0]}: {e}") from e
        self._procs[unit.name] = proc
        self._units[unit.name] = unit
        created = _create_time(proc.pid) or time.time()
        self._create[unit.name] = created
        write_json(
            self.pid_dir / f"{unit.name}.json",
            {
                "name": unit.name,
                "role": unit.role,
                "pid": proc.pid,
                "create_time": created,
                "argv": argv,
            },
        )

    def pid(self, name: str) -> int:
        return self._procs[name].pid

    # -- status ----------------------------------------------------------------
    def status(self) -> dict[str, UnitStatus]:
        out: dict[str, UnitStatus] = {}
        for name, proc in self._procs.items():
            code = _reap(proc)
            if code is None:
                rss: int | None = None
                with contextlib.suppress(psutil.Error):
                    rss = psutil.Process(proc.pid).memory_info().rss
                out[name] = UnitStatus(name, "running", proc.pid, None, rss)
            else:
                self._exited[name] = code
                out[name] = UnitStatus(name, "exited", proc.pid, code)
        return out

    # -- stop ------------------------------------------------------------------
    def stop(
        self, names: Sequence[str], timeout: float = STOP_TIMEOUT_SECONDS
    ) -> dict[str, int | None]:
        procs = {n: self._procs[n] for n in names if n in self._procs}
        for proc in procs.values():
            if _reap(proc) is None:
                _killpg(proc.pid, signal.SIGTERM)
                _killpg(proc.pid, signal.SIGCONT)  # a paused unit handles it too
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_reap(p) is None for p in procs.values()):
            time.sleep(POLL_SECONDS)
        result: dict[str, int | None] = {}
        for name, proc in procs.items():
            killed = _reap(proc) is None
            if killed:
                _killpg(proc.pid, signal.SIGKILL)
            code = proc.wait()
            self._exited[name] = code
            result[name] = None if killed else code
            with contextlib.suppress(FileNotFoundError):
                (self.pid_dir / f"{name}.json").unlink()
        return result

    # -- faults ------------------------------------------------------------------
    def kill(self, name: str) -> None:
        proc = self._proc(name)
        if _reap(proc) is None:
            _killpg(proc.pid, signal.SIGKILL)
            _killpg(proc.pid, signal.SIGCONT)
            proc.wait(STOP_TIMEOUT_SECONDS)
            _reap(proc)

    def restart(self, name: str) -> None:
        self.kill(name)
        unit = self._units[name]
        del self._procs[name]
        self.start(unit)

    def pause(self, name: str) -> None:
        self._signal_running(name, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self._signal_running(name, signal.SIGCONT)

    def _proc(self, name: str) -> subprocess.Popen[bytes]:
        if name not in self._procs:
            raise BackendError(f"{name}: not started in run {self.run_id}")
        return self._procs[name]

    def _signal_running(self, name: str, sig: int) -> None:
        proc = self._proc(name)
        if _reap(proc) is not None:
            raise BackendError(f"{name}: not running (exit code {proc.returncode})")
        _killpg(proc.pid, sig)

    def stop_all(self, timeout: float = STOP_TIMEOUT_SECONDS) -> dict[str, int | None]:
        """Stop everything still running, most recently started first."""
        result: dict[str, int | None] = {}
        for name in reversed(list(self._procs)):
            result.update(self.stop([name], timeout))
        return result

    # -- cleanup ---------------------------------------------------------------
    def cleanup(self) -> None:
        alive = [n for n, p in self._procs.items() if _reap(p) is None]
        if alive:
            raise BackendError(f"run {self.run_id}: still running: {', '.join(alive)}")
        shutil.rmtree(self.state_dir, ignore_errors=True)

    @classmethod
    def clean_leftovers(cls, root: Path | None = None) -> list[Leftover]:
        """Stop the recorded processes of runs whose orchestrator is gone and
        remove their state. Runs whose orchestrator is alive are left alone."""
        base = backend_state_root(cls.name, root)
        if not base.is_dir():
            return []
        report: list[Leftover] = []
        for run in sorted(p for p in base.iterdir() if p.is_dir()):
            info = _read_json(run / "run.json")
            if info and _same_process(
                int(info.get("orchestrator_pid", -1)),
                float(info.get("orchestrator_create_time", 0)),
            ):
                continue  # a live run: not a leftover
            report.extend(_stop_recorded(run))
            shutil.rmtree(run, ignore_errors=True)
            report.append(Leftover(run.name, str(run), "removed state"))
        return report


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _stop_recorded(run: Path, timeout: float | None = None) -> list[Leftover]:
    """SIGTERM then SIGKILL every still-living process recorded under `run`."""
    alive: list[tuple[int, float, str]] = []
    report: list[Leftover] = []
    for pidfile in sorted((run / "pids").glob("*.json")):
        rec = _read_json(pidfile)
        if rec is None:
            continue
        pid, created, name = int(rec["pid"]), float(rec["create_time"]), str(rec["name"])
        if _same_process(pid, created):
            alive.append((pid, created, name))
        else:
            report.append(Leftover(run.name, f"process {pid} ({name})", "already gone"))
    for pid, _, _ in alive:
        _killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + (CLEAN_TIMEOUT_SECONDS if timeout is None else timeout)
    while time.monotonic() < deadline and any(_same_process(p, c) for p, c, _ in alive):
        time.sleep(POLL_SECONDS)
    for pid, created, name in alive:
        if _same_process(pid, created):
            _killpg(pid, signal.SIGKILL)
        report.append(Leftover(run.name, f"process {pid} ({name})", "killed"))
    return report
