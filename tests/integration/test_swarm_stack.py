"""`testbed render --format stack` deployed for real with `docker stack deploy` on
the swarm lab (tests/swarm_support.py): the smoke spec in lockstep, its two
BeagleBone-limited prosumer hosts (netem on their link) on the lab's workers,
images from the lab's registry. The stack has no orchestrator: its start order
is the agents' own (setup/start.py). It must finalize what `testbed replay`
finalizes, trade for trade and Wh for Wh, in the recorder's output in the
project folder; `docker stack rm` then leaves nothing of it on any node.

Run under `flock /tmp/swarm-dev.lock` (one engine, one swarm)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.chain.node import Anvil
from orchestrator.backends.docker.engine import LABEL_RUN
from orchestrator.backends.swarm import stackstart
from orchestrator.swarm import Lab
from tests.conformance.oracle import SMOKE, SMOKE_LAST, finalized_by_content, replayed, rows
from tests.conformance.targets import BBB_HOSTS
from tests.conftest import require_tool
from tests.integration.docker_support import wait_for
from tests.swarm_support import docker_engine, docker_images, free_port

__all__ = ["docker_engine", "docker_images"]  # swarm_lab, swarm_images: tests/conftest.py

TESTBED = str(Path(sys.executable).with_name("testbed"))
STACK_LABEL = "com.docker.stack.namespace"
RUN_SECONDS = 900.0  # image pulls on the workers, then the smoke market, on a busy machine
GONE_SECONDS = 180.0
FAILED = frozenset({"failed", "rejected", "orphaned"})


def test_start_gate_waits_for_a_contract_with_code_on_the_chain(tmp_path: Path) -> None:
    """setup/start.py against a real anvil: no address, an address without code
    (a config left from another chain), then code there."""
    config = tmp_path / "dso.json"
    address = "0x" + "ab" * 20
    with Anvil(binary=require_tool("anvil")) as node:
        config.write_text(json.dumps({"rpc_url": node.url, "contract_address": "0x" + "0" * 40}))
        assert stackstart.deployed(str(config)) == ""
        config.write_text(json.dumps({"rpc_url": node.url, "contract_address": address}))
        assert stackstart.deployed(str(config)) == ""
        config.write_text('{"rpc_url": "' + node.url)  # half written
        assert stackstart.deployed(str(config)) == ""
        config.write_text(json.dumps({"rpc_url": node.url, "contract_address": address}))
        stackstart._post(node.url, "anvil_setCode", [address, "0x6000"])
        assert stackstart.deployed(str(config)) == address
    assert stackstart.deployed(str(config)) == ""  # the chain gone: wait on
    args, command = stackstart.parse([str(config), "--after", "dso", "--", "python", "-V"])
    assert (args.config, args.after, command) == (str(config), ["dso"], ["python", "-V"])
    assert stackstart.ready("localhost", free_port("127.0.0.1")) is False
    with pytest.raises(SystemExit, match="no command"):
        stackstart.parse([str(config), "--"])


def _docker(*argv: str) -> str:
    done = subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"docker {' '.join(argv)}: {done.stdout}{done.stderr}"
    return done.stdout


def _tasks(client: Any, stack: str) -> dict[str, dict[str, Any]]:
    """{service's short name: its newest task}."""
    services = client.api.services(filters={"label": f"{STACK_LABEL}={stack}"})
    names = {s["ID"]: s["Spec"]["Name"].removeprefix(f"{stack}_") for s in services}
    newest: dict[str, dict[str, Any]] = {}
    for task in client.api.tasks(filters={"service": list(names)}) if names else []:
        name = names[task["ServiceID"]]
        if name not in newest or task["Version"]["Index"] > newest[name]["Version"]["Index"]:
            newest[name] = task
    return newest


def _finished(client: Any, stack: str, project: Path) -> dict[str, dict[str, Any]] | None:
    """The tasks once the clock's is complete and the recorder wrote its summary;
    fails at once on a task that failed (with the stack's state and logs)."""
    tasks = _tasks(client, stack)
    failed = {n: t["Status"] for n, t in tasks.items() if t["Status"]["State"] in FAILED}
    if failed:
        logs = {n: _service_log(stack, n) for n in failed}
        raise AssertionError(f"tasks failed: {failed}\n{logs}")
    clock = tasks.get("clock", {}).get("Status", {}).get("State")
    summary = project / "out" / "recorder" / "recorder.json"
    return tasks if clock == "complete" and summary.exists() else None


def _service_log(stack: str, name: str) -> str:
    done = subprocess.run(
        ["docker", "service", "logs", "--raw", f"{stack}_{name}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return (done.stdout + done.stderr)[-3000:]


def _left(client: Any, lab: Lab, run_id: str) -> list[str]:
    """Everything labelled with the run: services, networks, containers on the
    manager and on every worker."""
    label = {"label": f"{LABEL_RUN}={run_id}"}
    left = [f"service {s['Spec']['Name']}" for s in client.api.services(filters=label)]
    left += [f"network {n['Name']}" for n in client.api.networks(filters=label)]
    left += [f"container {c['Names'][0]}" for c in client.api.containers(all=True, filters=label)]
    for worker in lab.workers:
        code, out = lab.node_docker(
            client,
            worker,
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            f"label={label['label']}",
        )
        assert code == 0, out
        left += [f"container {name} on {worker}" for name in out.split()]
    return left


def test_a_rendered_stack_deploys_by_hand_trades_as_replay_and_leaves_nothing(
    docker_engine: Any, swarm_lab: Lab, swarm_images: dict[str, str], tmp_path: Path
) -> None:
    assert swarm_lab.registry is not None
    project = tmp_path / "stack"  # under the session's folder: the same path on every node
    overrides = [
        f"deployment.swarm.registry={swarm_lab.registry.address}",
        f"deployment.swarm.prosumers=[node.labels.testbed.lab=={swarm_lab.id}]",
        BBB_HOSTS,
    ]
    argv = [TESTBED, "render", str(SMOKE), "--format", "stack", "--out", str(project)]
    argv += ["--prometheus-port", str(free_port("0.0.0.0"))]
    for override in overrides:
        argv += ["--set", override]
    rendered = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert rendered.returncode == 0, rendered.stderr
    stack_file = project / "stack.yaml"
    document = yaml.safe_load(stack_file.read_text())
    run_id = document["services"]["chain"]["labels"][LABEL_RUN]
    stack = f"testbed-{run_id}"
    assert f"docker stack deploy -c {stack_file} {stack}" in stack_file.read_text()
    images = {s["image"] for s in document["services"].values()}
    assert images == {swarm_images["agent"], swarm_images["chain"], swarm_images["prometheus"]}

    started = time.monotonic()
    _docker("stack", "deploy", "-c", str(stack_file), stack)
    try:
        tasks = wait_for(
            "the stack's market to finish",
            lambda: _finished(docker_engine, stack, project),
            timeout=RUN_SECONDS,
        )
        seconds = time.monotonic() - started
        print(f"\nstack {stack}: deploy to finished in {seconds:.1f} s")
        workers = {n.node_id: n.name for n in swarm_lab.nodes}
        hosts = {
            name: workers.get(tasks[name]["NodeID"]) for name in ("prosumers-01", "prosumers-02")
        }
        assert sorted(hosts.values()) == sorted(swarm_lab.workers), hosts  # one on each worker
        assert tasks["deploy"]["Status"]["State"] == "complete"
        assert tasks["prosumers-01"]["Status"]["State"] == "complete", tasks["prosumers-01"]

        out = project / "out" / "recorder"
        per_interval, expected = replayed(SMOKE, [BBB_HOSTS], clip=True)
        assert finalized_by_content(out, SMOKE_LAST) == expected
        finalized = {
            int(r["interval"]): int(r["energy_wh"]) for r in rows(out / "finalizations.csv")
        }
        assert finalized == per_interval and sum(per_interval.values()) > 0
        summary = json.loads((out / "recorder.json").read_text())
        assert summary["total_energy_traded_kwh"] * 1000 == sum(per_interval.values())
    finally:
        _docker("stack", "rm", stack)
        deadline = time.monotonic() + GONE_SECONDS
        while left := _left(docker_engine, swarm_lab, run_id):
            assert time.monotonic() < deadline, f"left after docker stack rm: {left}"
            time.sleep(0.5)
