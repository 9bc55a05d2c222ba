"""The orchestrator's way to the clock's ZeroMQ sockets on a swarm.

The fault injector (orchestrator/faults/) talks to the clock's PUB and PULL
endpoints from this machine, at the clock's node address. The clock binds them
on the run's overlay network only (its unit name), which the node's published
ports do not reach, so a small TCP forwarder service next to it publishes the
two ports in host mode on the clock's node and forwards each connection to the
clock over the overlay. Plain TCP: ZeroMQ needs nothing more.
"""

from __future__ import annotations

from orchestrator.backends.docker.containers import ContainerSpec

UNIT = "clock-gateway"

FORWARDER = """\
import asyncio, signal, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stopped at once, not after the grace period
target, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
def forward(port):
    async def handle(reader, writer):
        try:
            to_reader, to_writer = await asyncio.open_connection(target, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, to_writer), pipe(to_reader, writer),
                             return_exceptions=True)
    return handle
async def main():
    servers = [await asyncio.start_server(forward(p), '0.0.0.0', p) for p in ports]
    print('forwarding', ports, 'to', target, flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))
asyncio.run(main())
"""


def gateway_container(target: str, ports: tuple[int, ...]) -> ContainerSpec:
    """The forwarder's container: the agent image's Python, no mounts."""
    command = ("python3", "-c", FORWARDER, target, *map(str, ports))
    return ContainerSpec(UNIT, "gateway", "agent", command, "")
