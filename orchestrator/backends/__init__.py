"""Backends: where a run's processes run (see base.py for the interface)."""

from __future__ import annotations

from orchestrator.backends.base import Backend
from orchestrator.backends.docker import DockerBackend
from orchestrator.backends.local import LocalBackend

# Backends `testbed run` can use; ssh adds itself here.
BACKENDS: dict[str, type[Backend]] = {"local": LocalBackend, "docker": DockerBackend}
