"""Fault actions on a run's containers through the Engine API (orchestrator/faults/).

kill = SIGKILL, restart = start the same container again, pause/resume = the
engine's freezer, partition = disconnect from / reconnect to the run's network
at the container's fixed address (its peers' connections resume after healing),
netem = `tc qdisc netem` in the container, or where the kernel has no sch_netem
the image's userspace NFQUEUE emulator (images/common/netem_queue.py) on its own
queue; both need CAP_NET_ADMIN, which `enable_faults` grants before the start.
"""

from __future__ import annotations

import shlex
from typing import Any

from orchestrator.backends.base import BackendError

EXEC_TIMEOUT_SECONDS = 30.0
FAULT_QUEUE = 1  # the entrypoint's own netem uses queue 0
QUEUE_SCRIPT = "/usr/local/lib/testbed/netem_queue.py"
PIDFILE = "/tmp/testbed-fault-netem.pid"
READY = "/tmp/testbed-fault-netem.ready"


def netem_script(dev: str, latency_ms: float, jitter_ms: float, loss_percent: float) -> str:
    """Shell run in the container: drop any fault netem, then set the new one
    (kernel netem if it exists, else the userspace queue)."""
    rule = f"-t mangle -o {dev} -j NFQUEUE --queue-num {FAULT_QUEUE}"
    clear = (
        f"iptables -w -t mangle -D POSTROUTING {rule.split(' ', 2)[2]} 2>/dev/null || true; "
        f"[ -s {PIDFILE} ] && kill $(cat {PIDFILE}) 2>/dev/null; rm -f {PIDFILE} {READY}; "
        f"tc qdisc del dev {dev} root 2>/dev/null || true"
    )
    if not (latency_ms or jitter_ms or loss_percent):
        return clear
    kernel = f"tc qdisc replace dev {dev} root netem delay {latency_ms}ms"
    if jitter_ms:
        kernel += f" {jitter_ms}ms"
    if loss_percent:
        kernel += f" loss {loss_percent}%"
    queue = " ".join(
        shlex.quote(a)
        for a in (
            "python3",
            QUEUE_SCRIPT,
            "--queue",
            str(FAULT_QUEUE),
            "--delay-ms",
            str(latency_ms),
            "--jitter-ms",
            str(jitter_ms),
            "--loss-percent",
            str(loss_percent),
            "--ready-file",
            READY,
        )
    )
    userspace = (
        f"{queue} </dev/null >/tmp/testbed-fault-netem.log 2>&1 & echo $! > {PIDFILE}; "
        f"i=0; while [ ! -s {READY} ]; do i=$((i+1)); [ $i -gt 200 ] && "
        "{ echo netem_queue not ready; exit 1; }; sleep 0.05; done; "
        f"iptables -w -t mangle -A POSTROUTING -o {dev} -j NFQUEUE --queue-num {FAULT_QUEUE}"
    )
    fallback = f"{{ {userspace} && echo userspace; }}"
    return f"{clear}; if {kernel} 2>/dev/null; then echo kernel; else {fallback}; fi"


def exec_in(client: Any, container_id: str, script: str) -> str:
    """Run `script` with sh in the container as root; its output, or BackendError."""
    api = client.api
    created = api.exec_create(container_id, ["sh", "-c", script], user="root")
    output = api.exec_start(created["Id"])
    code = api.exec_inspect(created["Id"]).get("ExitCode")
    text = output.decode(errors="replace") if isinstance(output, bytes) else str(output)
    if code != 0:
        raise BackendError(f"exec in container failed ({code}): {text.strip()[-300:]}")
    return text.strip()


def disconnect(client: Any, container_id: str, network: str) -> None:
    client.api.disconnect_container_from_network(container_id, network, force=True)


def reconnect(client: Any, container_id: str, network: str, address: str, alias: str) -> None:
    client.api.connect_container_to_network(
        container_id, network, ipv4_address=address, aliases=[alias]
    )
