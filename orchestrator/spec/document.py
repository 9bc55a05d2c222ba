"""Step 1 of loading a spec: YAML text -> plain data + where every node came from.

PyYAML's composer keeps the position of every node; we walk its node tree
ourselves, so that every later step (schema, cross-reference checks) can point
at `file:line:col` of the key or value it complains about.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a value came from: a position in a spec file, or an override."""

    source: str
    line: int = 0
    column: int = 0

    @property
    def is_file(self) -> bool:
        return self.line > 0

    def sort_key(self) -> tuple[int, int, int, str]:
        return (0 if self.is_file else 1, self.line, self.column, self.source)

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}" if self.is_file else self.source


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem with a spec, rendered as `origin: dotted.path: message`."""

    origin: Origin
    path: KeyPath
    message: str

    def __str__(self) -> str:
        if not self.path and not self.origin.is_file:
            return f"{self.origin}: {self.message}"
        return f"{self.origin}: {dotted(self.path)}: {self.message}"


def sorted_lines(problems: list[Problem]) -> list[str]:
    """One line per problem, in file order, overrides last, no duplicates."""
    ordered = sorted(problems, key=lambda p: (p.origin.sort_key(), dotted(p.path), p.message))
    return list(dict.fromkeys(str(p) for p in ordered))


def dotted(path: KeyPath) -> str:
    """market.prediction_window, solvers[0].engine; the document root is '(root)'."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(root)"


@dataclass(frozen=True, slots=True)
class Document:
    """Plain YAML data with the origin of every value and mapping key.

    `plain` holds the paths of unquoted string scalars: after interpolation
    they are re-typed like YAML would (`seed: ${SEED:-3}` is the integer 3)."""

    source: str
    data: Any
    values: dict[KeyPath, Origin] = field(default_factory=dict)
    keys: dict[KeyPath, Origin] = field(default_factory=dict)
    plain: frozenset[KeyPath] = frozenset()

    def origin(self, path: KeyPath, *, key: bool = False) -> Origin:
        """Origin of the key (`key=True`) or value at `path`, else of its
        closest ancestor that has one."""
        if key and path in self.keys:
            return self.keys[path]
        for end in range(len(path), -1, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return found
        return Origin(self.source, 1, 1)


def yaml_error(exc: yaml.YAMLError) -> str:
    """A PyYAML error in one line, without its multi-line source excerpt."""
    if isinstance(exc, yaml.MarkedYAMLError):
        return ": ".join(part for part in (exc.context, exc.problem) if part)
    return str(exc).replace("\n", " ")


def parse_document(text: str, source: str) -> tuple[Document, list[Problem]]:
    """Parse one YAML document. Syntax errors come back as a single problem
    (and data None); duplicate or non-string keys as one problem each."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        origin = Origin(source, mark.line + 1, mark.column + 1) if mark else Origin(source, 1, 1)
        return Document(source, None), [Problem(origin, (), f"invalid YAML: {yaml_error(exc)}")]
    except yaml.YAMLError as exc:
        problem = Problem(Origin(source, 1, 1), (), f"invalid YAML: {yaml_error(exc)}")
        return Document(source, None), [problem]
    finally:
        loader.dispose()
    walker = _Walker(loader, source)
    data = walker.walk(node, ()) if node is not None else None
    document = Document(source, data, walker.values, walker.keys, frozenset(walker.plain))
    return document, walker.problems


class _Walker:
    def __init__(self, loader: yaml.SafeLoader, source: str) -> None:
        self.loader = loader
        self.source = source
        self.values: dict[KeyPath, Origin] = {}
        self.keys: dict[KeyPath, Origin] = {}
        self.plain: set[KeyPath] = set()
        self.problems: list[Problem] = []

    def _origin(self, node: yaml.Node) -> Origin:
        return Origin(self.source, node.start_mark.line + 1, node.start_mark.column + 1)

    def walk(self, node: yaml.Node, path: KeyPath) -> Any:
        self.values[path] = self._origin(node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(item, (*path, i)) for i, item in enumerate(node.value)]
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            message = f"invalid value: {yaml_error(exc)}"
            self.problems.append(Problem(self._origin(node), path, message))
            return None
        if isinstance(value, str) and isinstance(node, yaml.ScalarNode) and node.style is None:
            self.plain.add(path)
        return value

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any]:
        explicit = [k for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"]
        try:
            self.loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        except yaml.YAMLError as exc:
            message = f"invalid merge: {yaml_error(exc)}"
            self.problems.append(Problem(self._origin(node), path, message))
        result: dict[str, Any] = {}
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = self.loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                message = f"keys must be strings, got {key!r}"
                self.problems.append(Problem(self._origin(key_node), path, message))
                continue
            if key_node in explicit:
                if key in seen:
                    message = "duplicate key (the earlier one would be ignored)"
                    self.problems.append(Problem(self._origin(key_node), (*path, key), message))
                seen.add(key)
            self.keys[(*path, key)] = self._origin(key_node)
            result[key] = self.walk(value_node, (*path, key))
        return result
