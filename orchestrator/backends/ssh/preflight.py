"""`testbed hosts check`: is every host usable before anything starts?

For each host, in parallel: reachable, host key verified, key authentication,
its Python (>= 3.11, with venv), architecture, free disk under remote_dir, and
its clock offset against this machine. The offset is measured NTP-style over
the open connection: a Python loop on the host answers each probe with its
time.time(); the probe with the shortest round trip gives
offset = host time - midpoint of the round trip, within +- half that round trip.
The paper's wallclock market needs NTP-level sync: an offset above
`max_clock_offset_fraction` x Δ̂ fails the check.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.backends.ssh.connection import Connection, Pool, SshError
from orchestrator.backends.ssh.inventory import Inventory, SshHost
from orchestrator.backends.ssh.remote import q

MIN_PYTHON = (3, 11)
CLOCK_PROBES = 8
CLOCK_TIMEOUT_SECONDS = 20.0

FACTS = r"""
import importlib.util, json, os, platform, shutil, sys
home = os.path.expanduser("~")
target = sys.argv[1] if sys.argv[1].startswith("/") else os.path.join(home, sys.argv[1])
probe = target
while not os.path.exists(probe):
    probe = os.path.dirname(probe)
print(json.dumps({
    "python": list(sys.version_info[:3]),
    "python_path": sys.executable,
    "arch": platform.machine(),
    "home": home,
    "free_bytes": shutil.disk_usage(probe).free,
    "venv": importlib.util.find_spec("ensurepip") is not None,
    "system": platform.platform(),
}))
"""

CLOCK_LOOP = "import sys, time\nfor _ in sys.stdin:\n    print(repr(time.time()), flush=True)\n"


@dataclass
class HostReport:
    """What the check found on one host; `problems` empty = usable."""

    name: str
    target: str
    reachable: bool = False
    python: str | None = None
    python_path: str | None = None
    arch: str | None = None
    home: str | None = None
    free_mb: int | None = None
    clock_offset_seconds: float | None = None
    clock_uncertainty_seconds: float | None = None
    system: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reachable and not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def local_platform() -> tuple[str, tuple[int, int]]:
    """(architecture, Python major.minor) of this machine: what wheels built here fit."""
    return platform.machine(), (sys.version_info.major, sys.version_info.minor)


def measure_clock(conn: Connection, python: str, probes: int = CLOCK_PROBES) -> tuple[float, float]:
    """(offset, uncertainty) in seconds of the host's clock against this one."""
    transport = conn.client.get_transport()
    if transport is None:
        raise SshError(f"{conn.host.name}: connection lost")
    channel = transport.open_session(timeout=CLOCK_TIMEOUT_SECONDS)
    channel.settimeout(CLOCK_TIMEOUT_SECONDS)
    try:
        channel.exec_command(f"{q(python)} -u -c {q(CLOCK_LOOP)}")
        reader = channel.makefile("rb")
        best: tuple[float, float] | None = None
        for _ in range(probes + 1):  # the first answer includes the interpreter's start
            t0 = time.time()
            channel.sendall(b"\n")
            line = reader.readline()
            t1 = time.time()
            if not line:
                raise SshError(f"{conn.host.name}: {python} did not answer the clock probe")
            remote = float(line)
            sample = (remote - (t0 + t1) / 2, (t1 - t0) / 2)
            if best is None or sample[1] < best[1]:
                best = sample
        assert best is not None
        return best
    finally:
        channel.close()


def check_host(conn: Connection, inventory: Inventory, report: HostReport) -> HostReport:
    """Fill `report` from the open connection `conn`."""
    host, settings = conn.host, inventory.settings
    report.reachable = True
    result = conn.run(f"{q(host.python)} -c {q(FACTS)} {q(settings.remote_dir)}")
    if result.code != 0:
        why = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        report.problems.append(f"{host.python} does not run: {why[0]} (set the host's python:)")
        return report
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    version = tuple(facts["python"])
    report.python = ".".join(str(v) for v in version)
    report.python_path = facts["python_path"]
    report.arch = facts["arch"]
    report.home = facts["home"]
    report.system = facts["system"]
    report.free_mb = int(facts["free_bytes"]) // 2**20
    if version[:2] < MIN_PYTHON:
        report.problems.append(
            f"Python {report.python} is too old (the agents need >= 3.11; set the host's python:)"
        )
    if not facts["venv"]:
        report.problems.append(
            f"{host.python} cannot create virtualenvs (Debian: apt install python3-venv)"
        )
    if report.free_mb < settings.min_free_disk_mb:
        report.problems.append(
            f"{report.free_mb} MB free under {settings.remote_dir}, "
            f"deployment.ssh.min_free_disk_mb is {settings.min_free_disk_mb}"
        )
    arch, pyver = local_platform()
    if settings.wheelhouse is None and (report.arch != arch or version[:2] != pyver):
        report.problems.append(
            f"{report.arch} with Python {version[0]}.{version[1]}: the wheels built here are for "
            f"{arch} and Python {pyver[0]}.{pyver[1]}; set deployment.ssh.wheelhouse to a "
            "directory of wheels for this host (orchestrator/backends/ssh/README.md)"
        )
    offset, uncertainty = measure_clock(conn, host.python)
    report.clock_offset_seconds = round(offset, 6)
    report.clock_uncertainty_seconds = round(uncertainty, 6)
    limit = inventory.max_clock_offset_seconds
    if abs(offset) > limit:
        report.problems.append(
            f"clock off by {offset:+.3f} s (+- {uncertainty:.3f} s), more than "
            f"{inventory.settings.max_clock_offset_fraction:g} x Δ̂ "
            f"({inventory.simulated_interval_seconds:g} s) = {limit:.3f} s: sync it (NTP) or "
            "raise deployment.ssh.max_clock_offset_fraction"
        )
    return report


def preflight(pool: Pool, inventory: Inventory) -> list[HostReport]:
    """A report for every host, checked in parallel (connections stay open in `pool`)."""

    def one(host: SshHost) -> HostReport:
        report = HostReport(host.name, host.target)
        try:
            conn = pool.get(host.name)
        except SshError as exc:
            report.problems.append(str(exc).removeprefix(f"{host.name} ({host.target}): "))
            return report
        try:
            return check_host(conn, inventory, report)
        except (SshError, OSError, ValueError) as exc:
            report.problems.append(f"check failed: {exc}")
            return report

    with ThreadPoolExecutor(max(1, min(16, len(inventory.hosts)))) as executor:
        return list(executor.map(one, inventory.hosts))


def format_reports(reports: list[HostReport], inventory: Inventory) -> str:
    """One line per host; problems indented below."""
    lines = []
    for r in reports:
        if not r.reachable:
            lines.append(f"{r.name:<12} {r.target:<28} FAILED")
        else:
            offset = (
                f"clock {r.clock_offset_seconds * 1000:+.2f} ms"
                f" ±{(r.clock_uncertainty_seconds or 0) * 1000:.2f}"
                if r.clock_offset_seconds is not None
                else "clock ?"
            )
            free = "?" if r.free_mb is None else str(r.free_mb)
            facts = f"python {r.python or '?'}  {r.arch or '?'}  {free} MB free  {offset}"
            lines.append(f"{r.name:<12} {r.target:<28} {'ok' if r.ok else 'FAILED':<6} {facts}")
        lines += [f"  {r.name}: {p}" for p in r.problems]
    limit = inventory.max_clock_offset_seconds
    bad = sum(not r.ok for r in reports)
    lines.append(
        f"{len(reports) - bad}/{len(reports)} hosts ok (clock offset limit {limit * 1000:.0f} ms"
        f" = {inventory.settings.max_clock_offset_fraction:g} x Δ̂ "
        f"{inventory.simulated_interval_seconds:g} s; known_hosts {inventory.settings.known_hosts})"
    )
    return "\n".join(lines)


def host_facts(reports: list[HostReport]) -> dict[str, dict[str, Any]]:
    """Per host: address, system facts and clock offset (manifest.json, ssh.json)."""
    return {
        r.name: {
            "target": r.target,
            "arch": r.arch,
            "python": r.python,
            "system": r.system,
            "free_mb": r.free_mb,
            "clock_offset_seconds": r.clock_offset_seconds,
            "clock_uncertainty_seconds": r.clock_uncertainty_seconds,
        }
        for r in reports
    }
