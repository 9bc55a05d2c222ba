"""What one prosumer host costs to start: CPU seconds and wall seconds from exec to
ready, and its imports; prints one JSON object.

A real chain (anvil, the compiled contract deployed for the run) and a real DSO
process serve a prosumer host of topologies/paper-c.yaml as the orchestrator plans
it (`microgrid.dataset.scale` 1: 102 prosumers; 10: 1,020), its config rendered the
way `orchestrator.render` renders it. The host (`python -m agents prosumer
--config ...`, the command every backend runs) is started `--runs` times, one after
the other; each start is timed from exec to its ready log line (it marks itself
ready and logs "N prosumers, M offers" once it reached the chain and the DSO), and
its CPU seconds (utime + stime from /proc) are read at that moment. Then it is
stopped (SIGTERM). Figures are medians over the runs; CPU seconds do not depend on
the machine's load (the 1-minute load average is printed beside the wall times).

- `import`: a Python that only imports what a host imports (`agents.__main__` and
  `agents.prosumer`): its CPU seconds from exec to exit, and the sum of
  `-X importtime`'s top-level entries (microseconds of imports alone).
- `first_tick_import`: the CPU seconds of importing, after that, what a host first
  needs when the clock's first tick comes (ABI codec, signing): a start that gets
  ready sooner by importing later shows here what it moved.
- `scrape`: what one read of a ready host's /metrics costs (Prometheus' scrapes, down to
  every 0.5 s in short runs, and the orchestrator's readiness polls): the host's and
  this process's CPU milliseconds per read (`orchestrator.progress.scrape`, as the
  readiness wait reads it), and the body's bytes.
- `idle`: what a ready host costs while it waits for the clock (the clock's endpoints
  bound, nothing sent): CPU milliseconds per second over IDLE_SECONDS, from the
  threads' nanosecond run times (/proc/<pid>/task/*/schedstat), and its wake-ups
  (context switches) per second.
- `--image TAG` (or `--image current`, the agent image of this tree, built if
  missing): the same host in the agent image on the local engine (`docker run
  --network host`, the image's entrypoint), its Python's CPU from /proc through the
  container's pid; wall from `docker run` to the ready line in `docker logs -f`.

    .venv/bin/python bench/hoststart.py                # paper and 10x, 9 starts each
    .venv/bin/python bench/hoststart.py --scale 10 --runs 15
    .venv/bin/python bench/hoststart.py --image current
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "topologies" / "paper-c.yaml"
OVERRIDES = ["market.clock=lockstep", "chain.block_time_seconds=0"]
READY_LINE = re.compile(r"\d+ prosumers, \d+ offers")
START_TIMEOUT_SECONDS = 120.0  # generous: the machine is shared
STOP_TIMEOUT_SECONDS = 30.0
TICK = os.sysconf("SC_CLK_TCK")
SCRAPES = 200  # reads of a ready host's /metrics (scrape cost)
IDLE_SECONDS = 20.0  # a ready host left waiting (idle cost)
HOST_IMPORTS = "import agents.__main__, agents.prosumer"
# what the first tick needs beyond the start: the call encoder, signing, log decoding
FIRST_TICK_IMPORTS = (
    "import agents.common.abi, agents.chain.encoding, agents.chain.errors, agents.common.rpc"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` from /proc (clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def load() -> float:
    return round(os.getloadavg()[0], 2)


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


class Testbed:
    """anvil + the contract + the DSO of one planned run, and a host config writer."""

    def __init__(self, scale: int, tmp: Path) -> None:
        from orchestrator.plan import build_plan
        from orchestrator.scenario import build_scenario
        from orchestrator.spec import load_spec

        spec = load_spec(SPEC, [f"microgrid.dataset.scale={scale}", *OVERRIDES], env={})
        self.plan = build_plan(build_scenario(spec), "local", f"hoststart-{uuid.uuid4().hex[:8]}")
        self.tmp = tmp
        self.host = self.plan.by_role("prosumer")[0]
        self.endpoints = {
            "dso_endpoint": f"tcp://127.0.0.1:{free_port()}",
            "clock_pub_endpoint": f"tcp://127.0.0.1:{free_port()}",
            "clock_pull_endpoint": f"tcp://127.0.0.1:{free_port()}",
        }

    @contextmanager
    def running(self) -> Iterator[Testbed]:
        from agents.chain.node import Anvil
        from orchestrator.chainsetup import deploy

        node = Anvil(accounts=3).start()
        dso: subprocess.Popen[bytes] | None = None
        try:
            self.rpc_url = node.url
            self.chain = deploy(node.url, self.plan, 31337, None)
            path = self.write_config(self.plan.agent("dso"), "dso")
            with (self.tmp / "dso.log").open("wb") as out:
                dso = subprocess.Popen(
                    [sys.executable, "-m", "agents", "dso", "--config", str(path)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            self._wait_dso(dso)
            yield self
        finally:
            if dso is not None:
                stop(dso)
            node.stop()

    def _wait_dso(self, dso: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        log = self.tmp / "dso.log"
        while "serving tcp://" not in log.read_text():
            if dso.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the DSO did not start:\n{log.read_text()}")
            time.sleep(0.05)

    def write_config(self, agent: Any, name: str, out_dir: Path | None = None) -> Path:
        """The agent's config file, rendered as orchestrator.render does (own wiring)."""
        import dataclasses

        from agents.common.config import ProsumerHostSettings, config_class
        from agents.common.typed import to_json
        from orchestrator.render import dev_key

        wiring: dict[str, Any] = {
            "run_id": self.plan.run_id,
            "role": agent.role,
            "name": name,
            "rpc_url": self.rpc_url,
            "contract_address": self.chain.contract_address,
            "chain_id": self.chain.chain_id,
            **self.endpoints,
            "metrics_host": "127.0.0.1",
            "metrics_port": free_port(),
            "out_dir": out_dir or self.tmp / name,
            "log_level": self.plan.log_level,
            "market": self.plan.market.at_epoch(self.chain.epoch),
        }
        if agent.account is not None:
            wiring["private_key"] = dev_key(agent.account)
        fields = dataclasses.fields(agent.settings)
        settings = {f.name: getattr(agent.settings, f.name) for f in fields}
        if isinstance(agent.settings, ProsumerHostSettings):
            settings["key_secret"] = self.plan.key_secret.hex()
        path = self.tmp / f"{name}.json"
        path.write_text(to_json(config_class(agent.role)(**wiring, **settings)))
        return path


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def await_line(stream: IO[str], pattern: re.Pattern[str], lines: list[str]) -> bool:
    """Read lines until one matches (True) or the stream ends (False)."""
    for line in stream:
        lines.append(line)
        if pattern.search(line):
            return True
    return False


def host_start(bed: Testbed, i: int) -> dict[str, float]:
    """One host process from exec to ready: CPU and wall seconds."""
    name = f"{bed.host.name}-start{i}"
    path = bed.write_config(bed.host, bed.host.name, bed.tmp / name)
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agents", "prosumer", "--config", str(path)],
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        if not await_line(proc.stderr, READY_LINE, lines):
            raise SystemExit(f"host exited before ready:\n{''.join(lines)}")
        wall = time.monotonic() - began
        cpu = cpu_seconds(proc.pid)
    finally:
        stop(proc)
    return {"cpu_s": cpu, "wall_s": wall}


def scrape_cost(bed: Testbed, reads: int = SCRAPES) -> dict[str, float]:
    """CPU milliseconds per /metrics read of a ready host: its own and the reader's."""
    from orchestrator.progress import scrape

    path = bed.write_config(bed.host, bed.host.name, bed.tmp / "scraped")
    port = json.loads(path.read_text())["metrics_port"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "agents", "prosumer", "--config", str(path)],
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        assert proc.stderr is not None
        if not await_line(proc.stderr, READY_LINE, []):
            raise SystemExit("host exited before ready")
        host, reader = cpu_seconds(proc.pid), time.process_time()
        for _ in range(reads):
            scrape(url)
        host, reader = cpu_seconds(proc.pid) - host, time.process_time() - reader
        with urllib.request.urlopen(url, timeout=30) as response:
            size = len(response.read())
    finally:
        stop(proc)
    per = 1000 / reads
    host_ms, reader_ms = round(host * per, 2), round(reader * per, 2)
    return {"reads": reads, "host_ms": host_ms, "reader_ms": reader_ms, "bytes": size}


def run_time(pid: int) -> tuple[float, int]:
    """Seconds on CPU (ns precision) and context switches, over the live threads of `pid`."""
    seconds, switches = 0.0, 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            seconds += int((task / "schedstat").read_text().split()[0]) / 1e9
            status = (task / "status").read_text()
        except (OSError, ValueError, IndexError):
            continue
        switches += sum(
            int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line
        )
    return seconds, switches


def idle_cost(bed: Testbed, seconds: float = IDLE_SECONDS) -> dict[str, float]:
    """CPU milliseconds and wake-ups per second of a ready host waiting for the clock."""
    import zmq

    path = bed.write_config(bed.host, bed.host.name, bed.tmp / "idle")
    ctx = zmq.Context.instance()
    clock = [ctx.socket(zmq.PUB), ctx.socket(zmq.PULL)]  # the host's sockets connect
    clock[0].bind(bed.endpoints["clock_pub_endpoint"])
    clock[1].bind(bed.endpoints["clock_pull_endpoint"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "agents", "prosumer", "--config", str(path)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        if not await_line(proc.stderr, READY_LINE, []):
            raise SystemExit("host exited before ready")
        time.sleep(1.0)  # its last start-up steps after the ready line
        cpu0, switches0 = run_time(proc.pid)
        time.sleep(seconds)
        cpu1, switches1 = run_time(proc.pid)
    finally:
        stop(proc)
        for sock in clock:
            sock.close(linger=0)
    return {
        "seconds": seconds,
        "cpu_ms_per_s": round((cpu1 - cpu0) / seconds * 1000, 3),
        "wakeups_per_s": round((switches1 - switches0) / seconds, 1),
    }


def container_start(bed: Testbed, image: str, i: int) -> dict[str, float]:
    """The same host in the agent image on the local engine (host network)."""
    name = f"{bed.host.name}-docker{i}"
    path = bed.write_config(bed.host, bed.host.name, bed.tmp / name)
    mount = f"{bed.tmp}:{bed.tmp}"
    cname = f"hoststart-{uuid.uuid4().hex[:10]}"
    argv = ["docker", "run", "-d", "--name", cname, "--network", "host", "-v", mount, image]
    began = time.monotonic()
    command = ["python", "-m", "agents", "prosumer", "--config", str(path)]
    subprocess.run([*argv, *command], check=True, capture_output=True)
    logs = subprocess.Popen(
        ["docker", "logs", "-f", cname],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        pid = int(subprocess.check_output(["docker", "inspect", "-f", "{{.State.Pid}}", cname]))
        assert logs.stderr is not None
        if not await_line(logs.stderr, READY_LINE, lines):
            raise SystemExit(f"host container exited before ready:\n{''.join(lines)}")
        wall = time.monotonic() - began
        cpu = cpu_seconds(pid)
    finally:
        subprocess.run(["docker", "rm", "-f", cname], capture_output=True)
        stop(logs)
    return {"cpu_s": cpu, "wall_s": wall}


def import_cost(runs: int, python: list[str]) -> dict[str, float]:
    """CPU seconds of a Python that imports what a host imports (exec to its end), the
    first tick's further imports, and the sum of -X importtime's top-level entries
    (measured apart: -X importtime itself costs CPU)."""
    cpu, later, imports = [], [], []
    probe = (
        "import os\n"
        f"{HOST_IMPORTS}\n"
        "t = os.times(); a = t.user + t.system\n"
        f"{FIRST_TICK_IMPORTS}\n"
        "t = os.times(); print(a, t.user + t.system - a)\n"
    )
    top = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| \S")
    for _ in range(runs):
        out = subprocess.run([*python, "-c", probe], capture_output=True, text=True, check=True)
        before, after = (float(x) for x in out.stdout.split())
        cpu.append(before)
        later.append(after)
        timed = subprocess.run(
            [*python, "-X", "importtime", "-c", HOST_IMPORTS],
            capture_output=True,
            text=True,
            check=True,
        )
        imports.append(sum(int(m[1]) for m in top.finditer(timed.stderr)) / 1e6)
    return {
        "import_cpu_s": median(cpu),
        "first_tick_import_cpu_s": median(later),
        "importtime_s": median(imports),
    }


def measure(scale: int, runs: int, image: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hoststart-") as tmp:
        bed = Testbed(scale, Path(tmp))
        host = bed.host
        out: dict[str, Any] = {
            "scale": scale,
            "hosts": len(bed.plan.by_role("prosumer")),
            "host": host.name,
            "host_prosumers": host.prosumer_count,
            "host_offers": sum(len(p.offers) for p in host.prosumers),
        }
        with bed.running():
            config_bytes = bed.write_config(host, host.name).stat().st_size
            starts = [host_start(bed, i) for i in range(runs)]
            out["host_config_bytes"] = config_bytes
            out["process"] = summary(starts)
            out["scrape"] = scrape_cost(bed)
            out["idle"] = idle_cost(bed)
            if image:
                docker = [container_start(bed, image, i) for i in range(runs)]
                out["container"] = {"image": image, **summary(docker)}
    return out


def summary(starts: list[dict[str, float]]) -> dict[str, Any]:
    return {
        "runs": len(starts),
        "cpu_s": median([s["cpu_s"] for s in starts]),
        "cpu_s_min": round(min(s["cpu_s"] for s in starts), 3),
        "wall_s": median([s["wall_s"] for s in starts]),
        "load": load(),
    }


def current_image() -> str:
    import docker

    from orchestrator.images.build import ensure_images

    return ensure_images(docker.from_env(), kinds=("agent",), say=print).agent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--runs", type=int, default=9, help="starts per figure (median)")
    parser.add_argument("--image", help="agent image tag, or 'current' (this tree's)")
    args = parser.parse_args(argv)
    image = current_image() if args.image == "current" else args.image
    result: dict[str, Any] = {
        "python": sys.version.split()[0],
        "load_before": load(),
        "import": import_cost(args.runs, [sys.executable]),
        "starts": [measure(scale, args.runs, image) for scale in args.scale],
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
