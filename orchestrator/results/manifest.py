"""manifest.json: everything needed to tell what produced a bundle and to rerun
it (project version and git revision, seed, tool versions, host info)."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

import orchestrator

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
    }
    if extra:
        manifest.update(extra)
    return manifest
