"""Backends: where a run's processes run (see base.py for the interface)."""

from __future__ import annotations

from orchestrator.backends.base import Backend
from orchestrator.backends.local import LocalBackend

# Backends `testbed run` can use; docker and ssh add themselves here.
BACKENDS: dict[str, type[Backend]] = {"local": LocalBackend}
