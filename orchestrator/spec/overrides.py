"""Step 3: `--set a.b=c` overrides, applied after interpolation.

The key is a dotted path; list items are addressed by index, as `solvers.0.engine`
or `solvers[0].engine` (index = length appends). Missing mappings on the way are
created. The value is YAML-typed: `--set market.prediction_window=5` is an
integer, `--set 'solvers=[{name: s1, engine: glpk}]'` a list. Problems found
later in an overridden value point at the override, not at the file.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from typing import Any

import yaml

from orchestrator.spec.document import Document, KeyPath, Origin, Problem, dotted, yaml_error

DefaultFor = Callable[[KeyPath], Any]
"""The default of a missing key, to start from when an override reaches into it
(`--set solvers[0].engine=glpk` edits the default solver list); None if none."""

_PART = re.compile(r"(?P<key>[^.\[\]]+)|\[(?P<index>[0-9]+)\]")


def parse_key(key: str) -> KeyPath | None:
    """`solvers[0].engine` or `solvers.0.engine` -> ('solvers', 0, 'engine')."""
    path: list[str | int] = []
    for chunk in key.split("."):
        position = 0
        parts: list[str | int] = []
        for match in _PART.finditer(chunk):
            if match.start() != position:
                return None
            position = match.end()
            if match["index"] is not None:
                parts.append(int(match["index"]))
            else:
                name = match["key"].strip()
                parts.append(int(name) if name.isdigit() else name)
        if not parts or position != len(chunk):
            return None
        path += parts
    return tuple(path)


def apply_overrides(
    document: Document, overrides: Iterable[str], default_for: DefaultFor = lambda path: None
) -> tuple[Document, list[Problem]]:
    """A copy of `document` with every `KEY=VALUE` override applied in order."""
    data = copy.deepcopy(document.data)
    values = dict(document.values)
    keys = dict(document.keys)
    plain = set(document.plain)
    problems: list[Problem] = []
    for text in overrides:
        origin = Origin(f"--set {text}")
        key, sep, raw = text.partition("=")
        path = parse_key(key.strip()) if sep else None
        if not path:
            problems.append(Problem(origin, (), "expected KEY=VALUE, e.g. market.clock=lockstep"))
            continue
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            problems.append(Problem(origin, path, f"value is not valid YAML: {yaml_error(exc)}"))
            continue
        if not isinstance(data, dict):
            data = {}
        error = _set(data, path, value, values, origin, default_for)
        if error is not None:
            problems.append(Problem(origin, path, error))
            continue
        for table in (values, keys):
            for stale in [p for p in table if p[: len(path)] == path]:
                del table[stale]
        plain = {p for p in plain if p[: len(path)] != path}
        values[path] = origin
        keys[path] = origin
    return Document(document.source, data, values, keys, frozenset(plain)), problems


def _set(
    data: dict[str, Any],
    path: KeyPath,
    value: Any,
    values: dict[KeyPath, Origin],
    origin: Origin,
    default_for: DefaultFor,
) -> str | None:
    """Set `value` at `path` inside `data`; the problem if impossible."""
    container: Any = data
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        here = path[: depth + 1]
        if isinstance(container, dict) and isinstance(part, str):
            if last:
                container[part] = value
            elif part not in container or container[part] is None:
                start = copy.deepcopy(default_for(here))
                container[part] = start if isinstance(start, dict | list) else {}
                values.setdefault(here, origin)
            elif not isinstance(container[part], dict | list):
                return f"cannot set a key inside {dotted(here)}: it is not a mapping"
        elif isinstance(container, list) and isinstance(part, int):
            if part > len(container):
                size = len(container)
                return f"index {part} is out of range: {dotted(path[:depth])} has {size} items"
            if part == len(container):
                container.append({})
                values.setdefault(here, origin)
            if last:
                container[part] = value
            elif not isinstance(container[part], dict | list):
                return f"cannot set a key inside {dotted(here)}: it is not a mapping"
        else:
            wanted = "a list index" if isinstance(container, list) else "a key"
            return f"cannot set {part!r} here: {dotted(path[:depth])} needs {wanted}"
        if not last:
            container = container[part]
    return None
