"""The bundle a board gets: a wheelhouse (third-party wheels for the host's
architecture + the project's agents wheel) and, from it, a virtualenv.

Boards only run prosumer host processes, which need few third-party packages
(BOARD_REQUIREMENTS): no web3, numpy or LP solvers, so the wheelhouse is small
and a BeagleBone Black can build it itself (README.md in this folder).

On the host (`<remote_dir>` under the login's home):
    wheelhouse/<deps key>/     the third-party wheels and requirements.txt
    wheelhouse/<deps key>/project-<key>/   the project's wheel
    venv/<deps key>/           python3 -m venv + pip install --no-index from it
    venv/<deps key>/.project   hash of the project wheel installed in it
Both are reused by later runs: only a changed requirement set makes a new
virtualenv, and only changed project sources reinstall the project wheel. A run
that reinstalls it while another run's agents use the same virtualenv changes code
under them: run one experiment per board at a time.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.backends.ssh.connection import Connection, SshError
from orchestrator.backends.ssh.remote import q, remote_path
from orchestrator.images.inputs import (
    REPO,
    Digest,
    ImageInputError,
    Wheelhouse,
    build_project_wheel,
    cache_dir,
    installed_constraints,
    locked_requirements,
    python_tag,
    source_files,
)

# What `python -m agents prosumer` imports (agents.common, agents.prosumer).
BOARD_REQUIREMENTS = (
    "pyzmq",
    "prometheus-client",
    "coincurve",
    "eth-abi",
    "eth-keys",
    "eth-utils",
    "rlp",
)
BOARD_UNPINNED = ("pycryptodome",)  # pinned by the installed version (constraints)
PROJECT_PACKAGES = ("agents", "market")
PIP_TIMEOUT_SECONDS = 1800.0  # a board building nothing still needs minutes for pip
BOARD_BUILD_TIMEOUT_SECONDS = 4 * 3600.0  # compiling e.g. pyzmq on a BeagleBone Black

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class BoardBundle:
    """The local files pushed to every host."""

    wheels: Path  # directory: *.whl + requirements.txt
    deps_key: str
    project_wheel: Path
    project_key: str


def board_requirements() -> str:
    """requirements.txt of the boards' third-party packages, pinned."""
    return locked_requirements(BOARD_REQUIREMENTS) + "".join(f"{n}\n" for n in BOARD_UNPINNED)


def dir_key(folder: Path) -> str:
    d = Digest()
    for path in sorted(folder.iterdir()):
        if path.is_file():
            d.add(path.name, str(path.stat().st_size).encode())
    return d.hexdigest()


def local_wheelhouse(say: Say) -> Path:
    requirements = board_requirements()
    constraints = installed_constraints()
    key = (
        Digest()
        .add("board-requirements", requirements.encode())
        .add("constraints", constraints.encode())
        .add("python", f"{python_tag()}-{os.uname().machine}".encode())
        .hexdigest()
    )
    return Wheelhouse(requirements, constraints, key).ensure(say)


def prepare_bundle(wheelhouse: Path | None, say: Say, services: bool = False) -> BoardBundle:
    """The wheels (the spec's prepared directory, else built here: the
    prosumers' few, or with `services` every agent's, as in the agent image)
    and the project wheel (rebuilt when the sources change)."""
    if wheelhouse is not None:
        if not wheelhouse.is_dir() or not any(wheelhouse.glob("*.whl")):
            raise ImageInputError(f"deployment.ssh.wheelhouse: {wheelhouse} holds no *.whl")
        wheels = wheelhouse
        if not (wheels / "requirements.txt").is_file():
            raise ImageInputError(
                f"deployment.ssh.wheelhouse: {wheelhouse}/requirements.txt is missing "
                "(`testbed hosts requirements > requirements.txt` writes it)"
            )
    else:
        wheels = Wheelhouse.for_agents().ensure(say) if services else local_wheelhouse(say)
    sources = Digest()
    for name, path in source_files(REPO, PROJECT_PACKAGES):
        sources.add_file(name, path)
    project_key = sources.hexdigest()
    out = cache_dir() / "ssh-project" / project_key
    found = sorted(out.glob("te_testbed_agents-*.whl")) if out.is_dir() else []
    wheel = found[-1] if found else build_project_wheel(out, f"0+{project_key}")
    return BoardBundle(wheels, dir_key(wheels), wheel, project_key)


def _push_dir(conn: Connection, local: Path, remote: str) -> int:
    """Copy the files of `local` missing (or of another size) on the host; returns bytes sent."""
    sftp = conn.sftp()
    present: dict[str, int] = {}
    try:
        present = {a.filename: int(a.st_size or 0) for a in sftp.listdir_attr(remote)}
    except OSError:
        conn.run(f"mkdir -p {q(remote)}").check(conn.host.name, "mkdir")
    sent = 0
    for path in sorted(local.iterdir()):
        if not path.is_file():
            continue
        size = path.stat().st_size
        if present.get(path.name) == size:
            continue
        tmp = f"{remote}/.{path.name}.part"
        sftp.put(str(path), tmp)
        sftp.posix_rename(tmp, f"{remote}/{path.name}")
        sent += size
    return sent


def install(conn: Connection, home: str, remote_dir: str, bundle: BoardBundle, say: Say) -> str:
    """The host's virtualenv for `bundle` (created or reused); returns its python.

    Both steps run under an flock of the virtualenv, and each checks again inside it:
    two runs that start on one board at once neither build the same virtualenv twice
    nor install into it at the same time."""
    name = conn.host.name
    wheels = remote_path(home, remote_dir, "wheelhouse", bundle.deps_key)
    venv = remote_path(home, remote_dir, "venv", bundle.deps_key)
    python = f"{venv}/bin/python"
    locked = f"""set -e
mkdir -p "$(dirname {q(venv)})"
exec 9>{q(venv)}.lock
flock 9
"""
    state = conn.run(f"cat {q(venv)}/.ready {q(venv)}/.project 2>/dev/null").stdout.split()
    if "ready" not in state:
        sent = _push_dir(conn, bundle.wheels, wheels)
        say(f"{name}: wheelhouse pushed ({sent / 2**20:.1f} MB); creating the virtualenv")
        script = f"""{locked}
if [ "$(cat {q(venv)}/.ready 2>/dev/null)" != ready ]; then
  rm -rf {q(venv)}
  {q(conn.host.python)} -m venv {q(venv)}
  {q(python)} -m pip install --quiet --disable-pip-version-check --no-index \
    --find-links {q(wheels)} -r {q(wheels)}/requirements.txt
  echo ready > {q(venv)}/.ready
fi
"""
        conn.sh(script, timeout=PIP_TIMEOUT_SECONDS).check(name, "virtualenv with the wheelhouse")
    if bundle.project_key not in state:
        project = f"{wheels}/project-{bundle.project_key}"
        remote_wheel = f"{project}/{bundle.project_wheel.name}"
        conn.run(f"mkdir -p {q(project)}").check(name, "mkdir")
        conn.sftp().put(str(bundle.project_wheel), f"{remote_wheel}.part.{os.getpid()}")
        conn.sftp().posix_rename(f"{remote_wheel}.part.{os.getpid()}", remote_wheel)
        script = f"""{locked}
if [ "$(cat {q(venv)}/.project 2>/dev/null)" != {q(bundle.project_key)} ]; then
  {q(python)} -m pip install --quiet --disable-pip-version-check --no-index --no-deps \
    --force-reinstall {q(remote_wheel)}
  echo {q(bundle.project_key)} > {q(venv)}/.project
fi
"""
        conn.sh(script, timeout=PIP_TIMEOUT_SECONDS).check(name, "installing the agents wheel")
        say(f"{name}: agents installed in {venv}")
    return python


def pull_tree(conn: Connection, remote: str, local: Path) -> int:
    """Copy the remote directory tree `remote` into `local`; returns files copied."""
    sftp = conn.sftp()
    try:
        entries = sftp.listdir_attr(remote)
    except OSError:
        return 0
    local.mkdir(parents=True, exist_ok=True)
    copied = 0
    for entry in entries:
        path = f"{remote}/{entry.filename}"
        if stat.S_ISDIR(entry.st_mode or 0):
            copied += pull_tree(conn, path, local / entry.filename)
        elif stat.S_ISREG(entry.st_mode or 0):
            sftp.get(path, str(local / entry.filename))
            copied += 1
    return copied


def push_file(conn: Connection, local: Path, remote: str) -> None:
    try:
        conn.sftp().put(str(local), remote)
    except OSError as exc:
        raise SshError(f"{conn.host.name}: cannot copy {local.name} to {remote}: {exc}") from exc


def build_on_board(
    conn: Connection,
    home: str,
    remote_dir: str,
    out: Path,
    pip_args: Sequence[str] = (),
    say: Say = lambda _m: None,
) -> int:
    """Build the boards' wheelhouse on this host with its own pip (its
    architecture, its Python; packages without a wheel for it are compiled
    there, once) and copy it into `out`; returns the number of wheels."""
    name = conn.host.name
    build = remote_path(home, remote_dir, "wheelhouse-build")
    conn.run(f"rm -rf {q(build)}/wheels && mkdir -p {q(build)}/wheels").check(name, "mkdir")
    with conn.sftp().open(f"{build}/wheels/requirements.txt", "w") as f:
        f.write(board_requirements())
    extra = " ".join(q(a) for a in pip_args)
    script = f"""set -e
cd {q(build)}
[ -x venv/bin/pip ] || {q(conn.host.python)} -m venv venv
venv/bin/pip wheel --disable-pip-version-check -w wheels -r wheels/requirements.txt {extra}
"""
    say(f"{name}: pip wheel on the board (packages without a wheel are compiled: can be slow)")
    conn.sh(script, timeout=BOARD_BUILD_TIMEOUT_SECONDS).check(name, "pip wheel on the board")
    out.mkdir(parents=True, exist_ok=True)
    pull_tree(conn, f"{build}/wheels", out)
    return len(list(out.glob("*.whl")))
