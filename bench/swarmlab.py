"""The swarm lab's costs on this machine; prints one JSON object.

- node image: seconds to build it (cold: removed first; `--keep-node-image` skips that);
- lab up (manager + `--workers` nodes joined, Ready and labelled; registry started):
  cold (right after the node image build) and warm (`--repeat` times), and down;
- registry: pushing the agent image to an empty registry (a fresh storage folder)
  and again when it is there; pulling it on one node and on every node at once.

    flock /tmp/swarm-dev.lock .venv/bin/python bench/swarmlab.py
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker.errors

from orchestrator.backends.docker.engine import connect
from orchestrator.images import ensure_images
from orchestrator.swarm import Lab, Registry
from orchestrator.swarm.nodeimage import node_tag


def timed(action: Any) -> tuple[float, Any]:
    started = time.monotonic()
    value = action()
    return round(time.monotonic() - started, 2), value


def lab_cycle(client: Any, state: Path, workers: int, registry: Registry) -> dict[str, Any]:
    seconds, lab = timed(lambda: Lab.up(client, state, workers=workers, registry=registry))
    down, problems = timed(lambda: lab.down(client, strict=False))
    assert not problems, problems
    return {"up_seconds": seconds, "down_seconds": down, "timings": lab.timings}


def registry_figures(client: Any, lab: Lab, agent: str, storage: Path) -> dict[str, Any]:
    scratch = Registry.start(client, Path(tempfile.mkdtemp()), port=5057, storage=storage)
    try:
        cold, ref = timed(lambda: scratch.push(client, agent))
        warm, _ = timed(lambda: scratch.push(client, agent))
        first = lab.workers[0]
        one, out = timed(lambda: lab.node_docker(client, first, "pull", ref))
        assert out[0] == 0, out
        for worker in lab.workers:
            lab.node_docker(client, worker, "rmi", ref)
        with ThreadPoolExecutor(len(lab.workers)) as pool:
            every, outs = timed(
                lambda: list(
                    pool.map(lambda w: lab.node_docker(client, w, "pull", ref), lab.workers)
                )
            )
        assert all(code == 0 for code, _ in outs), outs
    finally:
        scratch.stop()
    size = client.images.get(agent).attrs["Size"]
    return {
        "image": agent,
        "image_mb": round(size / 2**20),
        "push_empty_registry_seconds": cold,
        "push_again_seconds": warm,
        "pull_one_node_seconds": one,
        "pull_every_node_at_once_seconds": every,
        "nodes": len(lab.workers),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="warm lab up/down cycles")
    parser.add_argument("--keep-node-image", action="store_true")
    args = parser.parse_args()
    client = connect(timeout=900)
    state = Path(tempfile.mkdtemp(prefix="swarmlab-bench-"))
    result: dict[str, Any] = {"workers": args.workers}
    tag, _base = node_tag(client)
    if not args.keep_node_image and client.images.list(name=tag):
        try:
            client.images.remove(tag)
        except docker.errors.APIError as exc:  # a lab of someone else's uses it
            result["cold_note"] = f"node image kept: {exc.explanation}"
    registry = Registry.start(client, state / "registry", port=5058)
    try:
        result["cold"] = lab_cycle(client, state, args.workers, registry)
        warm = [lab_cycle(client, state, args.workers, registry) for _ in range(args.repeat)]
        ups = [w["up_seconds"] for w in warm]
        result["warm"] = {
            "up_seconds": ups,
            "up_median_seconds": statistics.median(ups),
            "down_seconds": [w["down_seconds"] for w in warm],
        }
        agent = ensure_images(client, kinds=("agent",), policy="offline").agent
        lab = Lab.up(client, state, workers=args.workers, registry=registry)
        storage = Path(tempfile.mkdtemp(prefix="swarmlab-registry-"))
        try:
            result["registry"] = registry_figures(client, lab, agent, storage)
        finally:
            lab.down(client, strict=False)
            shutil.rmtree(storage, ignore_errors=True)
    finally:
        registry.stop()
        shutil.rmtree(state, ignore_errors=True)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
