"""Container logs into the results bundle while the run goes on.

One thread per container follows its log stream (stdout and stderr, as the
agent writes them) into the unit's log file, so readiness errors and crash
reports can quote the log tail, and an interrupted run keeps every line.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

JOIN_TIMEOUT_SECONDS = 5.0


class LogFollower:
    def __init__(
        self, client: Any, container_id: str, path: Path, since: int | None = None
    ) -> None:
        self.client = client
        self.since = since  # unix time: only lines from then on (a restarted container)
        self.container_id = container_id
        self.path = path
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._follow, name=f"logs-{path.stem}", daemon=True)

    def start(self) -> LogFollower:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def _follow(self) -> None:
        try:
            stream = self.client.api.logs(
                self.container_id,
                stdout=True,
                stderr=True,
                stream=True,
                follow=True,
                since=self.since,
            )
            with open(self.path, "ab") as out:
                for chunk in stream:
                    out.write(chunk)
                    out.flush()
        except Exception as exc:  # the engine went away: finish() fetches what it can
            self.error = exc

    def finish(self, timeout: float = JOIN_TIMEOUT_SECONDS) -> None:
        """Wait for the stream to end (the container has exited); if following
        failed, write the container's whole log instead."""
        self._thread.join(timeout)
        if self._thread.is_alive() or self.error is None:
            return
        try:
            data = self.client.api.logs(self.container_id, stdout=True, stderr=True)
        except Exception:
            return
        self.path.write_bytes(data)
