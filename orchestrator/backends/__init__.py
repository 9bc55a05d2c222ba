"""Backends: where a run's processes run (base.py: the interface; the registry
of backends, data only, is orchestrator/spec/backends.py).

Importing this package loads no backend: a backend's implementation (and the
docker SDK or paramiko with it) is imported when a run or `testbed clean` needs it.
"""

from __future__ import annotations

from orchestrator.backends.base import Backend
from orchestrator.spec import Spec
from orchestrator.spec.backends import backend_entry


def backend_class(name: str) -> type[Backend]:
    """The implementation of backend `name` (imports it)."""
    cls = backend_entry(name).load()
    assert isinstance(cls, type) and issubclass(cls, Backend), cls
    return cls


def create_backend(name: str, run_id: str, spec: Spec) -> Backend:
    """The backend of one run (ssh connects to every host and checks it here:
    raises before anything starts when one fails)."""
    return backend_class(name).create(run_id, spec)
