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

Also here: what is checked on the boards before agents are placed (listening
ports, glpsol) and what is copied to and from them (configs, logs, outputs).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.backends.base import BackendError
from orchestrator.backends.ssh.connection import Connection, Pool, SshError
from orchestrator.backends.ssh.remote import q, remote_path
from orchestrator.backends.ssh.units import LISTENING_COMMAND, RemoteUnit, listening_ports
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
from orchestrator.plan import Plan

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


def busy_ports(pool: Pool, hosts: Iterable[str]) -> dict[str, set[int]]:
    """Ports already listening on each of `hosts` (so that an agent's metrics or
    endpoint port never collides with another program's)."""
    answers = pool.each(lambda conn: conn.sh(LISTENING_COMMAND).stdout, sorted(set(hosts)))
    busy: dict[str, set[int]] = {}
    for host, answer in answers.items():
        if isinstance(answer, BaseException):
            raise BackendError(f"{host}: cannot list its listening ports: {answer}")
        busy[host] = listening_ports(answer)
    return busy


def check_solver_hosts(pool: Pool, plan: Plan, agent_host: Mapping[str, str]) -> None:
    """Solvers with engine glpk need glpsol on the host they run on."""
    for agent in plan.by_role("solver"):
        host = agent_host.get(agent.name)
        if host is None or getattr(agent.settings, "engine", None) != "glpk":
            continue
        if pool.get(host).run("command -v glpsol").code != 0:
            raise BackendError(
                f"{agent.name}: engine glpk needs glpsol on {host} "
                "(Debian: apt install glpk-utils), or use engine highs"
            )


def pull_log(pool: Pool, run_dir: str, record: RemoteUnit) -> None:
    """The agent's log from its board into the bundle (best effort: a board that
    does not answer keeps it); the orchestrator's own lines about it go last."""
    log = record.unit.log_file
    with contextlib.suppress(SshError, OSError):
        conn = pool.get(record.board)
        log.parent.mkdir(parents=True, exist_ok=True)
        notes = log.read_text() if log.exists() and not record.pulled else ""
        conn.sftp().get(f"{run_dir}/logs/{record.unit.name}.log", str(log))
        if notes:
            with open(log, "a") as f:
                f.write(notes)
        record.pulled = True
