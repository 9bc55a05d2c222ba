"""The private registry the swarm's nodes pull the testbed's images from.

    registry = Registry.start(client, state_dir)     # docker-registry on docker0:5000
    refs = registry.push_images(client, {"agent": "testbed/agent:1a2b..."})
    registry.stop()                                   # what start() made, nothing else
    Registry.given("10.0.0.5:5000")                   # the user's own: push only

`start` runs Debian's `docker-registry` (the CNCF distribution registry) as a
process of this machine, serving TLS with a self-signed certificate whose
subjectAltName is the registry's IP: Docker refuses plain HTTP to any registry
outside 127.0.0.0/8, and trusting a CA needs no engine restart, only the file
/etc/docker/certs.d/<address>/ca.crt on every engine that pulls (the lab's nodes
see this machine's certs.d). Its storage is kept in the cache directory across
runs, so pushing an image whose layers are there already takes seconds.

`push_images` tags each image with its content hash (the image id) under the
registry's address and pushes what the registry does not have yet.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import TestbedError
from orchestrator.images.inputs import cache_dir

DEFAULT_PORT = 5000
CERTS_D = Path("/etc/docker/certs.d")
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
PUSH_TIMEOUT_SECONDS = 900
CERT_DAYS = 3650
TAG_CHARS = 16
BINARY = "docker-registry"

Say = Callable[[str], None]


class RegistryError(TestbedError):
    """The registry could not be started, reached or pushed to."""

    exit_code = 1


def docker0_address(client: Any) -> str:
    """The gateway of the engine's default bridge (docker0): the address this
    machine has for its containers, hence for the lab's nodes."""
    network = client.networks.get("bridge")
    configs = network.attrs.get("IPAM", {}).get("Config") or []
    for config in configs:
        if config.get("Gateway"):
            return str(config["Gateway"])
    raise RegistryError("the engine's bridge network has no gateway address")


@dataclass
class Registry:
    """A registry at `address` (host:port). `pid`, `folder` and `ca_placed` are
    set when this process (or an earlier `testbed lab up`) started it."""

    address: str
    ca: str | None = None  # the CA file that verifies its certificate, if ours
    pid: int | None = None
    folder: str | None = None  # config, certificate, log
    ca_placed: str | None = None  # the certs.d file start() wrote

    @classmethod
    def given(cls, address: str, ca: str | None = None) -> Registry:
        """A registry the user runs: nothing is started or stopped."""
        return cls(address=address, ca=ca)

    @classmethod
    def start(
        cls,
        client: Any,
        folder: Path,
        *,
        host: str | None = None,
        port: int = DEFAULT_PORT,
        storage: Path | None = None,
        say: Say = lambda _line: None,
    ) -> Registry:
        """docker-registry serving TLS on host:port (default: docker0's address)."""
        binary = shutil.which(BINARY)
        if binary is None:
            raise RegistryError(
                f"{BINARY} not found: install the Debian package docker-registry "
                "(scripts/setup.sh --tests)"
            )
        host = host or docker0_address(client)
        address = f"{host}:{port}"
        folder.mkdir(parents=True, exist_ok=True)
        cert, key = _certificate(folder, host)
        storage = storage or cache_dir() / "registry"
        storage.mkdir(parents=True, exist_ok=True)
        config = folder / "config.yml"
        config.write_text(json.dumps(_config(address, cert, key, storage), indent=2))
        log = folder / "registry.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [binary, "serve", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives a `testbed lab up`; Ctrl-C spares it
            )
        registry = cls(address=address, ca=str(cert), pid=process.pid, folder=str(folder))
        try:
            registry.ca_placed = str(place_ca(address, cert))
            registry.wait_ready(process, log)
        except BaseException:
            registry.stop()
            raise
        say(f"registry: serving https://{address} (pid {process.pid}, log {log})")
        return registry

    def wait_ready(self, process: subprocess.Popen[bytes], log: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self.answers():
            if process.poll() is not None:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:])
                raise RegistryError(f"{BINARY} exited ({process.returncode}):\n{tail}")
            if time.monotonic() > deadline:
                raise RegistryError(
                    f"registry at {self.address} did not answer within "
                    f"{START_TIMEOUT_SECONDS:g} s (log: {log})"
                )
            time.sleep(0.2)

    def answers(self) -> bool:
        """Whether GET /v2/ answers over TLS (200, or 401 for a registry with auth)."""
        import requests

        try:
            reply = requests.get(f"https://{self.address}/v2/", verify=self._verify(), timeout=5)
        except requests.RequestException:
            return False
        return reply.status_code in (200, 401)

    def has(self, repository: str, tag: str) -> bool:
        import requests

        url = f"https://{self.address}/v2/{repository}/manifests/{tag}"
        accept = "application/vnd.docker.distribution.manifest.v2+json"
        try:
            reply = requests.head(
                url, verify=self._verify(), timeout=10, headers={"Accept": accept}
            )
        except requests.RequestException:
            return False
        return reply.status_code == 200

    def _verify(self) -> str | bool:
        return self.ca or True

    def push_images(
        self, client: Any, images: Mapping[str, str], say: Say = lambda _line: None
    ) -> dict[str, str]:
        """{name: reference in this registry} for {name: local image}; each is
        tagged `<address>/<repository>:<content hash>` and pushed when missing."""
        refs: dict[str, str] = {}
        for name, local in images.items():
            refs[name] = self.push(client, local, say)
        return refs

    def push(self, client: Any, local: str, say: Say = lambda _line: None) -> str:
        image = client.images.get(local)
        content = str(image.id).partition(":")[2][:TAG_CHARS]
        repository = f"{self.address}/{_repository_of(local)}"
        ref = f"{repository}:{content}"
        if self.has(_repository_of(local), content):
            image.tag(repository, content)
            say(f"registry: {ref} (already there)")
            return ref
        started = time.monotonic()
        image.tag(repository, content)
        for chunk in client.api.push(repository, tag=content, stream=True, decode=True):
            if "error" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                raise RegistryError(f"push of {ref} failed: {detail}")
        say(f"registry: pushed {ref} in {time.monotonic() - started:.1f} s")
        return ref

    def stop(self) -> None:
        """Stop the process start() made and remove the CA file it placed."""
        if self.pid is not None:
            _terminate(self.pid)
            self.pid = None
        if self.ca_placed:
            path = Path(self.ca_placed)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # only if nothing else is in it
            self.ca_placed = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Registry:
        return cls(
            address=str(data["address"]),
            ca=data.get("ca"),
            pid=data.get("pid"),
            folder=data.get("folder"),
            ca_placed=data.get("ca_placed"),
        )


def _repository_of(local: str) -> str:
    """`testbed/agent` of `testbed/agent:1a2b` (or of `host:5000/testbed/agent:1a2b`)."""
    name = local.rsplit("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        name = rest  # drop another registry's host
    return name


def _config(address: str, cert: Path, key: Path, storage: Path) -> dict[str, Any]:
    # JSON is YAML: the registry reads this file as its config.yml
    return {
        "version": 0.1,
        "log": {"level": "info", "fields": {"service": "registry"}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
        },
        "http": {
            "addr": address,
            "tls": {"certificate": str(cert), "key": str(key)},
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
    }


def _certificate(folder: Path, host: str) -> tuple[Path, Path]:
    """A self-signed certificate for `host` (an IP address or a DNS name), made
    once per folder and host and reused, so the engines' ca.crt stays valid."""
    cert, key = folder / f"{host}.crt", folder / f"{host}.key"
    if cert.exists() and key.exists():
        return cert, key
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"testbed registry {host}")])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key


def place_ca(address: str, cert: Path, root: Path = CERTS_D) -> Path:
    """Trust `cert` for `address` on this machine's engine (and the lab's nodes,
    which mount this folder): /etc/docker/certs.d/<address>/ca.crt."""
    target = root / address / "ca.crt"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cert, target)
    except OSError as exc:
        raise RegistryError(
            f"cannot place the registry's CA at {target} ({exc.strerror}): run as root, "
            f"or copy {cert} there yourself"
        ) from exc
    return target


def _terminate(pid: int) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT_SECONDS; reaps it when it is our child.
    A pid from an earlier process's state is only signalled if it is still a registry."""
    if not _is_registry(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while _alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        time.sleep(0.05)


def _is_registry(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(argv) and Path(argv[0].decode(errors="replace")).name == BINARY


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
