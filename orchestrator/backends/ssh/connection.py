"""One paramiko connection per host, reused for the whole run; hosts handled
in parallel.

Host keys are checked against the spec's known_hosts file: a host that is not
there is refused unless `deployment.ssh.accept_new_host_keys` is true (then its
key is appended to the file, as OpenSSH's `StrictHostKeyChecking=accept-new`
does); a host whose key differs from the recorded one is always refused.
Authentication is by key only (a key file, else the ssh-agent and
~/.ssh/id_*): no password is ever sent.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import shlex
import socket
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import paramiko

from orchestrator.backends.base import BackendError
from orchestrator.backends.ssh.inventory import Inventory, SshHost
from orchestrator.spec.model import SshConfig

KEEPALIVE_SECONDS = 5
COMMAND_TIMEOUT_SECONDS = 30.0
PARALLEL_HOSTS = 16

T = TypeVar("T")
_KNOWN_HOSTS_LOCK = threading.Lock()


class SshError(BackendError):
    """A host could not be reached or used over ssh."""


class HostUnreachable(SshError):
    """No connection (refused, timed out, lost)."""


class AuthFailed(SshError):
    """The host refused every key offered."""


class HostKeyRefused(SshError):
    """The host's key is unknown (and accepting new keys is off) or changed."""


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _UnknownHostPolicy(paramiko.MissingHostKeyPolicy):
    """Accept-new (append to known_hosts) or refuse, as the spec says."""

    def __init__(self, host: SshHost, settings: SshConfig) -> None:
        self.host = host
        self.settings = settings

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        path = Path(self.settings.known_hosts)
        if not self.settings.accept_new_host_keys:
            raise HostKeyRefused(
                f"{self.host.name} ({self.host.target}): host key {key.get_name()} "
                f"{fingerprint(key)} is not in {path}; add it (ssh-keyscan -p {self.host.port} "
                f"{self.host.address} >> {path}, after checking it) or set "
                "deployment.ssh.accept_new_host_keys: true"
            )
        with _KNOWN_HOSTS_LOCK:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as f:
                f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)


@dataclass(frozen=True, slots=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def check(self, host: str, what: str) -> Result:
        if self.code != 0:
            detail = (self.stderr or self.stdout).strip().splitlines()[-10:]
            raise SshError(f"{host}: {what} failed (exit {self.code}): " + "\n".join(detail))
        return self


class Connection:
    """An open ssh connection to one host (thread-safe for `run`)."""

    def __init__(self, host: SshHost, client: paramiko.SSHClient) -> None:
        self.host = host
        self.client = client
        self._sftp: paramiko.SFTPClient | None = None
        self._sftp_lock = threading.Lock()

    @property
    def alive(self) -> bool:
        transport = self.client.get_transport()
        return transport is not None and transport.is_active()

    def local_address(self) -> str:
        """This machine's address on the route to the host."""
        transport = self.client.get_transport()
        assert transport is not None
        sock: Any = transport.sock
        return str(sock.getsockname()[0])

    def run(
        self, command: str, timeout: float = COMMAND_TIMEOUT_SECONDS, stdin: bytes | None = None
    ) -> Result:
        """Run a shell command on the host; HostUnreachable when the connection fails."""
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise HostUnreachable(f"{self.host.name} ({self.host.target}): connection lost")
        try:
            channel = transport.open_session(timeout=timeout)
            channel.settimeout(timeout)
            channel.exec_command(command)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            out = channel.makefile("rb").read()
            err = channel.makefile_stderr("rb").read()
            code = channel.recv_exit_status()
            channel.close()
            if code == -1:  # the host closed the channel without an exit status
                raise EOFError("the channel closed without an exit status")
        except (OSError, EOFError, paramiko.SSHException) as exc:
            with contextlib.suppress(Exception):
                transport.close()
            reason = "no answer" if isinstance(exc, socket.timeout) else repr(exc)
            raise HostUnreachable(
                f"{self.host.name} ({self.host.target}): {reason} (command: {command[:60]}...)"
            ) from exc
        return Result(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    def sh(self, script: str, timeout: float = COMMAND_TIMEOUT_SECONDS) -> Result:
        """Run a POSIX sh script (passed on stdin: no quoting limits)."""
        return self.run("sh -s", timeout, stdin=script.encode())

    def sftp(self) -> paramiko.SFTPClient:
        with self._sftp_lock:
            if self._sftp is None:
                try:
                    self._sftp = self.client.open_sftp()
                except (OSError, paramiko.SSHException) as exc:
                    raise HostUnreachable(f"{self.host.name}: cannot open sftp: {exc!r}") from exc
                self._sftp.get_channel().settimeout(COMMAND_TIMEOUT_SECONDS * 2)  # type: ignore[union-attr]
            return self._sftp

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._sftp is not None:
                self._sftp.close()
        with contextlib.suppress(Exception):
            self.client.close()


def connect(host: SshHost, settings: SshConfig) -> Connection:
    """Open a verified, key-authenticated connection (clear errors otherwise)."""
    client = paramiko.SSHClient()
    if Path(settings.known_hosts).is_file():
        try:
            client.load_host_keys(settings.known_hosts)
        except (OSError, paramiko.SSHException) as exc:
            raise HostKeyRefused(f"known_hosts {settings.known_hosts}: cannot read: {exc}") from exc
    client.set_missing_host_key_policy(_UnknownHostPolicy(host, settings))
    timeout = settings.connect_timeout_seconds
    where = f"{host.name} ({host.target})"
    keys: dict[str, Any] = {"allow_agent": True, "look_for_keys": True}
    if host.key_file is not None:
        try:
            pkey = paramiko.PKey.from_path(host.key_file)
        except (OSError, paramiko.SSHException, ValueError) as exc:
            client.close()
            raise AuthFailed(f"{where}: cannot read key file {host.key_file}: {exc}") from exc
        keys = {"pkey": pkey, "allow_agent": False, "look_for_keys": False}
    try:
        client.connect(
            host.address,
            port=host.port,
            username=host.user,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
            **keys,
        )
    except HostKeyRefused:
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise HostKeyRefused(
            f"{where}: host key CHANGED: {settings.known_hosts} has {exc.expected_key.get_name()} "
            f"{fingerprint(exc.expected_key)} for {host.known_hosts_name}, the host presents "
            f"{fingerprint(exc.key)}; refusing to connect (if the board was reinstalled, remove "
            f"the old entry: ssh-keygen -R {shlex.quote(host.known_hosts_name)} "
            f"-f {settings.known_hosts})"
        ) from exc
    except paramiko.AuthenticationException as exc:
        client.close()
        with_key = f"key {host.key_file}" if host.key_file else "the ssh-agent and ~/.ssh keys"
        raise AuthFailed(f"{where}: authentication failed with {with_key} ({exc})") from exc
    except paramiko.ssh_exception.NoValidConnectionsError as exc:
        client.close()
        why = "; ".join(
            sorted({getattr(e, "strerror", None) or str(e) for e in exc.errors.values()})
        )
        raise HostUnreachable(f"{where}: cannot connect to port {host.port}: {why}") from exc
    except TimeoutError as exc:
        client.close()
        raise HostUnreachable(f"{where}: cannot connect: no answer within {timeout:g} s") from exc
    except (OSError, EOFError, paramiko.SSHException) as exc:
        client.close()
        raise HostUnreachable(f"{where}: cannot connect: {exc or type(exc).__name__}") from exc
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(KEEPALIVE_SECONDS)
    return Connection(host, client)


class Pool:
    """One connection per host of the inventory, opened on first use and
    reopened once when lost."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._connections: dict[str, Connection] = {}
        self._lock = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {
            h.name: threading.Lock() for h in inventory.hosts
        }
        self._executor = ThreadPoolExecutor(PARALLEL_HOSTS, thread_name_prefix="ssh")

    def get(self, name: str) -> Connection:
        host = self.inventory.host(name)
        with self._host_locks[name]:
            conn = self._connections.get(name)
            if conn is not None and conn.alive:
                return conn
            if conn is not None:
                conn.close()
            conn = connect(host, self.inventory.settings)
            self._connections[name] = conn
            return conn

    def each(
        self, fn: Callable[[Connection], T], names: Iterable[str]
    ) -> dict[str, T | BaseException]:
        """fn(connection) on every named host in parallel: result or exception by host."""

        def one(name: str) -> T | BaseException:
            try:
                return fn(self.get(name))
            except Exception as exc:
                return exc

        names = list(dict.fromkeys(names))
        return dict(zip(names, self._executor.map(one, names), strict=True))

    def close(self) -> None:
        with self._lock:
            for conn in self._connections.values():
                conn.close()
            self._connections.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)


def quote(path: str | Path) -> str:
    return shlex.quote(str(path))
