"""What goes into each image: build contexts, their content hashes, and the
wheels built on the host.

An image's tag is `testbed/<kind>:<hash>` where the hash covers every input
(Dockerfile, entrypoint, base image id, binaries, wheel requirements, project
sources), so an image is rebuilt exactly when one of them changes. The
expensive inputs (wheelhouse, project wheel) are only produced when the tag is
missing: hashing reads sources, building a context builds wheels.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.errors import TestbedError

REPO = Path(__file__).resolve().parents[2]
IMAGES_DIR = REPO / "images"
ENTRYPOINT = IMAGES_DIR / "common" / "entrypoint.sh"
NETEM_QUEUE = IMAGES_DIR / "common" / "netem_queue.py"
# Packages of the project that run inside the agent image (agents never import
# orchestrator, so the orchestrator's code is not in the image).
AGENT_PACKAGES = ("agents", "market")
# Third-party distributions the agents import (pinned versions from requirements.lock;
# their own dependencies are pinned to what this interpreter has installed).
AGENT_REQUIREMENTS = (
    "web3",
    "eth-account",
    "pyzmq",
    "prometheus-client",
    "numpy",
    "scipy",
    "highspy",
    "pyomo",
    "coincurve",
)
HASH_CHARS = 16
_SKIP_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


class ImageInputError(TestbedError):
    """An image input is missing or could not be produced (wheels, binaries)."""

    exit_code = 1


def cache_dir() -> Path:
    """$TESTBED_CACHE_DIR, else $XDG_CACHE_HOME/testbed, else ~/.cache/testbed."""
    env = os.environ.get("TESTBED_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "testbed"


class Digest:
    """sha256 over named parts (names included, so moving content changes it)."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def add(self, name: str, data: bytes) -> Digest:
        self._h.update(f"{name}\0{len(data)}\0".encode())
        self._h.update(data)
        return self

    def add_file(self, name: str, path: Path) -> Digest:
        size = path.stat().st_size
        self._h.update(f"{name}\0{size}\0{path.stat().st_mode & 0o111}\0".encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                self._h.update(block)
        return self

    def hexdigest(self) -> str:
        return self._h.hexdigest()[:HASH_CHARS]


def source_files(root: Path, packages: Iterable[str]) -> list[tuple[str, Path]]:
    """(relative name, path) of every file of `packages` under `root`, sorted."""
    files: list[tuple[str, Path]] = []
    for package in packages:
        for dirpath, dirnames, filenames in os.walk(root / package):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
            for name in filenames:
                path = Path(dirpath) / name
                if path.suffix not in _SKIP_SUFFIXES:
                    files.append((str(path.relative_to(root)), path))
    return sorted(files)


def locked_requirements(names: Iterable[str], lock: Path = REPO / "requirements.lock") -> str:
    """requirements.txt text: the lock file's pins of `names`."""
    pins: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            pins[_normalize(line.split("==", 1)[0])] = line
    missing = [n for n in names if _normalize(n) not in pins]
    if missing:
        raise ImageInputError(f"{lock}: no pinned version of {', '.join(missing)}")
    return "".join(pins[_normalize(n)] + "\n" for n in names)


def installed_constraints() -> str:
    """constraints.txt text: every distribution installed in this interpreter,
    at its installed version (so the image gets what the tests ran with)."""
    pins = {
        _normalize(d.metadata["Name"]): f"{_normalize(d.metadata['Name'])}=={d.version}"
        for d in importlib.metadata.distributions()
        if d.metadata["Name"] and not _normalize(d.metadata["Name"]).startswith("te-testbed")
    }
    return "".join(pins[n] + "\n" for n in sorted(pins))


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def python_tag() -> str:
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


@dataclass(frozen=True)
class Wheelhouse:
    """Third-party wheels for the agent image, built once per requirement set."""

    requirements: str
    constraints: str
    key: str

    @classmethod
    def for_agents(cls) -> Wheelhouse:
        requirements = locked_requirements(AGENT_REQUIREMENTS)
        constraints = installed_constraints()
        key = (
            Digest()
            .add("requirements", requirements.encode())
            .add("constraints", constraints.encode())
            .add("python", f"{python_tag()}-{sys.platform}-{os.uname().machine}".encode())
            .hexdigest()
        )
        return cls(requirements, constraints, key)

    def path(self) -> Path:
        return cache_dir() / "wheels" / self.key

    def ensure(self, say: Callable[[str], None]) -> Path:
        """The wheelhouse directory, built with `pip wheel` if not cached."""
        target = self.path()
        if (target / "requirements.txt").exists():
            return target
        say(f"building wheels for the agent image into {target}")
        tmp = Path(tempfile.mkdtemp(prefix=".wheels-", dir=_mkdir(target.parent)))
        try:
            (tmp / "constraints.txt").write_text(self.constraints)
            (tmp / "req.txt").write_text(self.requirements)
            argv = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check"]
            argv += ["-w", str(tmp), "-r", str(tmp / "req.txt"), "-c", str(tmp / "constraints.txt")]
            _run(argv, "pip wheel (agent image dependencies)")
            (tmp / "constraints.txt").unlink()
            (tmp / "req.txt").rename(tmp / "requirements.txt")
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target


PROJECT_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "te-testbed-agents"
version = "{version}"
description = "The testbed's agents and market packages (agent image)"
requires-python = ">=3.11"

[tool.setuptools.packages.find]
include = [{includes}]

[tool.setuptools.package-data]
"*" = ["*.json"]
"""


def build_project_wheel(out: Path, version: str, packages: Iterable[str] = AGENT_PACKAGES) -> Path:
    """A wheel of the project's `packages` only, built from the working tree."""
    packages = list(packages)
    with tempfile.TemporaryDirectory(prefix="testbed-project-") as tmp:
        stage = Path(tmp) / "src"
        stage.mkdir()
        for package in packages:
            shutil.copytree(
                REPO / package,
                stage / package,
                ignore=shutil.ignore_patterns(*_SKIP_DIRS, "*.pyc", "*.pyo"),
            )
        includes = ", ".join(f'"{p}*"' for p in packages)
        (stage / "pyproject.toml").write_text(
            PROJECT_PYPROJECT.format(version=version, includes=includes)
        )
        argv = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check"]
        argv += ["--no-deps", "--no-build-isolation", "--no-index", "-w", str(out), str(stage)]
        _run(argv, "pip wheel (the project's agents)")
    wheels = sorted(out.glob("te_testbed_agents-*.whl"))
    if not wheels:
        raise ImageInputError(f"pip wheel left no project wheel in {out}")
    return wheels[-1]


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        # pip warns about every configured local index folder that does not exist
        noise = "is ignored: it is neither a file nor a directory"
        err = [line for line in proc.stderr.splitlines() if noise not in line]
        tail = "\n".join(err[-15:])
        raise ImageInputError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Context:
    """A build context: files by their name in the context."""

    files: dict[str, Path] = field(default_factory=dict)
    texts: dict[str, bytes] = field(default_factory=dict)

    def add_file(self, name: str, path: Path) -> None:
        if not path.is_file():
            raise ImageInputError(f"image input missing: {path}")
        self.files[name] = path

    def add_tree(self, name: str, root: Path) -> None:
        if not root.is_dir():
            raise ImageInputError(f"image input missing: {root}/")
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for f in sorted(filenames):
                path = Path(dirpath) / f
                self.files[f"{name}/{path.relative_to(root)}"] = path

    def add_text(self, name: str, data: str | bytes) -> None:
        self.texts[name] = data.encode() if isinstance(data, str) else data

    def entries(self) -> Iterator[tuple[str, Path | bytes]]:
        merged: dict[str, Path | bytes] = {**self.files, **self.texts}
        for name in sorted(merged):
            yield name, merged[name]

    def digest(self, extra: Iterable[tuple[str, str]] = ()) -> str:
        d = Digest()
        for name, item in self.entries():
            if isinstance(item, Path):
                d.add_file(name, item)
            else:
                d.add(name, item)
        for key, value in extra:
            d.add(f"extra:{key}", value.encode())
        return d.hexdigest()

    def tar(self, out: io.BufferedIOBase) -> None:
        """Write the context as an uncompressed tar (fixed owners and times,
        so the engine's layer cache depends on contents only)."""
        with tarfile.open(fileobj=out, mode="w") as tar:
            for name, item in self.entries():
                info = tarfile.TarInfo(name)
                info.mtime = 0
                info.uid = info.gid = 0
                if isinstance(item, Path):
                    info.size = item.stat().st_size
                    info.mode = 0o755 if os.access(item, os.X_OK) else 0o644
                    with open(item, "rb") as f:
                        tar.addfile(info, f)
                else:
                    info.size = len(item)
                    info.mode = 0o755 if name.endswith(".sh") else 0o644
                    tar.addfile(info, io.BytesIO(item))
