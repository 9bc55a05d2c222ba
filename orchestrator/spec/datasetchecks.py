"""`microgrid.dataset` against what this machine can run, and where its
references are written.

Size: a synthetic `scale` is bounded before anything is generated (validate
stays fast): above MAX_SCALE it is an error, above LARGE_SCALE a warning that
says what the run will cost. References (the transax directory, the selected
prosumers and feeders) are checked when the dataset is opened
(orchestrator.datasets.references); `positions` keeps their file:line:col so
those errors point at the spec line that names the culprit.
"""

from __future__ import annotations

from typing import Any

from orchestrator.spec.document import Document, KeyPath, Problem, dotted

BLOCK_PROSUMERS = 102  # prosumers of one 11-feeder synthetic block
MAX_SCALE = 100
"""10,200 prosumers: more agents than one testbed machine runs (and the dataset
alone takes seconds to generate and hundreds of MB); above this, an error."""
LARGE_SCALE = 10
"""1,020 prosumers, the 10x scale of the scale benchmarks: above this, a warning."""
BASE = ("microgrid", "dataset")


def scale_problems(
    document: Document, given: dict[str, Any], full: dict[str, Any]
) -> list[Problem]:
    dataset = full["microgrid"]["dataset"]
    scale = dataset.get("scale", 1)
    if dataset["kind"] != "synthetic" or scale <= MAX_SCALE:
        return []
    message = (
        f"scale {scale} means {scale * BLOCK_PROSUMERS:,} prosumers; this testbed runs at most "
        f"scale {MAX_SCALE} ({MAX_SCALE * BLOCK_PROSUMERS:,} prosumers) on one machine "
        f"(each scale step adds the {BLOCK_PROSUMERS}-prosumer, 11-feeder block)"
    )
    return [Problem(document.origin((*BASE, "scale")), (*BASE, "scale"), message)]


def scale_warnings(document: Document, full: dict[str, Any]) -> list[str]:
    dataset = full["microgrid"]["dataset"]
    scale = dataset.get("scale", 1)
    if dataset["kind"] != "synthetic" or scale <= LARGE_SCALE:
        return []
    prosumers = scale * BLOCK_PROSUMERS
    selected = dataset.get("prosumers")
    run = len(selected) if selected is not None else prosumers
    message = (
        f"scale {scale} is large: {prosumers:,} prosumers generated, {run:,} of them run; "
        f"above scale {LARGE_SCALE} (the 10x benchmark size) expect a long start-up"
    )
    return [str(Problem(document.origin((*BASE, "scale")), (*BASE, "scale"), message))]


def positions(document: Document, full: dict[str, Any]) -> dict[str, str]:
    """Where the dataset's references are written (dotted path -> file:line:col),
    for the errors that only loading the dataset finds, and the keys a run's cost
    is blamed on (orchestrator.cost), and the node names of node faults (the swarm
    backend checks them against its nodes) (`Spec.where`)."""
    dataset = full["microgrid"]["dataset"]
    paths: list[KeyPath] = [BASE, (*BASE, "path"), (*BASE, "scale")]
    paths += [("market", "last_interval"), ("deployment", "hosts")]
    paths += [("deployment", "prosumers_per_host")]
    for key in ("feeders", "prosumers"):
        paths += [(*BASE, key, i) for i in range(len(dataset.get(key) or ()))]
    overrides = full["microgrid"]["feeders"].get("overrides") or ()
    paths += [("microgrid", "feeders", "overrides", i, "id") for i in range(len(overrides))]
    faults = full.get("faults") or ()  # node names: checked against the swarm's nodes
    paths += [("faults", i, "node") for i, f in enumerate(faults) if "node" in f]
    return {dotted(path): str(document.origin(path)) for path in paths}
