"""A service's input files on a swarm: an agent's config as a bind mount of
its one file, prometheus.yml as a swarm config.

The docker backend mounts a unit's inputs from this machine's disk: the run's
config folder (read-only) for an agent, Prometheus' config folder for
Prometheus. On a swarm the task may run on any node, and the manager need not
be this machine:

- an agent's rendered config (it holds keys: the agent's private key, the
  prosumer hosts' key secret) is **bind-mounted read-only, that file alone**,
  from the run's bundle at the path the agent is given
  (`/testbed/config/<agent>.json`): an agent sees its own file, not the whole
  folder. The bundle lies on the results root, which every node shares at the
  same path (NFS on a cluster; ports.py checks it on every node the run uses
  before anything starts), as the agents' output folders do. Not a swarm
  secret: a secret costs the worker's engine a tmpfs mount and a read-only
  remount per task (under load that remount failed: "unable to remount dir as
  readonly ... device or resource busy", which ended a 310-host run), and it
  protects nothing the share does not already hold: the secret was made from
  the same file in the same bundle (its key secret is redacted when the run
  ends: render.redact_secrets);
- any other input (prometheus.yml) becomes a swarm **config**, at its own
  path, carrying the run's labels (`cleanup` and `testbed clean` remove it
  with the run's services: resources.py). A file larger than the swarm's
  limit for one config (500 KiB) keeps its bind mount from the shared folder.
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

MAX_BYTES = 500 * 1024  # the swarm's limit for one config
CONFIG_MODE = 0o444


@dataclass(frozen=True, slots=True)
class InputFile:
    source: Path  # on this machine
    target: str  # absolute path in the container


def inputs_of(container: ContainerSpec) -> tuple[ContainerSpec, tuple[InputFile, ...]]:
    """The container with each read-only bind mount whose files its command
    names replaced: the config folder by a read-only mount of each file named
    (an agent's own config), any other by those files as swarm configs (read
    when the service is created: call it then). A mount with a file too large
    for a config stays as it is."""
    files: list[InputFile] = []
    kept: list[Mount] = []
    for mount in container.mounts:
        named = _named_files(mount, container.command) if mount.read_only else []
        if named and mount.target == CONFIG_DIR:
            kept += [Mount(str(f.source), f.target, read_only=True) for f in named]
        elif not named or any(_too_large(f.source) for f in named):
            kept.append(mount)
        else:
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
            found.append(InputFile(source, str(path)))
    return found


def _too_large(path: Path) -> bool:
    return path.stat().st_size > MAX_BYTES


def create_files(
    client: Any, run_id: str, unit: str, files: Sequence[InputFile], labels: Mapping[str, str]
) -> dict[str, list[dict[str, Any]]]:
    """Create the configs of `files` on the manager; returns the ContainerSpec's
    `Configs` entries that mount them."""
    refs: dict[str, list[dict[str, Any]]] = {"Configs": []}
    tagged = {**labels, LABEL_UNIT: unit}
    for item in files:
        data = item.source.read_bytes()
        digest = hashlib.sha256(f"{unit}\0{item.target}\0".encode() + data).hexdigest()
        name = f"testbed-{run_id}-{digest[:12]}"  # names are global to the swarm (at most 64)
        file = {"Name": item.target, "UID": "0", "GID": "0", "Mode": CONFIG_MODE}
        made = client.api.create_config(name, data, labels=tagged)
        refs["Configs"].append({"File": file, "ConfigID": made["ID"], "ConfigName": name})
    return refs
