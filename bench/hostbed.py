"""The test bed of bench/hoststart.py: a real chain (anvil, the compiled contract
deployed for the run) and a real DSO process serving prosumer hosts of
topologies/paper-c.yaml as the orchestrator plans it, their configs rendered the way
`orchestrator.render` renders them; a host started as a process or in the agent image;
the clock's two sockets, to send a host its first tick.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "topologies" / "paper-c.yaml"
OVERRIDES = ["market.clock=lockstep", "chain.block_time_seconds=0"]
READY_LINE = re.compile(r"\d+ prosumers, \d+ offers")
START_TIMEOUT_SECONDS = 120.0  # generous: the machine is shared
TICK_TIMEOUT_SECONDS = 300.0
STOP_TIMEOUT_SECONDS = 30.0
REPUBLISH_SECONDS = 0.2  # the clock's tick again until the host answers (a late SUB)
TICK = os.sysconf("SC_CLK_TCK")
HOST_COMMAND = ["-m", "agents", "prosumer", "--config"]
# The agent image has every module precompiled; here the hosts' bytecode is cached
# outside the tree (the environment may say PYTHONDONTWRITEBYTECODE: a host would then
# compile the project's modules at every start).
PYCACHE = Path(tempfile.gettempdir()) / "hoststart-pycache"


def host_env() -> dict[str, str]:
    """The environment of a host process started here: bytecode cached in PYCACHE."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(PYCACHE)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def precompile() -> None:
    """Compile the project's packages into PYCACHE (third-party packages in the venv
    are compiled when installed)."""
    packages = [str(REPO / name) for name in ("agents", "market")]
    command = [sys.executable, "-m", "compileall", "-q", *packages]
    subprocess.run(command, env=host_env(), check=True, capture_output=True)


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
        self.rewire()

    def rewire(self) -> None:
        """Fresh ports for the DSO and the clock (a new DSO for the next run)."""
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

    def host_config(self, label: str) -> Path:
        """The first prosumer host's config, its out_dir `label` (a fresh host)."""
        return self.write_config(self.host, self.host.name, self.tmp / label)


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


@dataclass
class Host:
    """A started host: its Python's pid, its log lines (stderr), when it was started."""

    pid: int
    stderr: IO[str]
    began: float

    def await_ready(self) -> float:
        """Wall seconds from the start to the ready line (SystemExit if it ended)."""
        lines: list[str] = []
        if not await_line(self.stderr, READY_LINE, lines):
            raise SystemExit(f"host exited before ready:\n{''.join(lines)}")
        return time.monotonic() - self.began

    def cpu(self) -> float:
        return cpu_seconds(self.pid)


@contextmanager
def host_process(config: Path, python: list[str] | None = None) -> Iterator[Host]:
    """`python -m agents prosumer --config ...` (`python`: the interpreter's argv, e.g.
    with -m cProfile), stopped by SIGTERM on the way out."""
    argv = [*(python or [sys.executable]), *HOST_COMMAND, str(config)]
    began = time.monotonic()
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=host_env())
    try:
        assert proc.stderr is not None
        yield Host(proc.pid, proc.stderr, began)
    finally:
        stop(proc)


@contextmanager
def host_container(config: Path, image: str) -> Iterator[Host]:
    """The same host in the agent image on the local engine (host network, the image's
    entrypoint); its Python's pid through the engine, its log from `docker logs -f`."""
    mount = f"{config.parent}:{config.parent}"
    cname = f"hoststart-{uuid.uuid4().hex[:10]}"
    argv = ["docker", "run", "-d", "--name", cname, "--network", "host", "-v", mount, image]
    began = time.monotonic()
    subprocess.run([*argv, "python", *HOST_COMMAND, str(config)], check=True, capture_output=True)
    logs = subprocess.Popen(
        ["docker", "logs", "-f", cname],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pid = int(subprocess.check_output(["docker", "inspect", "-f", "{{.State.Pid}}", cname]))
        assert logs.stderr is not None
        yield Host(pid, logs.stderr, began)
    finally:
        subprocess.run(["docker", "rm", "-f", cname], capture_output=True)
        stop(logs)


class Clock:
    """The clock's sockets (PUB, PULL) bound at the bed's endpoints, to tick a host."""

    def __init__(self, endpoints: dict[str, str]) -> None:
        from agents.common.transport import Collector, Publisher

        self.pub = Publisher(endpoints["clock_pub_endpoint"])
        self.pull = Collector(endpoints["clock_pull_endpoint"])

    def tick(self, interval: int) -> int:
        """Publish tick(interval) until the host reports `posted`; its offers posted."""
        from agents.common.protocol import Posted, Tick

        deadline = time.monotonic() + TICK_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            self.pub.send(Tick(interval))
            msg = self.pull.recv(REPUBLISH_SECONDS)
            if isinstance(msg, Posted) and msg.interval == interval:
                return msg.offers
        raise SystemExit(f"no posted report for tick {interval}")

    def close(self) -> None:
        self.pub.sock.close(linger=0)
        self.pull.sock.close(linger=0)
