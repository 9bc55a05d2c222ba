"""The ssh backend's inventory: the spec's `deployment.hosts` and
`deployment.ssh` as plain data (pure, no I/O besides reading the environment
for the login name).

Host groups (`count: N`) become hosts `<name>-01..<name>-N` exactly as
`orchestrator.hosts.expand_hosts` names them (all at the group's address), so
the plan's prosumer hosts map one to one onto inventory entries. Relative
paths (key files, known_hosts, the wheelhouse) are taken relative to the
spec file's directory; `~` is expanded.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.backends.base import BackendError
from orchestrator.spec import Spec
from orchestrator.spec.model import SshConfig

DEFAULT_PORT = 22
DEFAULT_PYTHON = "python3"


class InventoryError(BackendError):
    """The spec does not describe usable ssh hosts."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class SshHost:
    """One board as the orchestrator reaches it."""

    name: str
    address: str
    port: int = DEFAULT_PORT
    user: str = "root"
    key_file: Path | None = None  # None: ssh-agent and ~/.ssh/id_*
    python: str = DEFAULT_PYTHON

    @property
    def target(self) -> str:
        """user@address[:port], for messages."""
        port = f":{self.port}" if self.port != DEFAULT_PORT else ""
        return f"{self.user}@{self.address}{port}"

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH (and paramiko) name this host in known_hosts."""
        return self.address if self.port == DEFAULT_PORT else f"[{self.address}]:{self.port}"


@dataclass(frozen=True, slots=True)
class Inventory:
    hosts: tuple[SshHost, ...]
    settings: SshConfig  # the spec's deployment.ssh, its paths made absolute
    simulated_interval_seconds: float = 120.0

    def host(self, name: str) -> SshHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise InventoryError(f"deployment.hosts: no ssh host named {name!r}")

    @property
    def known_hosts(self) -> Path:
        return Path(self.settings.known_hosts)

    @property
    def wheelhouse(self) -> Path | None:
        return Path(self.settings.wheelhouse) if self.settings.wheelhouse else None

    @property
    def max_clock_offset_seconds(self) -> float:
        return self.settings.max_clock_offset_fraction * self.simulated_interval_seconds


def _path(value: str | None, base: Path) -> Path | None:
    if not value:
        return None
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else (base / path).absolute()


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "root"


def inventory_of(spec: Spec) -> Inventory:
    """The spec's ssh hosts and settings; raises InventoryError when unusable."""
    base = Path(spec.source).parent if spec.source else Path.cwd()
    cfg = spec.deployment.ssh
    default_key = _path(cfg.key_file, base)
    hosts: list[SshHost] = []
    problems: list[str] = []
    for entry in spec.deployment.hosts:
        if not entry.address:
            problems.append(f"deployment.hosts: {entry.name}: ssh hosts need an address")
            continue
        count = entry.count or 1
        width = max(2, len(str(count)))
        names = (
            [entry.name]
            if count == 1
            else [f"{entry.name}-{i:0{width}d}" for i in range(1, count + 1)]
        )
        for name in names:
            hosts.append(
                SshHost(
                    name=name,
                    address=entry.address,
                    port=entry.port or DEFAULT_PORT,
                    user=entry.user or _login(),
                    key_file=_path(entry.key_file, base) or default_key,
                    python=entry.python or DEFAULT_PYTHON,
                )
            )
    if not spec.deployment.hosts:
        problems.append(
            "deployment.hosts: the ssh backend needs at least one host "
            "(name, address, user, key_file)"
        )
    for host in hosts:
        if host.key_file is not None and not host.key_file.is_file():
            problems.append(f"deployment.hosts: {host.name}: key file {host.key_file} not found")
    if cfg.services_host and cfg.services_host not in {h.name for h in hosts}:
        problems.append(
            f"deployment.ssh.services_host: {cfg.services_host!r} is not a host of "
            f"deployment.hosts ({', '.join(h.name for h in hosts)})"
        )
    if problems:
        raise InventoryError("\n".join(problems))
    known_hosts = _path(cfg.known_hosts, base)
    assert known_hosts is not None  # the schema requires a non-empty string
    wheelhouse = _path(cfg.wheelhouse, base)
    settings = replace(
        cfg,
        known_hosts=str(known_hosts),
        services_host=cfg.services_host or None,
        remote_dir=cfg.remote_dir.rstrip("/") or "/",
        wheelhouse=None if wheelhouse is None else str(wheelhouse),
    )
    return Inventory(tuple(hosts), settings, float(spec.market.simulated_interval_seconds))
