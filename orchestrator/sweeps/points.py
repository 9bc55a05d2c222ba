"""A sweep spec expanded into its points: the cartesian product of the
`sweep:` values, in key order (the last key varies fastest).

Each point is the same spec file loaded with extra `--set` overrides: the
point's values, `sweep=null` (a point is a single experiment) and a name
(`<spec name>-<nn>-<key>-<value>...`, so every point has its own bundle
directory). Every point is loaded, and so fully validated, before anything
runs: a value that breaks a cross-key rule (e.g. t_clear >= L) is reported
with the point it belongs to.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import SpecError
from orchestrator.spec import Spec, load_spec

if TYPE_CHECKING:
    from orchestrator.scenario import Scenario

PATH_KEYS = ("microgrid.dataset.path",)
"""Sweep values that are file paths: relative ones are relative to the spec
file (as in the file), not to the working directory (as for --set)."""
MAX_NAME = 100


@dataclass(frozen=True, slots=True)
class SweepPoint:
    index: int  # 1-based
    values: tuple[tuple[str, Any], ...]  # (dotted key, value), in sweep key order
    name: str

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={format_value(k, v)}" for k, v in self.values)

    def overrides(self) -> tuple[str, ...]:
        sets = tuple(f"{key}={json.dumps(value)}" for key, value in self.values)
        return (*sets, "sweep=null", f"name={self.name}")

    def value(self, key: str) -> Any:
        return dict(self.values)[key]


def format_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if key in PATH_KEYS and isinstance(value, str):
        return Path(value).name
    return str(value)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def point_name(base: str, index: int, values: Iterable[tuple[str, Any]]) -> str:
    parts = [f"{k.rsplit('.', 1)[-1]}-{_slug(format_value(k, v))}" for k, v in values]
    name = f"{base}-{index:02d}-" + "_".join(parts)
    return name[:MAX_NAME].rstrip("-_.")


def resolve_value(key: str, value: Any, spec_dir: Path) -> Any:
    if key in PATH_KEYS and isinstance(value, str):
        path = Path(os.path.expanduser(value))
        return os.path.normpath(path if path.is_absolute() else spec_dir.absolute() / path)
    return value


def expand(spec: Spec) -> list[SweepPoint]:
    """The points of `spec.sweep` (none if it is not a sweep)."""
    sweep: Mapping[str, tuple[Any, ...]] = spec.sweep or {}
    if not sweep:
        return []
    spec_dir = Path(spec.source).parent if spec.source else Path.cwd()
    keys = list(sweep)
    points = []
    for i, combo in enumerate(itertools.product(*(sweep[k] for k in keys)), start=1):
        values = tuple((k, resolve_value(k, v, spec_dir)) for k, v in zip(keys, combo, strict=True))
        points.append(SweepPoint(i, values, point_name(spec.name, i, values)))
    return points


def load_points(
    spec_file: Path, overrides: Iterable[str], env: Mapping[str, str] | None, base: Spec
) -> list[tuple[SweepPoint, Spec]]:
    """Every point of `base` (the sweep spec) with its resolved spec; SpecError
    listing every point that does not validate."""
    loaded: list[tuple[SweepPoint, Spec]] = []
    problems: list[str] = []
    for point in expand(base):
        try:
            spec = load_spec(spec_file, [*overrides, *point.overrides()], env=env)
        except SpecError as exc:
            problems += [f"sweep point {point.index} ({point.label}): {p}" for p in exc.problems]
            continue
        loaded.append((point, spec))
    if problems:
        raise SpecError(problems)
    return loaded


def point_scenarios(loaded: Iterable[tuple[SweepPoint, Spec]]) -> list[tuple[str, Scenario]]:
    """("sweep point N (label)", its scenario) for each point: what a point's run
    would trade and cost (orchestrator.cost.check_points_fit)."""
    from orchestrator.scenario import build_scenario  # reads the dataset: only when asked

    return [(f"sweep point {p.index} ({p.label})", build_scenario(spec)) for p, spec in loaded]
