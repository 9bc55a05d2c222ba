"""The swarm backend with `deployment.swarm.manager` a tcp:// URL instead of
this machine's socket: the lab's manager (this engine) reached through a TCP
port that forwards to its socket, as a manager on another machine is reached.
The smoke run (prosumer hosts on both workers) equals replay and leaves nothing.

What this cannot show (one machine): the orchestrator on another machine than
the manager; README.md lists what a user must provide for that.

Run under `flock /tmp/swarm-dev.lock` (one engine, one swarm)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.docker.engine import DOCKER_SOCKET
from orchestrator.run import EXIT_OK, RunOptions, run
from orchestrator.swarm import Lab
from tests.conformance.oracle import SMOKE, SMOKE_LAST, finalized_by_content, replayed
from tests.conformance.targets import SwarmTarget
from tests.integration.docker_support import wait_for
from tests.swarm_support import docker_engine, docker_images

__all__ = ["docker_engine", "docker_images"]  # swarm_lab, swarm_images: tests/conftest.py


class TcpToSocket:
    """127.0.0.1:<port> forwarded to the engine's unix socket, one connection
    per connection; counts them."""

    def __init__(self, path: str) -> None:
        self.path, self.connections, self.port = path, 0, 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        engine_reader, engine_writer = await asyncio.open_unix_connection(self.path)
        await asyncio.gather(self._pipe(reader, engine_writer), self._pipe(engine_reader, writer))

    def start(self) -> str:
        self.thread.start()
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self.loop
        ).result(timeout=30)
        self.server = server
        self.port = server.sockets[0].getsockname()[1]
        return f"tcp://127.0.0.1:{self.port}"

    async def _close(self) -> None:
        self.server.close()
        pipes = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pipes:  # the clients' pooled connections
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@pytest.fixture
def manager_over_tcp() -> Iterator[TcpToSocket]:
    proxy = TcpToSocket(DOCKER_SOCKET)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def test_a_run_through_a_tcp_manager_url_equals_replay(
    docker_engine: Any,
    swarm_lab: Lab,
    swarm_images: dict[str, str],
    manager_over_tcp: TcpToSocket,
    state_dir: Path,
    tmp_path: Path,
) -> None:
    del swarm_images  # pushed once per session
    target = SwarmTarget(state_dir, docker_engine, swarm_lab, tmp_path.name[-12:])
    url = f"tcp://127.0.0.1:{manager_over_tcp.port}"
    overrides = [*target.smoke_overrides, f"deployment.swarm.manager={url}"]
    result = run(RunOptions(spec=SMOKE, overrides=overrides, out=tmp_path / "results"))
    assert result.exit_code == EXIT_OK, result.outcome
    info = json.loads((result.bundle / "swarm.json").read_text())
    assert info["manager"] == url
    assert sorted(info["hosts"][h]["node"] for h in target.hosts) == sorted(swarm_lab.workers)
    assert manager_over_tcp.connections > 0
    per_interval, expected = replayed(SMOKE, [], clip=True)
    assert finalized_by_content(result.bundle / "events", SMOKE_LAST) == expected
    assert result.summary["total_energy_traded_wh"] == sum(per_interval.values())
    run_id = result.bundle.name
    wait_for("the run's leftovers to go", lambda: not target.leftovers(run_id), timeout=120)
