"""The ssh backend's records of one run: the boards that run agents and the
agents started on them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.backends.base import Unit
from orchestrator.backends.ssh.inventory import SshHost
from orchestrator.backends.ssh.remote import RemoteState


@dataclass
class Board:
    """One host that runs agents in this run."""

    host: SshHost
    home: str
    run_dir: str = ""
    python: str = ""
    lost: str | None = None  # why, once the host stopped answering


@dataclass
class RemoteUnit:
    """An agent started on a board; `final` once it ended (or its board was lost)."""

    unit: Unit
    board: str
    out_dir: str  # on the board
    local_out: Path  # its copy in the bundle
    pid: int | None = None
    final: RemoteState | None = None
    pulled: bool = False  # its log was copied into the bundle


def chain_on(unit: Unit, address: str) -> Unit:
    """The chain unit listening on `address` instead of loopback."""
    argv = list(unit.argv)
    if "--host" in argv:
        argv[argv.index("--host") + 1] = address
    else:
        argv += ["--host", address]
    return replace(unit, argv=tuple(argv))
