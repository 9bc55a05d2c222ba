"""The spec pipeline: parse (with positions) -> interpolate -> overrides ->
schema -> defaults -> cross-reference checks -> frozen Spec. Every step is a
small pure function; problems are collected and reported together."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError
from orchestrator.spec import datasetchecks
from orchestrator.spec.checks import reference_problems
from orchestrator.spec.document import Document, Origin, Problem, parse_document, sorted_lines
from orchestrator.spec.interpolate import interpolate
from orchestrator.spec.model import SYNTHETIC_ONLY, Spec, build
from orchestrator.spec.overrides import apply_overrides
from orchestrator.spec.schema import (
    NAME_HINT,
    NAME_PATTERN,
    apply_defaults,
    json_schema,
    schema_default,
)
from orchestrator.spec.validate import schema_problems

SCHEMA = json_schema()


def load_spec(
    path: str | Path,
    overrides: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> Spec:
    """Load, check and resolve the spec file at `path`.

    `overrides` are `KEY=VALUE` strings (`--set`); `env` is the mapping for
    `${VAR}` interpolation (default: os.environ). Relative dataset paths are
    resolved against the spec file's directory (against the working directory
    when they come from an override). Raises SpecError listing every problem."""
    spec_path = Path(path)
    try:
        text = spec_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError([f"{spec_path}: cannot read spec: {reason}"]) from exc
    return parse_spec(
        text,
        source=str(spec_path),
        overrides=overrides,
        env=env,
        base_dir=spec_path.parent,
        default_name=spec_path.stem,
    )


def parse_spec(
    text: str,
    *,
    source: str = "<spec>",
    overrides: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    base_dir: str | Path | None = None,
    default_name: str | None = None,
) -> Spec:
    """`load_spec` for spec text that is not (or not only) in a file."""
    document, problems = parse_document(text, source)
    if document.data is None and problems:
        raise SpecError(sorted_lines(problems))
    document, interpolation_problems = interpolate(document, os.environ if env is None else env)
    document, override_problems = apply_overrides(
        document, overrides, lambda path: schema_default(SCHEMA, path)
    )
    problems += interpolation_problems + override_problems
    broken = {p.path for p in interpolation_problems}
    problems += [p for p in schema_problems(document, SCHEMA) if p.path not in broken]
    if problems:
        raise SpecError(sorted_lines(problems))
    full = apply_defaults(document.data, SCHEMA)
    problems += reference_problems(document, full)
    problems += _resolve_name(document, full, default_name)
    if problems:
        raise SpecError(sorted_lines(problems))
    _resolve_dataset(document, full, Path(base_dir) if base_dir is not None else Path.cwd())
    return dataclasses.replace(
        build(Spec, full),
        source=source,
        warnings=tuple(datasetchecks.scale_warnings(document, full)),
        positions=datasetchecks.positions(document, full),
    )


def _resolve_name(document: Document, full: dict[str, Any], default: str | None) -> list[Problem]:
    if "name" in full:
        return []
    name = default or "spec"
    full["name"] = name
    if re.fullmatch(NAME_PATTERN, name):
        return []
    message = (
        f"the file name gives {name!r}, not a valid experiment name ({NAME_HINT}); "
        "set name: explicitly"
    )
    return [Problem(Origin(document.source, 1, 1), ("name",), message)]


def _resolve_dataset(document: Document, full: dict[str, Any], base_dir: Path) -> None:
    """Synthetic: the seed defaults to the spec's. Transax: drop the
    synthetic-only defaults; make the path absolute (relative to the spec
    file, or to the working directory if it came from --set)."""
    dataset = full["microgrid"]["dataset"]
    if dataset["kind"] == "synthetic":
        if dataset.get("seed") is None:
            dataset["seed"] = full["seed"]
        return
    for key in SYNTHETIC_ONLY:
        dataset.pop(key, None)
    path_key = ("microgrid", "dataset", "path")
    from_file = document.origin(path_key).is_file
    base = base_dir if from_file else Path.cwd()
    path = Path(os.path.expanduser(dataset["path"]))
    dataset["path"] = os.path.normpath(path if path.is_absolute() else base.absolute() / path)
