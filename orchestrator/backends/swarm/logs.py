"""Service logs into the results bundle: the docker backend's follower, reading
a swarm service's log stream (the manager gathers it from whichever node runs
the task) while the run goes on, so crash reports can quote the log tail.

A stream opened before the service's task starts misses the task's first lines
(the images' entrypoint reports its netem there), so `save` writes the
service's whole log once more before the service is removed, followed by the
notes the backend added (a lost node, a rejected task)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.backends.docker.logs import LogFollower


class ServiceLogFollower(LogFollower):
    """`container_id` is the service's id here."""

    def __init__(self, client: Any, service_id: str, path: Path) -> None:
        super().__init__(client, service_id, path)
        self.notes: list[str] = []
        self.saved = False

    def _follow(self) -> None:
        try:
            stream = self.client.api.service_logs(
                self.container_id, follow=True, stdout=True, stderr=True
            )
            with open(self.path, "ab") as out:
                for chunk in stream:
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
            data = self.client.api.service_logs(
                self.container_id, follow=False, stdout=True, stderr=True
            )
        except Exception:
            return  # keep what the stream wrote
        if not isinstance(data, bytes):
            data = b"".join(data)
        self.saved = True
        notes = "".join(f"{line}\n" for line in self.notes).encode()
        self.path.write_bytes(data + notes)

    def finish(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)
