"""Service logs into the results bundle: the docker backend's follower, reading
a swarm service's log stream (the manager gathers it from whichever node runs
the task) while the run goes on, so crash reports can quote the log tail.

A stream opened before the service's task has a container misses the task's
first lines (the images' entrypoint reports its netem there), so the backend
starts the follower once its status shows the task's container. Before the
services are removed, `save` writes each service's whole log again where that
is longer than what was
streamed (a service scaled to 0 has lost its task, and its log with it: then
the stream is all there is), followed by the notes the backend added (a lost
node, a rejected task)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.backends.docker.logs import LogFollower

HEADER_BYTES = 8


class ServiceLogFollower(LogFollower):
    """`container_id` is the service's id here."""

    def __init__(self, client: Any, service_id: str, path: Path) -> None:
        super().__init__(client, service_id, path)
        self.notes: list[str] = []
        self.saved = False

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def _follow(self) -> None:
        try:
            with open(self.path, "ab") as out:
                for chunk in frames(service_logs(self.client, self.container_id, follow=True)):
                    if self.saved:
                        return
                    out.write(chunk)
                    out.flush()
        except Exception as exc:  # the service went away
            self.error = exc

    def note(self, line: str) -> None:
        self.notes.append(line)
        with open(self.path, "a") as f:
            f.write(line + "\n")

    def save(self) -> None:
        """The service's whole log (every task of it), then the notes."""
        try:
            data = b"".join(frames(service_logs(self.client, self.container_id)))
        except Exception:
            return  # keep what the stream wrote
        if data.startswith(b"Error grabbing logs"):
            return  # a node is unreachable: keep what the stream wrote
        self.saved = True
        streamed = self.path.stat().st_size if self.path.exists() else 0
        if len(data) <= streamed - sum(len(n) + 1 for n in self.notes):
            return  # the task is gone (scaled to 0): keep the stream
        notes = "".join(f"{line}\n" for line in self.notes).encode()
        self.path.write_bytes(data + notes)

    def finish(self, timeout: float = 5.0) -> None:
        if self.started:
            self._thread.join(timeout)


def service_logs(client: Any, service_id: str, *, follow: bool = False) -> Any:
    """The raw response of GET /services/{id}/logs (stdout and stderr). The SDK's
    service_logs drops the stderr lines here, where the images' entrypoint and
    Python's logging write."""
    api = client.api
    params = {"stdout": 1, "stderr": 1, "follow": int(follow)}
    response = api._get(api._url("/services/{0}/logs", service_id), params=params, stream=True)
    api._raise_for_status(response)
    return response


def frames(response: Any) -> Iterator[bytes]:
    """The payloads of a multiplexed log stream (8-byte headers: stream, size)."""
    raw = response.raw
    while True:
        header = raw.read(HEADER_BYTES)
        if len(header) < HEADER_BYTES:
            return
        size = int.from_bytes(header[4:8], "big")
        payload = raw.read(size) if size else b""
        if payload:
            yield payload
