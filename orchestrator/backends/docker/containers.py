"""What container runs a unit: image, command, mounts, limits, netem, labels.

Pure (no engine calls): the backend creates containers from these specs and
`render --format compose` writes the same specs as a compose file.

Paths: the run's configs are mounted read-only at /testbed/config and each
agent's output folder at /testbed/out; Prometheus gets its config folder and
TSDB at the same paths as on the host, so the orchestrator's view of them
(snapshots, prometheus.yml) needs no translation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.backends.base import Unit
from orchestrator.backends.docker.engine import (
    LABEL_ORCHESTRATOR,
    LABEL_ROLE,
    LABEL_RUN,
    LABEL_SPEC,
    LABEL_UNIT,
)
from orchestrator.hosts import PROFILES, Netem, Profile
from orchestrator.placement import Address, Addresses, AgentAddress, Placement, placement
from orchestrator.plan import Plan

CHAIN_PORT = 8545
METRICS_PORT = 9100
DSO_PORT = 5555
CLOCK_PUB_PORT = 5556
CLOCK_PULL_PORT = 5557
CONFIG_DIR = "/testbed/config"
OUT_DIR = "/testbed/out"
ANY = "0.0.0.0"
# Chain state evicted from memory is dropped, not dumped to disk: a long run
# would otherwise fill the container's layer (agents only query "latest").
# Added unless the command already bounds the history (anvil refuses both flags).
ANVIL_EXTRA_ARGS = ("--max-persisted-states", "0")
ANVIL_HISTORY_FLAGS = ("--max-persisted-states", "--prune-history")


@dataclass(frozen=True, slots=True)
class Mount:
    source: str  # host path
    target: str  # container path
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    unit: str  # unit name: network alias and hostname
    role: str
    image_kind: str  # agent | chain | prometheus (images.ImageSet)
    command: tuple[str, ...]
    address: str  # fixed IPv4 address on the run's network
    environment: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    profile: Profile = PROFILES["none"]
    netem: Netem = field(default_factory=Netem)
    published: Mapping[int, int] = field(default_factory=dict)  # container port -> host port
    fault_netem: bool = False  # a `faults:` netem action will change its link

    @property
    def cap_add(self) -> list[str]:
        """NET_ADMIN only where a link is emulated (never privileged)."""
        return ["NET_ADMIN"] if self.netem.active or self.fault_netem else []

    def labels(self, run_id: str, spec_name: str, orchestrator: str) -> dict[str, str]:
        return {
            LABEL_RUN: run_id,
            LABEL_UNIT: self.unit,
            LABEL_ROLE: self.role,
            LABEL_SPEC: spec_name,
            LABEL_ORCHESTRATOR: orchestrator,
            "testbed.profile": self.profile.name,
            "testbed.netem": self.netem.describe(),
        }

    def env(self, run_id: str) -> dict[str, str]:
        return {"TESTBED_RUN_ID": run_id, **self.environment, **self.netem.env()}


def container_name(run_id: str, unit: str) -> str:
    return f"testbed-{run_id}-{unit}"


def chain_command(argv: Sequence[str]) -> tuple[str, ...]:
    """anvil's argv for the orchestrator's machine, made to listen on the network."""
    out = ["anvil"]
    args = list(argv[1:])
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("--host", "--port") and i + 1 < len(args):
            out += [arg, ANY if arg == "--host" else str(CHAIN_PORT)]
            i += 2
            continue
        out.append(arg)
        i += 1
    if not any(flag in out for flag in ANVIL_HISTORY_FLAGS):
        out += ANVIL_EXTRA_ARGS
    return tuple(out)


def prometheus_command(argv: Sequence[str]) -> tuple[tuple[str, ...], int | None, list[Mount]]:
    """(argv inside the container, listen port to publish, mounts) for a
    Prometheus unit: listens on every interface, same paths as the host."""
    out = ["prometheus"]
    port: int | None = None
    mounts: list[Mount] = []
    for arg in argv[1:]:
        flag, _, value = arg.partition("=")
        if flag == "--web.listen-address" and value:
            port = int(value.rsplit(":", 1)[1])
            out.append(f"{flag}={ANY}:{port}")
            continue
        if flag == "--config.file" and value.startswith("/"):
            folder = str(Path(value).parent)
            mounts.append(Mount(folder, folder, read_only=True))
        elif flag == "--storage.tsdb.path" and value.startswith("/"):
            Path(value).mkdir(parents=True, exist_ok=True)
            mounts.append(Mount(value, value))
        out.append(arg)
    return tuple(out), port, mounts


def unit_spec(
    unit: Unit,
    address: str,
    *,
    config_dir: Path,
    out_dir: Path | None,
    profile: Profile = PROFILES["none"],
    netem: Netem | None = None,
) -> ContainerSpec:
    """The container of `unit` (argv as the run lifecycle builds it)."""
    netem = netem or Netem()
    if unit.role == "chain":
        return ContainerSpec(unit.name, "chain", "chain", chain_command(unit.argv), address)
    if unit.role == "prometheus":
        command, port, mounts = prometheus_command(unit.argv)
        return ContainerSpec(
            unit.name,
            "prometheus",
            "prometheus",
            command,
            address,
            mounts=tuple(mounts),
            published={port: port} if port else {},
        )
    mounts = [Mount(str(config_dir), CONFIG_DIR, read_only=True)]
    if out_dir is not None:
        mounts.append(Mount(str(out_dir), OUT_DIR))
    return ContainerSpec(
        unit.name,
        unit.role,
        "agent",
        tuple(unit.argv),
        address,
        environment=dict(unit.env),
        mounts=tuple(mounts),
        profile=profile,
        netem=netem,
    )


def docker_placement(
    plan: Plan, bundle: Path, address_of: Callable[[str], str] | None
) -> Placement:
    """Where every unit listens: agents reach each other by unit name; the
    orchestrator reaches them at `address_of(unit)` (None: by name too, as in
    a compose project, where only the containers resolve the names)."""
    where = address_of or (lambda unit: unit)
    agents = {
        # binds the container's address (by name); Prometheus scrapes it there
        a.name: AgentAddress(
            Address(a.name, METRICS_PORT), where(a.name), f"{CONFIG_DIR}/{a.name}.json", OUT_DIR
        )
        for a in plan.agents
    }
    addresses = Addresses(
        chain=Address("chain", CHAIN_PORT),
        chain_local=Address(where("chain"), CHAIN_PORT),
        dso=Address("dso", DSO_PORT),
        clock_pub=Address("clock", CLOCK_PUB_PORT),
        clock_pull=Address("clock", CLOCK_PULL_PORT),
        agents=agents,
    )
    return placement(addresses, bundle)
