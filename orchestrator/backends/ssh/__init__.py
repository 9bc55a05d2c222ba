"""The ssh backend: boards reached over ssh (backend.py; README.md for armv7l)."""

from orchestrator.backends.ssh.backend import PreflightFailed, SshBackend
from orchestrator.backends.ssh.inventory import Inventory, SshHost, inventory_of
from orchestrator.backends.ssh.preflight import HostReport, format_reports, preflight

__all__ = [
    "HostReport",
    "Inventory",
    "PreflightFailed",
    "SshBackend",
    "SshHost",
    "format_reports",
    "inventory_of",
    "preflight",
]
