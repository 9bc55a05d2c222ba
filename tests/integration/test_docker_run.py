"""The docker backend end to end, on a real Docker Engine with the images built
offline: a broken agent image ends the run with a clear error and leaves
nothing labelled with the run id. The scenarios every backend shares (smoke
equals replay, agent crash, Ctrl-C, clean, kill/restart) are in
tests/conformance/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator import run as run_module
from orchestrator.images import ImageSet
from orchestrator.run import RunOptions, RunResult, run
from tests.conftest import REPO
from tests.integration.docker_support import docker_engine, docker_images, labelled

__all__ = ["docker_engine", "docker_images"]  # fixtures used below

SMOKE = REPO / "topologies" / "smoke.yaml"


def assert_nothing_left(client: Any, result: RunResult, state: Path) -> None:
    assert labelled(client, result.run_id) == []
    assert not list(state.glob("docker/*")), "run state left behind"
    for name in ("spec.yaml", "manifest.json", "summary.json", "logs/orchestrator.log"):
        assert (result.bundle / name).is_file(), name


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
