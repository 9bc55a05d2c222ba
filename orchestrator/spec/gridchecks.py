"""Cross-key checks of `microgrid.grid` (orchestrator.spec.checks runs them)."""

from __future__ import annotations

from typing import Any

from orchestrator.spec.document import Document, KeyPath, Problem


def grid_problems(document: Document, given: dict[str, Any], full: dict[str, Any]) -> list[Problem]:
    grid = full.get("microgrid", {}).get("grid", {})
    problems = []
    path: KeyPath
    if grid.get("vm_min_pu", 0) >= grid.get("vm_max_pu", 2):
        path = ("microgrid", "grid", "vm_min_pu")
        message = f"must be < microgrid.grid.vm_max_pu ({grid.get('vm_max_pu')})"
        problems.append(Problem(document.origin(path), path, message))
    seen: dict[int, int] = {}
    for index, feeder in enumerate(grid.get("feeders", [])):
        if feeder["id"] in seen:
            path = ("microgrid", "grid", "feeders", index, "id")
            message = (
                f"feeder {feeder['id']} already in microgrid.grid.feeders[{seen[feeder['id']]}]"
            )
            problems.append(Problem(document.origin(path), path, message))
        seen.setdefault(feeder["id"], index)
    return problems
