"""The swarm backend with a manager that is not this machine's engine.

A second, tiny swarm made entirely of containers (orchestrator/swarm/
remotelab.py): a manager node running its own dockerd, reached over TCP with
TLS at its container's address, and one worker labelled for prosumers. This
engine runs no swarm at all (no flock needed): it only hosts the node
containers and the registry, as a laptop would host the orchestrator. A bind
mount of a path that exists only on this machine fails on those nodes, so
a run that works there mounts nothing of the orchestrator's disk but the
shared results root (bind-mounted into every node: NFS's stand-in).

- The smoke run equals replay to the Wh; its agents' configs arrived as
  bind mounts of their own file from the shared bundle, prometheus.yml as a
  config; Prometheus answered at the manager node's address and its snapshot
  is in the bundle; nothing is left on that engine or its nodes.
- A results root the nodes do not have stops the run before anything starts,
  naming the node and the path.
- `testbed clean` after the orchestrator was SIGKILLed mid-run removes what
  the run left on that manager: services, networks, configs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.base import state_root
from orchestrator.backends.docker.engine import LABEL_RUN
from orchestrator.backends.swarm.resources import KINDS, name_of, swarm_resources
from orchestrator.images import ImageSet
from orchestrator.run import EXIT_ERROR, EXIT_OK, RunOptions, run
from orchestrator.swarm.nodes import node_docker
from orchestrator.swarm.registry import docker0_address
from orchestrator.swarm.remotelab import RemoteLab
from tests.conformance.oracle import SMOKE, SMOKE_LAST, finalized_by_content, replayed
from tests.conformance.targets import BBB_HOSTS, Target
from tests.conformance.test_backend_conformance import cli, start_long_run, wait_first_finalized
from tests.conftest import require
from tests.integration.docker_support import docker_engine, docker_images, wait_for
from tests.swarm_support import free_port

__all__ = ["docker_engine", "docker_images"]

STATE_DIR = state_root()  # before any test's TESTBED_STATE_DIR: where a killed session's lab is
LOG: list[str] = []


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("remote-results")


@pytest.fixture(scope="module")
def remote_lab(
    docker_engine: Any, docker_images: ImageSet, shared_root: Path
) -> Iterator[RemoteLab]:
    require(os.geteuid() == 0, "root (the nodes need cgroups and /etc/docker/certs.d)")
    port = free_port(docker0_address(docker_engine))
    lab = RemoteLab.up(
        docker_engine, STATE_DIR, workers=1, shared=[shared_root], registry_port=port,
        say=LOG.append,
    )  # fmt: skip
    try:
        lab.seed_images(docker_engine, docker_images.as_dict(), say=LOG.append)
        yield lab
    finally:
        problems = lab.down(docker_engine, strict=False)
        if problems:
            print(f"remote lab {lab.id}: left behind: {problems}", file=sys.stderr)


@pytest.fixture
def remote(remote_lab: RemoteLab, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The manager's client; the orchestrator's environment names its TLS files."""
    for key, value in remote_lab.env.items():
        monkeypatch.setenv(key, value)
    client = remote_lab.connect()
    yield client
    client.close()


def overrides(lab: RemoteLab) -> list[str]:
    assert lab.registry is not None
    return [
        "deployment.backend=swarm",
        f"deployment.swarm.manager={lab.url}",
        f"deployment.swarm.registry={lab.registry.address}",
        BBB_HOSTS,
    ]


def leftovers(client: Any, lab: RemoteLab, docker_engine: Any, run_id: str) -> set[str]:
    """The run's services, networks, secrets, configs on the manager, and its
    containers on every node."""
    found: set[str] = set()
    swarm = swarm_resources(client, run_id).get(run_id)
    for kind in KINDS if swarm is not None else ():
        found |= {f"{kind[:-1]} {name_of(item)}" for item in getattr(swarm, kind)}
    for node in lab.nodes:
        code, out = node_docker(
            docker_engine, node, "ps", "-aq", "--filter", f"label={LABEL_RUN}={run_id}"
        )
        assert code == 0, out
        found |= {f"container {c} on {node.name}" for c in out.split()}
    return found


class RemoteTarget(Target):
    """The remote lab as the conformance suite's helpers see a backend."""

    name = "swarm"

    def __init__(self, state: Path, lab: RemoteLab, client: Any, engine: Any) -> None:
        super().__init__(state)
        self.lab, self.client, self.engine = lab, client, engine

    @property
    def overrides(self) -> list[str]:
        return overrides(self.lab)

    def leftovers(self, run_id: str) -> set[str]:
        return leftovers(self.client, self.lab, self.engine, run_id)


def created(client: Any, kind: str, run_id: str, since: float) -> list[str]:
    """Names of the `kind` objects (secret, config) the manager created for the run."""
    events = client.events(
        since=int(since), until=int(time.time()) + 1, filters={"type": kind}, decode=True
    )
    return [
        e["Actor"]["Attributes"]["name"]
        for e in events
        if e.get("Action") == "create"
        and e["Actor"]["Attributes"].get("name", "").startswith(f"testbed-{run_id}-")
    ]


def test_a_run_with_the_manager_on_another_engine_equals_replay(
    remote_lab: RemoteLab, remote: Any, docker_engine: Any, shared_root: Path, state_dir: Path
) -> None:
    del state_dir  # the run's state: on this machine only, not shared with the nodes
    started = time.time()
    result = run(RunOptions(spec=SMOKE, overrides=overrides(remote_lab), out=shared_root))
    assert result.exit_code == EXIT_OK, result.outcome
    info = json.loads((result.bundle / "swarm.json").read_text())
    assert info["manager"] == remote_lab.url
    [worker] = remote_lab.workers
    assert {info["hosts"][h]["node"] for h in ("prosumers-01", "prosumers-02")} == {worker.name}
    manager = remote_lab.nodes[0].name  # the DSO, clock, ... (chain and Prometheus: always)
    assert {info["placement"][u] for u in ("dso", "clock", "recorder")} == {manager}
    per_interval, expected = replayed(SMOKE, [], clip=True)
    assert finalized_by_content(result.bundle / "events", SMOKE_LAST) == expected
    assert result.summary["total_energy_traded_wh"] == sum(per_interval.values())
    # inputs: each agent's config (its keys) its own file from the shared bundle,
    # read-only (no secret); prometheus.yml a config through the manager
    run_id = result.bundle.name
    assert created(remote, "secret", run_id, started) == []
    assert len(created(remote, "config", run_id, started)) == 1
    # Prometheus ran on the manager node and answered there; its data came back
    metrics = json.loads((result.bundle / "metrics" / "prometheus.json").read_text())
    assert metrics["live_url"].startswith(f"http://{remote_lab.address}:")
    assert metrics["targets_scraped"] > 0 and metrics["series"] > 0  # (it finds the tasks
    # itself: a short run's last hosts may end before it sees them)
    assert metrics["blocks"] or (result.bundle / "metrics" / "tsdb").is_dir()
    assert not (result.bundle / "metrics" / "prometheus-data").exists()
    wait_for(
        "the run's leftovers to go",
        lambda: not leftovers(remote, remote_lab, docker_engine, run_id),
        timeout=120,
    )


def test_a_results_root_the_nodes_lack_stops_the_run_before_anything_starts(
    remote_lab: RemoteLab, remote: Any, docker_engine: Any, tmp_path: Path, state_dir: Path
) -> None:
    del state_dir
    started = time.time()
    local_only = tmp_path / "results-here-only"  # not mounted into any node
    result = run(RunOptions(spec=SMOKE, overrides=overrides(remote_lab), out=local_only))
    assert result.exit_code == EXIT_ERROR, result.outcome
    message = result.outcome.message
    assert f"has no {result.bundle}" in message, message
    assert all(node.name in message for node in remote_lab.nodes), message  # one line each
    # nothing of the run started: the manager made only the checks (and the pre-pull)
    services = created(remote, "service", result.bundle.name, started)
    assert services and all(("-probe-" in s or s.endswith("-prepull")) for s in services)
    wait_for(
        "the run's leftovers to go",
        lambda: not leftovers(remote, remote_lab, docker_engine, result.bundle.name),
        timeout=120,
    )


def test_clean_after_sigkill_removes_what_the_run_left_on_that_manager(
    remote_lab: RemoteLab, remote: Any, docker_engine: Any, shared_root: Path, state_dir: Path
) -> None:
    target = RemoteTarget(state_dir, remote_lab, remote, docker_engine)
    out, logs = shared_root / "killed", state_dir / "logs"
    logs.mkdir(parents=True)
    proc = start_long_run(target, out, logs)
    try:
        run_id = wait_first_finalized(proc, out, logs).name
    finally:
        proc.kill()  # SIGKILL: the orchestrator dies without any teardown
        proc.wait()
    left = target.leftovers(run_id)
    for kind in ("service ", "network ", "config "):
        assert any(item.startswith(kind) for item in left), f"no {kind!r} left: {sorted(left)}"
    assert not any(item.startswith("secret ") for item in left), sorted(left)  # configs: files
    report = json.loads(cli(target, "clean", "--json"))["cleaned"]
    removed = {r["what"] for r in report if r["run_id"] == run_id and r["action"] == "removed"}
    assert {item for item in left if not item.startswith("container ")} <= removed, report
    wait_for("the run's leftovers to go", lambda: not target.leftovers(run_id), timeout=120)
