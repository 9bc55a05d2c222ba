"""The docker backend end to end, on a real Docker Engine with the images built
offline: a lockstep smoke run in containers (bbb hosts with netem) finalizes
exactly what the local backend and `testbed replay` finalize; a crashing
agent, a broken agent image and Ctrl-C each end the run with a clear error and
leave nothing labelled with the run id; `testbed clean` removes exactly what a
killed orchestrator left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from orchestrator import run as run_module
from orchestrator.backends.docker.engine import (
    LABEL_ORCHESTRATOR,
    LABEL_RUN,
    LABEL_STATE,
    LABEL_UNIT,
    orchestrator_label,
)
from orchestrator.images import ImageSet
from orchestrator.run import RunOptions, RunResult, run
from tests.conftest import REPO, start_cli
from tests.integration.docker_support import (
    bundle_of,
    docker_engine,
    docker_images,
    labelled,
    wait_for,
)
from tests.integration.test_run_local import (
    assert_smoke_equals_local_and_replay,
    rows,
)

__all__ = ["docker_engine", "docker_images"]  # fixtures used below

SMOKE = REPO / "topologies" / "smoke.yaml"
BBB_HOSTS = "deployment.hosts=[{name: bbb, count: 2, profile: bbb, netem: {latency_ms: 5}}]"
LONG = ["market.first_interval=40", "market.last_interval=90"]


def finalized_while_running(proc: subprocess.Popen[str], out: Path) -> bool:
    """True once an interval is finalized; the run's error if it ended before."""
    if proc.poll() is not None:
        _, stderr = proc.communicate()
        raise AssertionError(f"testbed run ended early ({proc.returncode}):\n{stderr[-3000:]}")
    return finalizations(bundle_of(out)) >= 1


def finalizations(bundle: Path | None) -> int:
    path = bundle / "events" / "finalizations.csv" if bundle else None
    return len(rows(path)) if path is not None and path.exists() else 0


def assert_nothing_left(client: Any, result: RunResult, state: Path) -> None:
    assert labelled(client, result.run_id) == []
    assert not list(state.glob("docker/*")), "run state left behind"
    for name in ("spec.yaml", "manifest.json", "summary.json", "logs/orchestrator.log"):
        assert (result.bundle / name).is_file(), name


def test_smoke_run_in_containers_equals_local_backend_and_replay(
    tmp_path: Path, docker_engine: Any, docker_images: ImageSet, state_dir: Path
) -> None:
    docker = run(
        RunOptions(spec=SMOKE, overrides=[BBB_HOSTS], backend="docker", out=tmp_path / "d")
    )
    assert_smoke_equals_local_and_replay(docker, tmp_path)

    # the testbed hosts were the spec's: two bbb containers, netem on their link
    info = json.loads((docker.bundle / "docker.json").read_text())
    assert info["images"]["agent"] == docker_images.agent
    assert set(info["hosts"]) == {"bbb-01", "bbb-02"}
    assert info["hosts"]["bbb-01"]["memory_bytes"] == 512 * 2**20
    for host in ("bbb-01", "bbb-02"):
        log = (docker.bundle / "logs" / f"{host}.log").read_text()
        assert "netem" in log and "delay 5ms" in log, log[:500]
    assert {p["exit_code"] for p in docker.summary["processes"].values()} == {0}
    for agent in docker.summary["processes"]:
        assert (docker.bundle / "logs" / f"{agent}.log").stat().st_size > 0
    assert (docker.bundle / "logs" / "chain.log").stat().st_size > 0
    assert_nothing_left(docker_engine, docker, state_dir)


def run_in_thread(options: RunOptions) -> tuple[threading.Thread, dict[str, RunResult]]:
    box: dict[str, RunResult] = {}
    thread = threading.Thread(target=lambda: box.update(result=run(options)), daemon=True)
    thread.start()
    return thread, box


def test_crashing_agent_stops_the_run_with_a_clear_error(
    tmp_path: Path, docker_engine: Any, docker_images: ImageSet, state_dir: Path
) -> None:
    out = tmp_path / "results"
    thread, box = run_in_thread(RunOptions(spec=SMOKE, overrides=LONG, backend="docker", out=out))

    def started() -> bool:
        if not thread.is_alive():
            raise AssertionError(f"the run ended early: {box['result'].outcome.message}")
        return finalizations(bundle_of(out)) >= 1

    wait_for("the first finalized interval", started)
    run_id = bundle_of(out).name  # type: ignore[union-attr]
    (victim,) = docker_engine.containers.list(
        filters={"label": [f"{LABEL_RUN}={run_id}", f"{LABEL_UNIT}=prosumers-01"]}
    )
    victim.kill(signal="SIGKILL")
    thread.join(timeout=180)
    assert not thread.is_alive()
    result = box["result"]
    assert result.exit_code == run_module.EXIT_AGENT_FAILED
    assert result.outcome.message.startswith("prosumers-01: killed by signal 9")
    assert result.summary["offers"] > 0  # what was recorded is kept
    assert result.summary["processes"]["recorder"]["exit_code"] == 0  # stopped cleanly
    assert_nothing_left(docker_engine, result, state_dir)


def test_broken_agent_image_gives_a_clear_error_and_a_clean_teardown(
    tmp_path: Path,
    docker_engine: Any,
    docker_images: ImageSet,
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # an agent image whose agents package is gone: every agent dies at start
    broken = docker_engine.containers.run(
        docker_images.agent,
        ["sh", "-c", "rm -rf /opt/testbed/lib/python3*/site-packages/agents"],
        detach=True,
        labels={"testbed.test": "broken-image"},
    )
    try:
        broken.wait(timeout=60)
        image = broken.commit(repository="testbed/broken-agent", tag=tmp_path.name[-20:])
    finally:
        broken.remove(force=True)
    monkeypatch.setenv("TESTBED_IMAGE_AGENT", image.id)
    try:
        result = run(RunOptions(spec=SMOKE, backend="docker", out=tmp_path / "results"))
    finally:
        docker_engine.images.remove(image.id, force=True)
    assert result.exit_code == run_module.EXIT_AGENT_FAILED
    message = result.outcome.message
    assert message.startswith("recorder: exited with 1"), message
    assert "No module named agents" in message  # the log tail says why
    assert "No module named agents" in (result.bundle / "logs" / "recorder.log").read_text()
    assert_nothing_left(docker_engine, result, state_dir)


def long_run(out: Path, state: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "TESTBED_STATE_DIR": str(state)}
    sets = [a for s in LONG for a in ("--set", s)]
    return start_cli("run", str(SMOKE), "--backend", "docker", "--out", str(out), *sets, env=env)


def test_ctrl_c_tears_down_and_keeps_the_container_logs(
    tmp_path: Path, docker_engine: Any, docker_images: ImageSet, state_dir: Path
) -> None:
    out = tmp_path / "results"
    proc = long_run(out, state_dir)
    try:
        wait_for("the first finalized interval", lambda: finalized_while_running(proc, out))
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    bundle = bundle_of(out)
    assert bundle is not None
    assert labelled(docker_engine, bundle.name) == []
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["outcome"]["status"] == "interrupted"
    for agent in ("chain", "dso", "clock", "recorder", "solver-1", "prosumers-01"):
        assert (bundle / "logs" / f"{agent}.log").stat().st_size > 0, agent
    assert finalizations(bundle) >= 1


def test_clean_removes_exactly_what_a_killed_orchestrator_left(
    tmp_path: Path, docker_engine: Any, docker_images: ImageSet, state_dir: Path
) -> None:
    # clean must leave alone a live run (this process) of the same state directory
    # and a dead run of another state directory
    me = orchestrator_label()
    live = {LABEL_RUN: "t-live", LABEL_ORCHESTRATOR: me, LABEL_STATE: str(state_dir.resolve())}
    other = {LABEL_RUN: "t-other", LABEL_ORCHESTRATOR: "x:1:0", LABEL_STATE: "/elsewhere"}
    keep = [
        docker_engine.networks.create(f"testbed-{tmp_path.name[-12:]}-{i}", labels=labels)
        for i, labels in enumerate((live, other))
    ]
    out = tmp_path / "results"
    proc = long_run(out, state_dir)
    try:
        wait_for("the first finalized interval", lambda: finalized_while_running(proc, out))
        proc.kill()  # SIGKILL: no teardown at all
        proc.communicate(timeout=60)
        run_id = bundle_of(out).name  # type: ignore[union-attr]
        left = labelled(docker_engine, run_id)
        assert any(item.startswith("container") for item in left)
        assert any(item.startswith("network") for item in left)
        env = {**os.environ, "TESTBED_STATE_DIR": str(state_dir)}
        clean = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "clean", "--json"],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=180,
            check=False,
        )
        assert clean.returncode == 0, clean.stderr
        report = json.loads(clean.stdout)["cleaned"]
        removed = {r["what"] for r in report if r["backend"] == "docker" and r["run_id"] == run_id}
        assert removed >= set(left)
        assert labelled(docker_engine, run_id) == []
        assert not list(state_dir.glob("docker/*"))
        for network in keep:
            docker_engine.networks.get(network.id)  # still there
    finally:
        proc.kill()
        for network in keep:
            network.remove()
