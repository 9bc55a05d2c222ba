"""The docker backend's images, built offline on a real engine: content-hash
tags (reused, rebuilt only when an input changes), what is inside them, and a
build that fails with the failing step's output in the error."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from orchestrator.images import ImageBuildError, ImageSet, ensure_images
from orchestrator.images.base import LABEL_IMAGE, LABEL_INPUTS, offline_tag
from orchestrator.images.build import Recipe, _stream_build, planned_tags
from orchestrator.images.inputs import Context
from tests.integration.docker_support import docker_engine, docker_images

__all__ = ["docker_engine", "docker_images"]


def test_images_are_reused_by_their_content_hash(
    docker_engine: Any, docker_images: ImageSet
) -> None:
    said: list[str] = []
    again = ensure_images(docker_engine, say=said.append, policy="offline")
    assert again == docker_images
    assert not [line for line in said if "building" in line], said
    assert docker_images.base == offline_tag()
    assert planned_tags(docker_engine, policy="offline") == docker_images.as_dict()
    for kind in ("agent", "chain", "prometheus"):
        image = docker_engine.images.get(docker_images.of(kind))
        assert image.labels[LABEL_IMAGE] == kind
        assert docker_images.of(kind).endswith(":" + image.labels[LABEL_INPUTS])
    # another base (or any other input) gives another tag
    assert Recipe("chain").tag("sha256:other") != docker_images.chain


def test_context_hash_follows_the_inputs(tmp_path: Path) -> None:
    f = tmp_path / "anvil"
    f.write_bytes(b"v1")
    ctx = Context()
    ctx.add_file("anvil", f)
    first = ctx.digest()
    assert ctx.digest() == first
    f.write_bytes(b"v2")
    assert ctx.digest() != first
    ctx.add_text("Dockerfile", "FROM x\n")
    assert ctx.digest(extra=[("base", "a")]) != ctx.digest(extra=[("base", "b")])


def run_in(client: Any, image: str, script: str) -> str:
    output = client.containers.run(image, ["sh", "-c", script], remove=True)
    return str(output.decode())


def test_the_images_hold_what_the_testbed_runs(docker_engine: Any, docker_images: ImageSet) -> None:
    agent = run_in(
        docker_engine,
        docker_images.agent,
        "python -c 'import agents.prosumer, agents.solver, market.solve, web3, zmq, highspy;"
        ' import importlib.util as u; print("orchestrator", u.find_spec("orchestrator"))\';'
        " for tool in tc iptables glpsol; do command -v $tool; done",
    )
    assert "orchestrator None" in agent  # agents only, never the orchestrator
    assert "/tc" in agent and "/iptables" in agent and "/glpsol" in agent
    chain = run_in(docker_engine, docker_images.chain, "anvil --version")
    assert "1.5.1" in chain
    prometheus = run_in(docker_engine, docker_images.prometheus, "prometheus --version 2>&1")
    assert "prometheus, version" in prometheus


def test_a_failing_build_reports_the_step_output(
    docker_engine: Any, docker_images: ImageSet
) -> None:
    ctx = Context()
    ctx.add_text("Dockerfile", "ARG BASE\nFROM ${BASE}\nRUN echo the-step-output && exit 3\n")
    archive = io.BytesIO()
    ctx.tar(archive)
    archive.seek(0)
    with pytest.raises(ImageBuildError) as failure:
        _stream_build(
            docker_engine,
            "broken",
            lambda _line: None,
            fileobj=archive,
            custom_context=True,
            buildargs={"BASE": docker_images.base},
            decode=True,
            rm=True,
            forcerm=True,
            network_mode="none",
        )
    message = str(failure.value)
    assert message.startswith("image broken failed to build:")
    assert "returned a non-zero code: 3" in message
    assert "the-step-output" in message
