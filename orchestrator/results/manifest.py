"""manifest.json: everything needed to tell what produced a bundle and to rerun
it (project version and git revision, seed, tool versions, host info, the
dataset's content hash, the orchestrator process while it runs)."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

import orchestrator

if TYPE_CHECKING:
    from orchestrator.datasets import Dataset
    from orchestrator.spec import DatasetConfig

REPO = Path(__file__).resolve().parents[2]
TOOL_TIMEOUT_SECONDS = 10.0
MANIFEST_VERSION = 1


def find_tool(name: str) -> str | None:
    """`name` from the project's node_modules/.bin, else from PATH."""
    local = REPO / "node_modules" / ".bin" / name
    return str(local) if local.exists() else shutil.which(name)


def _output(argv: list[str], cwd: Path | None = None) -> str | None:
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_SECONDS,
            cwd=cwd,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return (done.stdout or done.stderr).strip()


def _first_version(text: str | None) -> str | None:
    if not text:
        return None
    m = re.search(r"\d+\.\d+(\.\d+)?([-+.][0-9A-Za-z.+-]*)?", text)
    return m.group(0) if m else text.splitlines()[0]


def tool_versions() -> dict[str, str | None]:
    """Versions of the external tools a run uses (None = not installed)."""
    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "testbed": orchestrator.__version__,
    }
    anvil = find_tool("anvil")
    versions["anvil"] = _first_version(_output([anvil, "--version"])) if anvil else None
    solc = find_tool("solcjs")
    versions["solc"] = _first_version(_output([solc, "--version"])) if solc else None
    glpsol = find_tool("glpsol")
    versions["glpsol"] = _first_version(_output([glpsol, "--version"])) if glpsol else None
    for module in ("web3", "highspy", "pyomo", "pyzmq"):
        versions[module] = _package_version(module)
    return versions


def _package_version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_revision(repo: Path = REPO) -> dict[str, Any]:
    """{"commit": sha or None, "dirty": bool or None}."""
    sha = _output(["git", "rev-parse", "HEAD"], cwd=repo)
    if sha is None:
        return {"commit": None, "dirty": None}
    status = _output(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo)
    return {"commit": sha, "dirty": bool(status)}


def host_info() -> dict[str, Any]:
    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "python_executable": sys.executable,
    }


def dataset_hash(dataset: Dataset) -> str:
    """sha256 of the traces a run reads (the selected prosumers' offers, in a
    canonical form): the same whatever the files' formatting, different as soon
    as one offer of the run changes (or the synthetic generator does)."""
    digest = hashlib.sha256()
    for p in dataset.prosumers:
        digest.update(f"{p.id}:{p.feeder}\n".encode())
        for o in p.offers:
            digest.update(f"{o.start},{o.end},{o.energy_wh}\n".encode())
    return "sha256:" + digest.hexdigest()


def dataset_record(config: DatasetConfig, dataset: Dataset) -> dict[str, Any]:
    """manifest.json's `dataset`: what `testbed rerun` checks before it repeats a run."""
    return {
        "kind": config.kind,
        "path": config.path,
        "prosumers": len(dataset.prosumers),
        "content_hash": dataset_hash(dataset),
    }


def orchestrator_process() -> dict[str, Any]:
    """This process, so that `ps`, `logs -f` and `results prune` can tell a live run
    from one whose orchestrator is gone (a pid alone could have been reused)."""
    me = psutil.Process()
    return {"host": platform.node(), "pid": me.pid, "create_time": me.create_time()}


def build_manifest(
    *,
    run_id: str,
    spec_name: str,
    spec_file: str | None,
    seed: int,
    backend: str,
    argv: list[str],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "version": orchestrator.__version__,
        "run_id": run_id,
        "spec_name": spec_name,
        "spec_file": spec_file,
        "seed": seed,
        "backend": backend,
        "command": argv,
        "git": git_revision(),
        "tools": tool_versions(),
        "host": host_info(),
        "orchestrator": orchestrator_process(),
    }
    if extra:
        manifest.update(extra)
    return manifest
