"""Run a sweep: every point on the testbed (`testbed run`, a campaign of runs:
orchestrator.campaign) or through the chain-free replay (`testbed replay`), one
after the other, with a progress line per point; the sweep table (and
Figure 9) is rewritten after every point, so an interrupted sweep keeps what it
finished.

Layout: <out>/<spec name>/sweep-<id>/ holds sweep.{json,csv,md}, the Figure 9
PNG and, for `run`, one bundle per point: <point name>/<run id>/.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from orchestrator.results.bundle import new_run_id
from orchestrator.spec import Spec, load_spec
from orchestrator.sweeps.bound import Bounds
from orchestrator.sweeps.points import SweepPoint, load_points, point_scenarios
from orchestrator.sweeps.table import SweepTable

if TYPE_CHECKING:
    from orchestrator.run import RunResult


@dataclass(frozen=True)
class SweepOptions:
    spec: Path
    overrides: Sequence[str] = ()
    out: Path = Path("results")
    progress: TextIO | None = None
    env: Mapping[str, str] | None = None
    backend: str | None = None
    quiet_points: bool = False  # no per-interval lines of each run
    argv: Sequence[str] = ()
    force: bool = False  # run even points `testbed validate` finds too large


@dataclass
class SweepResult:
    table: SweepTable
    directory: Path
    files: dict[str, Path]
    exit_code: int


def load_sweep(options: SweepOptions) -> tuple[Spec, list[tuple[SweepPoint, Spec]]]:
    overrides = _overrides(options)
    env = options.env if options.env is not None else os.environ
    base = load_spec(options.spec, overrides, env=env)
    return base, load_points(options.spec, overrides, env, base)


def is_sweep(spec_file: Path, overrides: Sequence[str], env: Mapping[str, str] | None) -> bool:
    spec = load_spec(spec_file, overrides, env=env if env is not None else os.environ)
    return bool(spec.sweep)


def _overrides(options: SweepOptions) -> list[str]:
    extra = [f"deployment.backend={options.backend}"] if options.backend else []
    return [*options.overrides, *extra]


def _say(options: SweepOptions, message: str) -> None:
    if options.progress is not None:
        print(message, file=options.progress, flush=True)


def _directory(options: SweepOptions, base: Spec, kind: str) -> tuple[str, Path]:
    sweep_id = new_run_id()
    return sweep_id, options.out / base.name / f"{kind}-{sweep_id}"


def run_sweep(options: SweepOptions) -> SweepResult:
    """Every point on the testbed, one bundle each (a campaign of runs)."""
    # the testbed's imports (web3, paramiko, ...) only when running, not for replay sweeps
    from orchestrator.campaign import interrupted, run_campaign
    from orchestrator.run import RunOptions

    base, points = load_sweep(options)
    if not options.force:  # every point's cost, before the first one starts
        from orchestrator.cost import check_points_fit

        check_points_fit(point_scenarios(points))
    sweep_id, directory = _directory(options, base, "sweep")
    table = SweepTable(base.name, sweep_id, "run", list(base.sweep or {}))
    files: dict[str, Path] = {}
    exit_code = 0
    bounds = Bounds()
    runs = [
        RunOptions(
            spec=options.spec,
            overrides=(*_overrides(options), *point.overrides()),
            out=directory,
            progress=None if options.quiet_points else options.progress,
            env=options.env,
            argv=options.argv,
        )
        for point, _spec in points
    ]

    def before(index: int, _run: RunOptions) -> None:
        point = points[index][0]
        _say(options, f"[{point.index}/{len(points)}] {point.label}")

    def after(index: int, result: RunResult) -> None:
        nonlocal files, exit_code
        point = points[index][0]
        row = table.add(point, _run_row(result, bounds.kwh(points[index][1])))
        _say(options, f"[{point.index}/{len(points)}] {_row_line(row)}")
        files = table.write(directory)
        if result.exit_code != 0:
            exit_code = result.exit_code
            if interrupted(result):
                _say(options, "sweep interrupted: the table holds the points finished so far")

    run_campaign(runs, before=before, after=after)
    files = table.write(directory)
    return SweepResult(table, directory, files, exit_code)


def _run_row(result: RunResult, upper_bound_kwh: float) -> dict[str, Any]:
    s = result.summary
    return {
        "total_energy_traded_kwh": s.get("total_energy_traded_kwh"),
        "offers": s.get("offers"),
        "offers_traded": s.get("offers_traded"),
        "offer_to_trade_p50_s": (s.get("offer_to_trade_seconds") or {}).get("p50"),
        "offer_to_trade_p99_s": (s.get("offer_to_trade_seconds") or {}).get("p99"),
        "status": result.outcome.status,
        "exit_code": result.exit_code,
        "wall_seconds": s.get("wall_seconds"),
        "upper_bound_kwh": upper_bound_kwh,
        "bundle": str(result.bundle),
    }


def replay_sweep(options: SweepOptions, engine: str | None = None) -> SweepResult:
    """Every point through `testbed replay`'s chain-free market."""
    from orchestrator.replay import run_replay
    from orchestrator.scenario import build_scenario

    base, points = load_sweep(options)
    sweep_id, directory = _directory(options, base, "replay-sweep")
    table = SweepTable(base.name, sweep_id, "replay", list(base.sweep or {}))
    bounds = Bounds()
    for point, spec in points:
        _say(options, f"[{point.index}/{len(points)}] {point.label}")
        started = time.monotonic()
        summary = run_replay(build_scenario(spec), engine or spec.solvers[0].engine)
        row = table.add(point, {
            "total_energy_traded_kwh": summary["total_energy_traded_kwh"],
            "trades": summary["trades"],
            "offers": summary["dataset"]["offers"],
            "engine": summary["engine"],
            "upper_bound_kwh": bounds.kwh(spec),
            "solve_seconds": round(summary["solve_seconds_total"], 3),
            "wall_seconds": round(time.monotonic() - started, 3),
        })  # fmt: skip
        _say(options, f"[{point.index}/{len(points)}] {_row_line(row)}")
    files = table.write(directory)
    return SweepResult(table, directory, files, 0)


def _row_line(row: Mapping[str, Any]) -> str:
    total = row.get("total_energy_traded_kwh")
    kwh = f"{total:.1f} kWh traded" if total is not None else "no total"
    status = f", {row['status']}" if "status" in row else ""
    return f"{kwh}{status} ({row.get('wall_seconds') or 0:.1f} s)"


def print_result(result: SweepResult, stream: TextIO = sys.stdout) -> None:
    print(result.table.to_markdown(), file=stream)
    for kind, path in result.files.items():
        print(f"{kind}: {path}", file=stream)
