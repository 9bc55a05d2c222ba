"""Fixtures of the conformance suite: `backend` is each entry of BACKENDS in
turn, built by its `<name>_target` fixture.

To add a backend: its name in BACKENDS, a Target subclass in targets.py and a
`<name>_target` fixture below (returning it, over whatever session-scoped
fixtures it needs: an engine, servers, images).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.images import ImageSet
from orchestrator.run import RunOptions, RunResult, run
from orchestrator.swarm import Lab
from tests.conformance.oracle import SMOKE
from tests.conformance.targets import DockerTarget, SshTarget, SwarmTarget, Target
from tests.conftest import require_tool
from tests.integration.docker_support import docker_engine, docker_images
from tests.integration.ssh_support import SshLab, ssh_lab

# fixtures used below
__all__ = ["docker_engine", "docker_images", "ssh_lab"]  # swarm_lab: tests/conftest.py

BACKENDS = ["local", "docker", "ssh", "swarm"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, state_dir: Path) -> Target:
    require_tool("anvil")  # every backend runs the chain (and, but docker, the services) here
    target = request.getfixturevalue(f"{request.param}_target")
    assert isinstance(target, Target) and target.name == request.param
    return target


@pytest.fixture
def local_target(state_dir: Path) -> Target:
    return Target(state_dir)


@pytest.fixture
def docker_target(
    state_dir: Path, docker_engine: Any, docker_images: ImageSet, tmp_path: Path
) -> Target:
    return DockerTarget(state_dir, docker_engine, docker_images, tmp_path.name[-12:])


@pytest.fixture
def ssh_target(state_dir: Path, ssh_lab: SshLab) -> Target:
    return SshTarget(state_dir, ssh_lab)


@pytest.fixture
def swarm_target(
    state_dir: Path,
    docker_engine: Any,
    swarm_lab: Lab,
    swarm_images: dict[str, str],
    tmp_path: Path,
) -> Target:
    del swarm_images  # pushed once per session: the runs find them in the registry
    return SwarmTarget(state_dir, docker_engine, swarm_lab, tmp_path.name[-12:])


@pytest.fixture(scope="session")
def smoke_results() -> dict[str, RunResult]:
    """Each backend's smoke run of this session, by backend name."""
    return {}


@pytest.fixture
def local_smoke(
    smoke_results: dict[str, RunResult], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], RunResult]:
    """The reference every backend's smoke run must equal, trade for trade: the
    local backend's smoke run of this session, run here if it has not run yet."""

    def reference() -> RunResult:
        if "local" not in smoke_results:
            base = tmp_path_factory.mktemp("local-smoke")
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("TESTBED_STATE_DIR", str(base / "state"))
                result = run(RunOptions(spec=SMOKE, backend="local", out=base / "results"))
            assert result.outcome.status == "ok", result.outcome.message
            smoke_results["local"] = result
        return smoke_results["local"]

    return reference
