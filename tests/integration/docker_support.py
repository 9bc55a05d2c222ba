"""Fixtures and helpers of the docker backend's tests (imported by test_docker_*).

`docker_engine`: a reachable Docker Engine (DOCKER_HOST honoured), else the
test is skipped locally and fails under CI=true. `docker_images`: the images,
built offline once per session (the debootstrap base persists in the engine;
every image is reused by its content-hash tag).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.docker.engine import LABEL_RUN, DockerUnavailable, connect
from orchestrator.images import ImageSet, ensure_images
from tests.conftest import require

BUILD_LOG: list[str] = []
BUILD_LOCK = Path(tempfile.gettempdir()) / "testbed-tests-images.lock"


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    try:
        client = connect(timeout=300)
    except DockerUnavailable as exc:
        require(False, f"a Docker Engine ({exc})")
        raise  # unreachable: require() skips or fails
    yield client
    client.close()


@pytest.fixture(scope="session")
def docker_images(docker_engine: Any) -> Iterator[ImageSet]:
    before = os.environ.get("TESTBED_BASE_IMAGE")
    os.environ["TESTBED_BASE_IMAGE"] = "offline"  # the runs resolve the same base
    try:
        # one build at a time: under pytest-xdist the other worker waits, then finds
        # the images up to date instead of building the same ones beside it
        with open(BUILD_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            images = ensure_images(docker_engine, say=BUILD_LOG.append, policy="offline")
        yield images
    finally:
        if before is None:
            os.environ.pop("TESTBED_BASE_IMAGE", None)
        else:
            os.environ["TESTBED_BASE_IMAGE"] = before


def labelled(client: Any, run_id: str) -> list[str]:
    """Every container, network and volume still labelled with `run_id`."""
    selector = {"label": f"{LABEL_RUN}={run_id}"}
    found = [
        f"container {c.name}"
        for c in client.containers.list(all=True, filters=selector, ignore_removed=True)
    ]
    found += [f"network {n.name}" for n in client.networks.list(filters=selector)]
    found += [f"volume {v.name}" for v in client.volumes.list(filters=selector)]
    return found


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.1)


def bundle_of(out: Path) -> Path | None:
    bundles = sorted(out.glob("*/*/manifest.json"))
    return bundles[-1].parent if bundles else None
