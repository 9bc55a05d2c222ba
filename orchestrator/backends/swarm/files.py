"""A service's input files as swarm secrets and configs, not bind mounts.

The docker backend mounts a unit's inputs from this machine's disk: the run's
config folder (read-only) for an agent, Prometheus' config folder for
Prometheus. On a swarm the task may run on any node, and the manager need not
be this machine, so each input file travels through the manager instead:

- an agent's rendered config (it holds keys: the agent's private key, the
  prosumer hosts' key secret) becomes a **secret**, mounted at the path the
  agent is given (`/testbed/config/<agent>.json`); an agent sees its own file,
  not the whole folder;
- any other input (prometheus.yml) becomes a **config**, at its own path.

Each carries the run's labels, so `cleanup` and `testbed clean` remove it with
the run's services (resources.py). Outputs stay bind mounts (the agents'
folders, Prometheus' data): the results root is shared with every node (NFS on
a cluster; ports.py checks it before anything starts). A file larger than the
swarm's limit for one secret or config (500 KiB) keeps its bind mount from that
shared folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from orchestrator.backends.docker.containers import CONFIG_DIR, ContainerSpec, Mount
from orchestrator.backends.docker.engine import LABEL_UNIT

MAX_BYTES = 500 * 1024  # the swarm's limit for one secret or config
SECRET_MODE = 0o400  # the agents run as root in their containers
CONFIG_MODE = 0o444


@dataclass(frozen=True, slots=True)
class InputFile:
    source: Path  # on this machine
    target: str  # absolute path in the container
    secret: bool  # keys inside: a secret, else a config


def inputs_of(container: ContainerSpec) -> tuple[ContainerSpec, tuple[InputFile, ...]]:
    """The container without the read-only bind mounts whose files its command
    names, and those files (read when the service is created: call it then).
    A mount with a file too large for the swarm stays as it is."""
    files: list[InputFile] = []
    kept: list[Mount] = []
    for mount in container.mounts:
        named = _named_files(mount, container.command) if mount.read_only else []
        if not named or any(_too_large(f.source) for f in named):
            kept.append(mount)
            continue
        files += named
    return dataclasses.replace(container, mounts=tuple(kept)), tuple(files)


def _named_files(mount: Mount, command: Sequence[str]) -> list[InputFile]:
    """The files under `mount`'s target that `command` names (`path` or `--flag=path`)."""
    target = PurePosixPath(mount.target)
    found: list[InputFile] = []
    for arg in command:
        value = arg.partition("=")[2] if arg.startswith("--") and "=" in arg else arg
        path = PurePosixPath(value)
        if not path.is_absolute() or path == target or not path.is_relative_to(target):
            continue
        source = Path(mount.source) / path.relative_to(target)
        if source.is_file():
            found.append(InputFile(source, str(path), secret=mount.target == CONFIG_DIR))
    return found


def _too_large(path: Path) -> bool:
    return path.stat().st_size > MAX_BYTES


def create_files(
    client: Any, run_id: str, unit: str, files: Sequence[InputFile], labels: Mapping[str, str]
) -> dict[str, list[dict[str, Any]]]:
    """Create the secrets and configs of `files` on the manager; returns the
    ContainerSpec's `Secrets` and `Configs` entries that mount them."""
    refs: dict[str, list[dict[str, Any]]] = {"Secrets": [], "Configs": []}
    tagged = {**labels, LABEL_UNIT: unit}
    for item in files:
        data = item.source.read_bytes()
        digest = hashlib.sha256(f"{unit}\0{item.target}\0".encode() + data).hexdigest()
        name = f"testbed-{run_id}-{digest[:12]}"  # names are global to the swarm (at most 64)
        mode = SECRET_MODE if item.secret else CONFIG_MODE
        file = {"Name": item.target, "UID": "0", "GID": "0", "Mode": mode}
        if item.secret:
            made = client.api.create_secret(name, data, labels=tagged)
            refs["Secrets"].append({"File": file, "SecretID": made["ID"], "SecretName": name})
        else:
            made = client.api.create_config(name, data, labels=tagged)
            refs["Configs"].append({"File": file, "ConfigID": made["ID"], "ConfigName": name})
    return refs
