"""One way in to the prosumer hosts' /metrics: a gateway on the run's network.

A port published in host mode costs the node's engine per container: NAT rules
taken under the node's one iptables lock (with a 10x run's 310 hosts, each
container start waited 2-4 s for it) and a docker-proxy process. The
orchestrator reads a host's /metrics only to see it ready (Prometheus finds the
hosts itself over the run's network: observability/swarmsd.py), so the hosts
publish nothing. One small HTTP service on the manager, attached to the run's
network and publishing one port there, answers `GET /<unit>/metrics` with
that unit's /metrics, fetched over the network by its name (an unknown unit:
404; one that does not answer yet: 502, which a scrape reads as "not
answering"). A unit's address is looked up once (the manager's engine answers
the network's DNS; a name it does not know yet is asked again only a while
later) and again only after a fetch failed otherwise than refused
(a refused connection: the host's container is there, its agent not serving
yet; at 10x that is most of the readiness scrapes for minutes). The chain, the DSO,
the clock, the solvers and the recorder keep their own published ports (a
handful; the fault injector finds the clock's node by its metrics address).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from orchestrator.backends.docker.containers import ContainerSpec
from orchestrator.progress import SCRAPE_TIMEOUT_SECONDS

UNIT = "metrics-gateway"
ROLE = "gateway"
FETCH_TIMEOUT_SECONDS = SCRAPE_TIMEOUT_SECONDS  # the orchestrator waits no longer
# A name the network does not know yet (the host's task has no container yet) is
# asked again only after this many seconds per unit (310 hosts: 9.3 s; 31: 0.9 s):
# the manager's engine forwards an unknown name to the machine's resolvers (1.5 ms
# of its CPU and ~45 ms each, bench/managercost.py), and the readiness wait asks for
# every pending host every len(pending)/100 s; a host's agent takes longer than
# that to come up once its container is there.
UNKNOWN_SECONDS_PER_UNIT = 0.03

SERVER = """\
import json, signal, socket, sys, time, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stopped at once
listen, ports, timeout = int(sys.argv[1]), json.loads(sys.argv[2]), float(sys.argv[3])
UNKNOWN_SECONDS_PER_UNIT = float(sys.argv[4])
fetch = urllib.request.build_opener(urllib.request.ProxyHandler({})).open
found, unknown = {}, {}  # unit -> its address; unit -> when it was not known
wait = len(ports) * UNKNOWN_SECONDS_PER_UNIT
def address(unit):
    if unit not in found:
        if time.monotonic() - unknown.get(unit, -wait) < wait:
            raise OSError(f'{unit}: not known yet')  # its task not on the network yet
        try:
            info = socket.getaddrinfo(unit, None, socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            unknown[unit] = time.monotonic()
            raise
        found[unit] = info[0][4][0]
    return found[unit]
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        unit, _, rest = self.path.strip('/').partition('/')
        if rest != 'metrics' or unit not in ports:
            return self.send_error(404)
        try:
            with fetch(f'http://{address(unit)}:{ports[unit]}/metrics', timeout=timeout) as r:
                body, kind = r.read(), r.headers.get('Content-Type', 'text/plain')
        except (OSError, ValueError) as exc:
            if not isinstance(getattr(exc, 'reason', exc), ConnectionRefusedError):
                found.pop(unit, None)  # a new task may have a new address
            return self.send_error(502, str(exc)[:200])  # refused: the agent not serving yet
        self.send_response(200)
        self.send_header('Content-Type', kind)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *_):
        pass
class Server(ThreadingHTTPServer):
    daemon_threads = True
    def handle_error(self, request, client_address):
        pass  # the scraper gave up (its timeout) before the answer: nothing to say
print('metrics of', len(ports), 'units on port', listen, flush=True)
Server(('0.0.0.0', listen), Handler).serve_forever()
"""


def gateway_container(port: int, units: Mapping[str, int]) -> ContainerSpec:
    """The gateway's container (the agent image's Python, no mounts): it serves on
    `port` the /metrics of `units` ({unit: its metrics port})."""
    ports = json.dumps(dict(sorted(units.items())), separators=(",", ":"))
    limits = (f"{FETCH_TIMEOUT_SECONDS:g}", f"{UNKNOWN_SECONDS_PER_UNIT:g}")
    command = ("python3", "-c", SERVER, str(port), ports, *limits)
    return ContainerSpec(UNIT, ROLE, "agent", command, "", published={port: port})


def metrics_url(manager: str, port: int, unit: str) -> str:
    """Where the orchestrator reads `unit`'s /metrics through the gateway."""
    return f"http://{manager}:{port}/{unit}/metrics"
