"""Service logs into the results bundle while the run goes on: the docker
backend's follower, reading a swarm service's log stream (the manager gathers
it from whichever node runs the task)."""

from __future__ import annotations

from orchestrator.backends.docker.logs import LogFollower


class ServiceLogFollower(LogFollower):
    """`container_id` is the service's id here."""

    def _follow(self) -> None:
        try:
            stream = self.client.api.service_logs(
                self.container_id, follow=True, stdout=True, stderr=True, since=self.since or 0
            )
            with open(self.path, "ab") as out:
                for chunk in stream:
                    out.write(chunk)
                    out.flush()
        except Exception as exc:  # the service went away: finish() fetches what it can
            self.error = exc

    def finish(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)
