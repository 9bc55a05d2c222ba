"""The backend registry: one data-only entry per backend.

Everything outside a backend's own folder that depends on which backend runs
reads its entry here: the spec's `deployment.backend` enum and the fault
checks (names, fault actions, whether hosts need addresses), the CLI's
`--backend` choices, the planner's default hosts, observability (how
Prometheus runs, where the run state lives) and `run`/`clean` (the class).

Data only, so `orchestrator.spec` reads it without importing any backend: the
implementation is named by dotted path and imported when a run or `testbed
clean` needs it (the docker SDK and paramiko load only then). Endpoints are
formed in one place for all backends (orchestrator/placement.py): a backend
only picks addresses. Adding a backend is its folder under
orchestrator/backends/ plus one line in ENTRIES.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.spec.model import SshConfig
from orchestrator.spec.swarm import SwarmConfig

PROCESS = frozenset({"kill", "restart", "pause", "resume"})
NETWORK = frozenset({"partition", "heal", "netem"})
NODE = frozenset({"drain", "stop"})  # a cluster node drained or its engine stopped (swarm)
SWARM_FAULTS = frozenset({"kill", "restart"})  # what a manager can do to a service


@dataclass(frozen=True, slots=True)
class BackendEntry:
    """What the orchestrator needs to know about one backend without importing it."""

    name: str
    implementation: str  # "module:Class" under orchestrator.backends (a backends.base.Backend)
    fault_actions: frozenset[str]  # the process/network fault actions it implements
    state_folder: str = ""  # its run state: <state root>/<folder (default: name)>/<run id>/
    # Prometheus: "host" runs this machine's binary (the Debian package),
    # "image" the testbed's Prometheus image (argv[0] is the image's), both
    # scraping the addresses the backend placed the agents at; "swarm" the
    # image too, finding the agents among the swarm's tasks itself
    # (dockerswarm_sd_configs: orchestrator/observability/swarmsd.py).
    prometheus: Literal["host", "image", "swarm"] = "host"
    # Default prosumer hosts when the spec names none: `prosumers_per_host`
    # each, or (with `max_default_hosts`) spread over at most that many.
    prosumers_per_host: int = 4  # about the paper's 102 prosumers on 31 boards
    max_default_hosts: int | None = None
    hosts_need_address: bool = False  # deployment.hosts entries are machines to reach
    settings: type | None = None  # the spec's `deployment.<name>` section, if it has one

    @property
    def state_dir(self) -> str:
        return self.state_folder or self.name

    def default_prosumers_per_host(self, prosumers: int) -> int:
        """Prosumers per default host for a run of `prosumers` prosumers."""
        if self.max_default_hosts is None:
            return self.prosumers_per_host
        return math.ceil(max(1, prosumers) / self.max_default_hosts)

    def load(self) -> Any:
        """The backend class (imports its implementation, e.g. the docker SDK)."""
        module, _, attribute = self.implementation.partition(":")
        return getattr(importlib.import_module(f"orchestrator.backends.{module}"), attribute)


# One line per backend. Local: one Python interpreter with web3 per agent (~1 s
# of CPU to start, tens of MB), so at most 4 prosumer host processes by default.
ENTRIES: tuple[BackendEntry, ...] = (
    BackendEntry("local", "local:LocalBackend", PROCESS, state_folder="runs", max_default_hosts=4),
    BackendEntry("docker", "docker:DockerBackend", PROCESS | NETWORK, prometheus="image"),
    BackendEntry("ssh", "ssh:SshBackend", PROCESS, hosts_need_address=True, settings=SshConfig),
    BackendEntry(
        "swarm", "swarm:SwarmBackend", SWARM_FAULTS | NODE, prometheus="swarm", settings=SwarmConfig
    ),
)

BACKENDS: dict[str, BackendEntry] = {entry.name: entry for entry in ENTRIES}
NAMES: tuple[str, ...] = tuple(BACKENDS)


def backend_entry(name: str) -> BackendEntry:
    """The entry of backend `name` (KeyError: not a backend; the spec's enum refuses it)."""
    return BACKENDS[name]
