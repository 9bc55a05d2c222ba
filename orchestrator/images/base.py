"""The base image every testbed image starts `FROM`.

Policy ($TESTBED_BASE_IMAGE, or the `policy` argument):
- `auto` (default): python:3.11-slim when the engine has it; else the offline
  base if it was built before; else python:3.11-slim if it can be pulled; else
  the offline base, built now;
- `offline`: always the offline base;
- any other value: that image reference (pulled if missing).

The offline base needs no registry: `images/base/build-rootfs.sh` debootstraps
Debian bookworm (minbase + python3, python3-venv, iproute2, ca-certificates,
glpk-utils) from a Debian mirror into a directory, which is tarred and
imported as `testbed/base:<hash>`. The hash covers the suite, the package list
and the builder script, so the image persists in the engine across runs and
is rebuilt only when those change. Downloaded packages are kept in the cache
directory, so a rebuild does not download them again.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.errors import TestbedError
from orchestrator.images.inputs import IMAGES_DIR, Digest, cache_dir

SUITE = "bookworm"  # Python 3.11, as the project
SLIM_IMAGE = "python:3.11-slim"
BASE_REPOSITORY = "testbed/base"
BUILDER = IMAGES_DIR / "base" / "build-rootfs.sh"
PACKAGES_FILE = IMAGES_DIR / "base" / "packages.txt"
LABEL_IMAGE = "testbed.image"
LABEL_INPUTS = "testbed.inputs"
PULL_TIMEOUT_SECONDS = 120
APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))

Say = Callable[[str], None]


class BaseImageError(TestbedError):
    exit_code = 1


def base_policy(policy: str | None = None) -> str:
    return policy or os.environ.get("TESTBED_BASE_IMAGE") or "auto"


def packages() -> list[str]:
    lines = PACKAGES_FILE.read_text().splitlines()
    return [p for line in lines if (p := line.split("#", 1)[0].strip())]


def offline_key() -> str:
    d = Digest().add("suite", SUITE.encode()).add("arch", os.uname().machine.encode())
    d.add("packages", ",".join(packages()).encode())
    return d.add_file("build-rootfs.sh", BUILDER).hexdigest()


def offline_tag() -> str:
    return f"{BASE_REPOSITORY}:{offline_key()}"


def debian_mirror() -> str | None:
    """$TESTBED_DEBIAN_MIRROR, else the host's apt source for the suite's
    main archive, else None (debootstrap's default)."""
    env = os.environ.get("TESTBED_DEBIAN_MIRROR")
    if env:
        return env
    for path in APT_SOURCES:
        try:
            text = path.read_text()
        except OSError:
            continue
        for uri in re.findall(r"^URIs:\s*(\S+)", text, re.M):
            if not uri.rstrip("/").endswith("-security"):
                return uri
        for uri in re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", text, re.M):
            if "security" not in uri:
                return uri
    return None


def _image(client: Any, ref: str) -> Any | None:
    import docker.errors

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def _try_pull(client: Any, ref: str, say: Say) -> Any | None:
    import docker.errors

    repository, _, tag = ref.partition(":")
    say(f"base: pulling {ref}")
    try:
        client.api.pull(repository, tag=tag or "latest")
    except (docker.errors.APIError, OSError) as exc:
        say(f"base: cannot pull {ref} ({_first_line(exc)})")
        return None
    return _image(client, ref)


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    m = re.search(r'\("(.*)"\)', text)
    return (m.group(1) if m else text).splitlines()[0][:200]


def resolve_base(client: Any, say: Say, policy: str | None = None) -> tuple[str, bool]:
    """(image reference, offline?) of the base image, built or pulled as needed."""
    policy = base_policy(policy)
    if policy not in ("auto", "offline"):
        if _image(client, policy) is None and _try_pull(client, policy, say) is None:
            raise BaseImageError(f"base image {policy!r} is not available and cannot be pulled")
        return policy, False
    if policy == "auto":
        # An offline base built earlier is as good (and needs no registry round trip).
        if _image(client, SLIM_IMAGE) is not None:
            return SLIM_IMAGE, False
        if _image(client, offline_tag()) is None and _try_pull(client, SLIM_IMAGE, say):
            return SLIM_IMAGE, False
    return ensure_offline_base(client, say), True


def ensure_offline_base(client: Any, say: Say, run_id: str | None = None) -> str:
    tag = offline_tag()
    if _image(client, tag) is not None:
        return tag
    build_offline_base(client, tag, say, run_id)
    return tag


def build_offline_base(client: Any, tag: str, say: Say, run_id: str | None = None) -> None:
    if os.geteuid() != 0:
        raise BaseImageError(
            "building the offline base image needs root (debootstrap); run "
            "`testbed images build` as root once, or set TESTBED_BASE_IMAGE to a pullable image"
        )
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        raise BaseImageError(
            "debootstrap not found: install the Debian package debootstrap (scripts/setup.sh)"
        )
    mirror = debian_mirror()
    debs = cache_dir() / "debootstrap"
    with tempfile.TemporaryDirectory(prefix="testbed-rootfs-", dir=_tmp_root()) as tmp:
        rootfs = Path(tmp) / "rootfs"
        log = Path(tmp) / "debootstrap.log"
        say(f"base: debootstrap {SUITE} minbase + {', '.join(packages())} (log: {log})")
        argv = ["sh", str(BUILDER), SUITE, str(rootfs), ",".join(packages()), str(debs)]
        if mirror:
            argv.append(mirror)
        env = {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}
        with open(log, "wb") as out:
            code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
        if code != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise BaseImageError(f"debootstrap failed (exit {code}):\n{tail}")
        archive = Path(tmp) / "rootfs.tar"
        say("base: packing the root filesystem")
        with tarfile.open(archive, "w") as tar:
            for entry in sorted(os.listdir(rootfs)):
                tar.add(rootfs / entry, arcname=entry)
        shutil.rmtree(rootfs, ignore_errors=True)
        repository, _, version = tag.partition(":")
        labels = {LABEL_IMAGE: "base", LABEL_INPUTS: version}
        if run_id:
            labels["testbed.run"] = run_id
        changes = [f'LABEL {k}="{v}"' for k, v in labels.items()]
        changes += ["ENV LANG=C.UTF-8", 'CMD ["/bin/sh"]']
        say(f"base: importing {tag}")
        client.api.import_image(
            src=str(archive), repository=repository, tag=version, changes=changes
        )
    if _image(client, tag) is None:
        raise BaseImageError(f"docker import did not produce {tag}")


def _tmp_root() -> str | None:
    """A temporary directory on a disk (the root filesystem is ~150 MB)."""
    path = cache_dir() / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)
