"""The swarm lab, checked with the real thing: three Ready nodes with their labels,
an image pushed to the lab's registry running as a service on both workers, an
HTTP call from one worker to a service on the other over an attachable overlay
network (dnsrr endpoints: this kernel has no IPVS), and a lab's down() leaving
nothing behind (nodes, containers, volumes, cgroups, state).

Run under `flock /tmp/swarm-dev.lock` (one engine, one swarm)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.types
import pytest

from orchestrator.hosts import PROFILES
from orchestrator.images.base import ensure_offline_base
from orchestrator.swarm import Lab
from orchestrator.swarm.nodes import LABEL_LAB, cgroup_subtrees
from orchestrator.swarm.registry import docker0_address
from tests.integration.docker_support import wait_for
from tests.swarm_support import LAB_LOG, docker_engine, free_port

__all__ = ["docker_engine"]  # swarm_lab: tests/conftest.py (one lab per session)

PORT = 8000
SERVE = ["python3", "-m", "http.server", str(PORT)]
FETCH = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=30).status)"


def test_three_nodes_ready_and_labelled(docker_engine: Any, swarm_lab: Lab) -> None:
    nodes = docker_engine.nodes.list()
    by_name = {n.attrs["Description"]["Hostname"]: n for n in nodes}
    ready = [n for n in nodes if n.attrs["Status"]["State"] == "ready"]
    assert len(ready) >= 3
    managers = [n for n in ready if n.attrs["Spec"]["Role"] == "manager"]
    assert managers, "this engine is a Ready manager"
    for worker in swarm_lab.workers:
        node = by_name[worker]
        assert node.attrs["Status"]["State"] == "ready"
        assert node.attrs["Spec"]["Role"] == "worker"
        labels = node.attrs["Spec"]["Labels"]
        assert labels == {"testbed.lab": swarm_lab.id, "testbed.role": "prosumers"}


def test_shared_folder_is_the_same_path_on_every_node(
    docker_engine: Any, swarm_lab: Lab, tmp_path: Path
) -> None:
    (tmp_path / "bundle.txt").write_text("written on the manager\n")
    for worker in swarm_lab.workers:
        container = docker_engine.containers.get(worker)
        code, out = container.exec_run(["cat", str(tmp_path / "bundle.txt")])
        assert (code, out.decode()) == (0, "written on the manager\n")


@pytest.fixture
def pushed(docker_engine: Any, swarm_lab: Lab) -> str:
    """The offline base image (python3 inside) in the lab's registry."""
    assert swarm_lab.registry is not None
    base = ensure_offline_base(docker_engine, LAB_LOG.append)
    refs = swarm_lab.registry.push_images(docker_engine, {"base": base})
    again = swarm_lab.registry.push_images(docker_engine, {"base": base})
    assert refs == again, "the tag is the content's hash: a second push changes nothing"
    assert refs["base"].startswith(f"{swarm_lab.registry.address}/testbed/base:")
    return refs["base"]


@pytest.fixture
def overlay(docker_engine: Any, swarm_lab: Lab) -> Iterator[Any]:
    name = f"testbed-labtest-{secrets.token_hex(3)}"
    network = docker_engine.networks.create(
        name, driver="overlay", attachable=True, labels={LABEL_LAB: swarm_lab.id}
    )
    services: list[Any] = []
    network.services = services
    try:
        yield network
    finally:
        for service in services:
            with contextlib.suppress(Exception):
                service.remove()
        wait_for("the overlay to be removed", lambda: _removed(network), timeout=120)


def _removed(network: Any) -> bool:
    """Whether removing `network` worked (not while the services' tasks still use it)."""
    import docker.errors

    try:
        network.remove()
    except docker.errors.NotFound:
        return True
    except docker.errors.APIError:
        return False
    return True


def _service(client: Any, network: Any, image: str, name: str, **kwargs: Any) -> Any:
    service = client.services.create(
        image,
        command=SERVE,
        name=name,
        networks=[network.id],
        endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"),
        restart_policy=docker.types.RestartPolicy(condition="none"),
        labels={LABEL_LAB: network.attrs["Labels"][LABEL_LAB]},
        **kwargs,
    )
    network.services.append(service)
    return service


def _running_on(client: Any, service: Any, count: int) -> dict[str, str]:
    """{node hostname: task id} once `count` tasks run (fails on a task that failed)."""
    hostnames = {n.id: n.attrs["Description"]["Hostname"] for n in client.nodes.list()}

    def running() -> dict[str, str] | None:
        tasks = service.tasks()
        failed = [t for t in tasks if t["Status"]["State"] in ("failed", "rejected")]
        assert not failed, f"task failed: {failed[0]['Status']}"
        up = {hostnames[t["NodeID"]]: t["ID"] for t in tasks if t["Status"]["State"] == "running"}
        return up if len(up) == count else None

    return dict(wait_for(f"{count} running tasks of {service.name}", running, timeout=300))


def test_registry_image_runs_on_both_workers(
    docker_engine: Any, swarm_lab: Lab, pushed: str, overlay: Any
) -> None:
    service = _service(
        docker_engine,
        overlay,
        pushed,
        f"{overlay.name}-both",
        mode=docker.types.ServiceMode("replicated", replicas=len(swarm_lab.workers)),
        constraints=[f"node.labels.testbed.lab=={swarm_lab.id}"],
        maxreplicas=1,
    )
    placed = _running_on(docker_engine, service, len(swarm_lab.workers))
    assert sorted(placed) == sorted(swarm_lab.workers)
    for worker in swarm_lab.workers:  # each node pulled it from the registry
        code, out = swarm_lab.node_docker(
            docker_engine, worker, "images", "--format", "{{.Repository}}:{{.Tag}}"
        )
        assert code == 0 and pushed in out.splitlines(), out


def test_http_across_workers_on_an_attachable_overlay(
    docker_engine: Any, swarm_lab: Lab, pushed: str, overlay: Any
) -> None:
    server, client = swarm_lab.workers[:2]
    web = _service(
        docker_engine,
        overlay,
        pushed,
        f"{overlay.name}-web",
        constraints=[f"node.hostname=={server}"],
    )
    _running_on(docker_engine, web, 1)
    # a plain container on the other worker, attached to the overlay (it is attachable)
    code, out = swarm_lab.node_docker(
        docker_engine,
        client,
        "run", "--rm", "--network", overlay.name, pushed,
        "python3", "-c", _retrying(FETCH), f"http://{web.name}:{PORT}/",
    )  # fmt: skip
    assert code == 0, out
    assert out.splitlines()[-1] == "200"


def _retrying(script: str) -> str:
    """`script` retried for up to a minute (the name resolves once the task is attached)."""
    return (
        "import time\n"
        "deadline = time.monotonic() + 60\n"
        "while True:\n"
        "    try:\n"
        f"        exec({script!r})\n"
        "        break\n"
        "    except OSError:\n"
        "        if time.monotonic() > deadline: raise\n"
        "        time.sleep(0.5)\n"
    )


def test_a_node_reaps_its_shims_and_weighs_its_engine_above_its_containers(
    docker_engine: Any, swarm_lab: Lab, pushed: str
) -> None:
    """The node container runs under an init (the shims of exited containers are
    reaped, not left as zombies) and is a cgroup subtree of its own: the engine's
    container beside /<node>/containers, with a larger CPU weight."""
    worker = swarm_lab.workers[0]
    node = docker_engine.containers.get(worker)
    for _ in range(3):  # each leaves an exited shim behind
        code, out = swarm_lab.node_docker(docker_engine, worker, "run", "--rm", pushed, "true")
        assert code == 0, out
    code, out = swarm_lab.node_docker(docker_engine, worker, "run", "-d", pushed, "sleep", "600")
    assert code == 0, out
    inner = out.splitlines()[-1]
    try:
        code, pid = swarm_lab.node_docker(
            docker_engine, worker, "inspect", "-f", "{{.State.Pid}}", inner
        )
        assert code == 0, pid
        # the node's own pid namespace; the host's cgroup namespace (absolute paths)
        inner_cgroups = node.exec_run(["cat", f"/proc/{pid}/cgroup"]).output.decode()
        cpu = _cgroup_in(inner_cgroups, "cpu")
        assert cpu.startswith(f"/{worker}/containers/"), cpu
        engine_cgroups = Path(f"/proc/{node.attrs['State']['Pid']}/cgroup").read_text()
        assert _cgroup_in(engine_cgroups, "cpu") == f"/{worker}/{node.id}"
        shares = Path("/sys/fs/cgroup/cpu") / worker
        engine = int((shares / node.id / "cpu.shares").read_text())
        assert engine > int((shares / "containers" / "cpu.shares").read_text())
        wait_for("exited shims reaped", lambda: _zombies(node) == [], 60)
        assert node.exec_run(["ps", "-o", "comm=", "-p", "1"]).output.decode().strip() == (
            "docker-init"
        )
    finally:
        swarm_lab.node_docker(docker_engine, worker, "rm", "-f", inner)


def test_a_node_runs_a_bbb_host_with_the_labs_runtime(
    docker_engine: Any, swarm_lab: Lab, pushed: str
) -> None:
    """The node's engine runs its containers with the lab's runtime (crun by default):
    a container as the backend makes a prosumer host (the bbb profile's memory and
    CPU limits, an init, CAP_NET_ADMIN) gets its limits in its cgroups, docker-init
    as PID 1, may change its own links (what netem needs), and nothing more: without
    NET_ADMIN that is refused, and /proc/sys stays read-only for it."""
    worker = swarm_lab.workers[0]
    code, runtime = swarm_lab.node_docker(
        docker_engine, worker, "info", "--format", "{{.DefaultRuntime}}"
    )
    assert (code, runtime) == (0, swarm_lab.runtime)
    bbb = PROFILES["bbb"]
    assert bbb.memory_bytes and bbb.nano_cpus
    script = (
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
        "/sys/fs/cgroup/cpu/cpu.cfs_period_us /proc/1/comm; ip link set lo mtu 1400 && echo "
        "net-admin; (echo 1 > /proc/sys/net/ipv4/ip_forward) 2>/dev/null || echo sysctl-read-only"
    )
    code, out = swarm_lab.node_docker(
        docker_engine, worker,
        "run", "--rm", "--init", "--cap-add", "NET_ADMIN",
        "--memory", str(bbb.memory_bytes), "--cpus", str(bbb.nano_cpus / 1e9),
        pushed, "sh", "-c", script,
    )  # fmt: skip
    assert code == 0, out
    memory, quota, period, init, net_admin, sysctl = out.splitlines()[-6:]
    assert int(memory) == bbb.memory_bytes
    assert int(quota) / int(period) == bbb.nano_cpus / 1e9
    assert (init, net_admin, sysctl) == ("docker-init", "net-admin", "sysctl-read-only")
    code, out = swarm_lab.node_docker(
        docker_engine, worker, "run", "--rm", pushed, "ip", "link", "set", "lo", "mtu", "1400"
    )
    assert code != 0 and "not permitted" in out, out


def _cgroup_in(proc_cgroup: str, controller: str) -> str:
    """The path of `controller` in a /proc/<pid>/cgroup text."""
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    raise AssertionError(f"no {controller} cgroup in {proc_cgroup!r}")


def _zombies(node: Any) -> list[str]:
    out = node.exec_run(["ps", "-eo", "stat=,comm="]).output.decode()
    return [line for line in out.splitlines() if line.strip().startswith("Z")]


def test_down_leaves_nothing(
    docker_engine: Any, swarm_lab: Lab, pushed: str, tmp_path: Path
) -> None:
    """A second, one-worker lab on the same manager, running a container: up, then
    down, then nothing of it."""
    state = tmp_path / "state"
    lab = Lab.up(docker_engine, state, workers=1, registry=False, say=LAB_LOG.append)
    (worker,) = lab.workers
    assert not lab.initialised_swarm, "the session's lab made the swarm already"
    code, out = lab.node_docker(docker_engine, worker, "run", "-d", pushed, "sleep", "600")
    assert code == 0, out
    assert cgroup_subtrees(worker), "the node's container has its cgroups under /<node>"
    assert lab.down(docker_engine) == []
    selector = {"label": f"{LABEL_LAB}={lab.id}"}
    assert docker_engine.containers.list(all=True, filters=selector) == []
    assert docker_engine.volumes.list(filters=selector) == []
    hostnames = [n.attrs["Description"]["Hostname"] for n in docker_engine.nodes.list()]
    assert worker not in hostnames
    assert cgroup_subtrees(worker) == []
    assert not (state / "labs" / f"{lab.id}.json").exists()
    # the session's lab is untouched
    assert docker_engine.info()["Swarm"]["LocalNodeState"] == "active"
    assert all(docker_engine.containers.get(w).status == "running" for w in swarm_lab.workers)


def test_cli_lab_up_status_down(docker_engine: Any, swarm_lab: Lab, tmp_path: Path) -> None:
    """`testbed lab up|status|down` as a user runs them (another lab beside the session's)."""
    env = {**os.environ, "TESTBED_STATE_DIR": str(tmp_path / "state")}
    host = docker0_address(docker_engine)
    up = _cli(
        "lab", "up", "--workers", "1", "--name", f"cli{secrets.token_hex(2)}",
        "--shared", str(tmp_path / "results"), "--registry-port", str(free_port(host)), "--json",
        env=env,
    )  # fmt: skip
    report = json.loads(up.stdout)
    lab_id = report["id"]
    assert [n["state"] for n in report["nodes"]] == ["ready"]
    assert report["registry"]["answers"] is True
    ca = Path("/etc/docker/certs.d") / report["registry"]["address"] / "ca.crt"
    assert ca.is_file()
    status = json.loads(_cli("lab", "status", "--json", env=env).stdout)
    assert [r["id"] for r in status] == [lab_id]
    _cli("lab", "down", lab_id, env=env)
    selector = {"label": f"{LABEL_LAB}={lab_id}"}
    assert docker_engine.containers.list(all=True, filters=selector) == []
    assert not ca.exists(), "down removed the CA file up had placed"
    assert _cli("lab", "status", env=env).stdout.startswith("no labs")


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"testbed {' '.join(args)}: {done.stderr}"
    return done
