"""The ssh backend's records of one run (the boards that run agents, the
agents started on them) and where everything listens (pure)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.backends.base import BackendError, Unit
from orchestrator.backends.ssh.inventory import SshHost
from orchestrator.backends.ssh.remote import RemoteState
from orchestrator.placement import Address, Addresses, AgentAddress

PORTS = (20_000, 30_000)  # metrics and service ports of agents on the boards
BOARD_BIND = "0.0.0.0"  # agents on boards serve metrics on every interface


@dataclass
class Board:
    """One host that runs agents in this run."""

    host: SshHost
    home: str
    run_dir: str = ""
    python: str = ""
    lost: str | None = None  # why, once the host stopped answering


@dataclass
class RemoteUnit:
    """An agent started on a board; `final` once it ended (or its board was lost)."""

    unit: Unit
    board: str
    out_dir: str  # on the board
    local_out: Path  # its copy in the bundle
    pid: int | None = None
    final: RemoteState | None = None
    pulled: bool = False  # its log was copied into the bundle


def chain_on(unit: Unit, address: str) -> Unit:
    """The chain unit listening on `address` instead of loopback."""
    argv = list(unit.argv)
    if "--host" in argv:
        argv[argv.index("--host") + 1] = address
    else:
        argv += ["--host", address]
    return replace(unit, argv=tuple(argv))


# Lists the TCP sockets of a board (IPv4 and IPv6), for `listening_ports`.
LISTENING_COMMAND = "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null"
_TCP_LISTEN = "0A"  # the kernel's state code of a listening socket


def listening_ports(proc_net_tcp: str) -> set[int]:
    """Ports with a listening socket, from the text of /proc/net/tcp{,6}."""
    ports: set[int] = set()
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[0] != "sl" and fields[3] == _TCP_LISTEN:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def remote_addresses(
    local: Addresses,
    bind_address: str,
    agent_host: Mapping[str, str],
    boards: Mapping[str, Board],
    rng: random.Random | None = None,
    busy: Mapping[str, set[int]] | None = None,
) -> Addresses:
    """The local backend's addresses with the agents of `agent_host` moved to
    their hosts (metrics, config, output, and the DSO's and clock's endpoints
    when they run there) and the chain and local services on `bind_address`.
    Ports come from PORTS, never one in `busy[host]` (listening there already)."""
    rng = rng or random.SystemRandom()
    taken: dict[str, set[int]] = {h: set(ports) for h, ports in (busy or {}).items()}

    def port_on(host: str) -> int:
        used = taken.setdefault(host, set())
        if len(used & set(range(*PORTS))) >= PORTS[1] - PORTS[0]:
            raise BackendError(f"{host}: no free port in {PORTS[0]}..{PORTS[1] - 1}")
        port = rng.randrange(*PORTS)
        while port in used:
            port = PORTS[0] + (port + 1 - PORTS[0]) % (PORTS[1] - PORTS[0])
        used.add(port)
        return port

    agents = dict(local.agents)
    for name, host_name in agent_host.items():
        board = boards[host_name]
        agents[name] = AgentAddress(
            bind=Address(BOARD_BIND, port_on(host_name)),
            scrape_host=board.host.address,
            config_path=f"{board.run_dir}/config/{name}.json",
            out_dir=f"{board.run_dir}/out/{name}",
        )

    def service(agent: str, here: Address) -> Address:
        host = agent_host.get(agent)
        if host is None:
            return Address(bind_address, here.port)
        return Address(boards[host].host.address, port_on(host))

    chain = Address(bind_address, local.chain.port)
    return Addresses(
        chain=chain,
        chain_local=chain,
        dso=service("dso", local.dso),
        clock_pub=service("clock", local.clock_pub),
        clock_pull=service("clock", local.clock_pull),
        agents=agents,
    )
