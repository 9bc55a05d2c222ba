"""A node fault naming a node the swarm lab does not have, or its manager, is
refused by `testbed run` before anything starts: exit 2, one line per fault at
its file:line:col naming the nodes that exist, no bundle, nothing on the swarm.

Run under `flock /tmp/swarm-dev.lock` (one engine, one swarm)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from orchestrator.swarm import Lab
from tests.conformance.oracle import SMOKE
from tests.swarm_support import docker_engine, docker_images

__all__ = ["docker_engine", "docker_images"]  # swarm_lab: tests/conftest.py

TESTBED = str(Path(sys.executable).with_name("testbed"))
EXIT_SPEC = 2


def test_a_node_fault_on_a_node_the_swarm_lacks_is_refused_before_the_run(
    docker_engine: Any, swarm_lab: Lab, state_dir: Path, tmp_path: Path
) -> None:
    data = yaml.safe_load(SMOKE.read_text())
    name = f"fault-nodes-{swarm_lab.id}"
    data["name"] = name
    data["deployment"] = {"backend": "swarm"}
    missing = f"{swarm_lab.workers[0]}x"
    manager = docker_engine.info()["Name"]
    data["faults"] = [
        {"at_interval": 51, "action": "stop", "node": missing},
        {"at_interval": 52, "action": "drain", "node": manager},
        {"at_interval": 52, "action": "drain", "node": swarm_lab.workers[1]},  # fine
    ]
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "results"
    env = {**os.environ, "TESTBED_STATE_DIR": str(state_dir)}
    done = subprocess.run(
        [TESTBED, "run", str(spec), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == EXIT_SPEC, done.stderr
    lines = [line for line in done.stderr.splitlines() if f"{spec}:" in line]
    assert len(lines) == 2, done.stderr
    node_lines = [i + 1 for i, t in enumerate(spec.read_text().splitlines()) if "node:" in t]
    assert lines[0].startswith(f"{spec}:{node_lines[0]}:"), lines
    assert f"faults[0].node: no swarm node {missing!r}" in lines[0]
    assert f"did you mean {swarm_lab.workers[0]!r}?" in lines[0]
    assert all(node in lines[0] for node in [*swarm_lab.workers, manager])  # the nodes that exist
    assert lines[1].startswith(f"{spec}:{node_lines[1]}:"), lines
    assert f"faults[1].node: {manager} is the manager the orchestrator talks to" in lines[1]
    # nothing started: no bundle, no service, network or container of the spec
    assert not out.exists() or not any(out.iterdir())
    label = {"label": f"testbed.spec={name}"}
    assert docker_engine.api.services(filters=label) == []
    assert docker_engine.api.networks(filters=label) == []
    assert docker_engine.api.containers(all=True, filters=label) == []
