"""Backends: where a run's processes run (see base.py for the interface)."""

from __future__ import annotations

from orchestrator.backends.base import Backend
from orchestrator.backends.docker import DockerBackend
from orchestrator.backends.local import LocalBackend
from orchestrator.backends.ssh import SshBackend
from orchestrator.spec import Spec

# Backends `testbed run` can use.
BACKENDS: dict[str, type[Backend]] = {
    "local": LocalBackend,
    "docker": DockerBackend,
    "ssh": SshBackend,
}


def create_backend(name: str, run_id: str, spec: Spec) -> Backend:
    """The backend of one run. ssh connects to every host and checks it here
    (raises before anything starts when one fails)."""
    if name == "ssh":
        return SshBackend.for_spec(run_id, spec)
    return BACKENDS[name](run_id)
