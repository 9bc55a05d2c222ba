"""Checks of the `sweep:` section: each key a spec path that can be swept
(with a "did you mean" for misspelt parts), each value valid at that path
against the schema. Checks across keys (e.g. t_clear < prediction_window)
need the whole point and run when the sweep is expanded (orchestrator/sweep.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator

from orchestrator.spec.document import Document, KeyPath, Problem, dotted
from orchestrator.spec.overrides import parse_key
from orchestrator.spec.schema import Schema, json_schema
from orchestrator.spec.validate import _message, did_you_mean

NOT_SWEEPABLE = ("name", "sweep")
"""`name`: every point is named after the experiment and its values."""

_SCHEMA = json_schema()


def schema_at(path: KeyPath, schema: Schema = _SCHEMA) -> tuple[Schema | None, str]:
    """The sub-schema at `path`, or (None, why not)."""
    node = schema
    for depth, part in enumerate(path):
        here = dotted(path[: depth + 1])
        if isinstance(part, int):
            items = node.get("items")
            if not isinstance(items, dict):
                return None, f"{dotted(path[:depth]) or 'the spec'} is not a list"
            node = items
            continue
        properties = node.get("properties")
        if not isinstance(properties, dict):
            return None, f"{dotted(path[:depth])} has no keys"
        if part not in properties:
            suggestion = did_you_mean(part, list(properties))
            hint = f"; did you mean {suggestion!r}?" if suggestion else ""
            return None, f"unknown spec key {here}{hint}"
        node = properties[part]
    return node, ""


def sweep_problems(document: Document, sweep: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    parsed: dict[str, KeyPath] = {}
    for key, values in sweep.items():
        at: KeyPath = ("sweep", key)
        path = parse_key(key)
        if not path:
            message = "not a dotted spec path (e.g. market.prediction_window)"
            problems.append(Problem(document.origin(at, key=True), at, message))
            continue
        if path[0] in NOT_SWEEPABLE:
            message = f"{path[0]} cannot be swept"
            problems.append(Problem(document.origin(at, key=True), at, message))
            continue
        sub, why = schema_at(path)
        if sub is None:
            problems.append(Problem(document.origin(at, key=True), at, why))
            continue
        parsed[key] = path
        validator = Draft202012Validator(sub)
        for i, value in enumerate(values):
            for error in validator.iter_errors(value):
                where: KeyPath = (*at, i, *error.absolute_path)
                problems.append(Problem(document.origin(where), where, _message(error)))
    for key, path in parsed.items():
        for other, other_path in parsed.items():
            if other != key and other_path[: len(path)] == path:
                message = f"overlaps sweep key {other!r} (one contains the other)"
                problems.append(
                    Problem(document.origin(("sweep", key), key=True), ("sweep", key), message)
                )
    return problems
