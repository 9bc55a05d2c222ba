"""wait_ready against real HTTP endpoints: a tier that keeps becoming ready is
waited for past the timeout; a tier that stops moving is NotReady after it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.base import UnitStatus
from orchestrator.lifecycle import NotReady, wait_ready
from orchestrator.placement import AgentPlacement

STEP_SECONDS = 3.0  # one more agent ready every step (the last at 6 s)
TIMEOUT_SECONDS = 1.5 * STEP_SECONDS  # longer than a step, shorter than the whole tier


class Agents:
    """One HTTP server answering /metrics for agents a0, a1, ... (ready when set)."""

    def __init__(self, count: int) -> None:
        self.ready = [False] * count
        agents = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                i = int(self.path.strip("/").split("/")[0][1:])
                body = f"testbed_agent_ready {1.0 if agents.ready[i] else 0.0}\n".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def placements(self, tmp: Path) -> dict[str, AgentPlacement]:
        port = self.server.server_address[1]
        return {name: self._placement(name, port, tmp) for name in self.names}

    @property
    def names(self) -> list[str]:
        return [f"a{i}" for i in range(len(self.ready))]

    @staticmethod
    def _placement(name: str, port: int, tmp: Path) -> AgentPlacement:
        url = f"http://127.0.0.1:{port}/{name}/metrics"
        return AgentPlacement(name, "127.0.0.1", port, url, "", tmp / "c.json", "", tmp / "a.log")


class Running:
    def status(self) -> dict[str, UnitStatus]:
        return {}


@pytest.fixture
def agents() -> Iterator[Agents]:
    made = Agents(3)
    yield made
    made.server.shutdown()


def test_a_tier_that_keeps_moving_is_waited_for_past_the_timeout(
    agents: Agents, tmp_path: Path
) -> None:
    timers = [
        threading.Timer(i * STEP_SECONDS, agents.ready.__setitem__, (i, True)) for i in range(3)
    ]
    for t in timers:
        t.start()
    polls: list[int] = []
    wait_ready(Running(), agents.placements(tmp_path), TIMEOUT_SECONDS, on_poll=polls.append)  # type: ignore[arg-type]
    assert all(agents.ready) and polls[-1] == 3


def test_a_tier_that_stops_moving_is_not_ready(agents: Agents, tmp_path: Path) -> None:
    agents.ready[0] = True
    with pytest.raises(NotReady) as caught:
        wait_ready(Running(), agents.placements(tmp_path), 1.0)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith("agents not ready after 1 s without progress (1 of 3 ready")
    assert "  a1: testbed_agent_ready is 0" in message and "  a2: " in message
