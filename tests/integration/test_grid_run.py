"""The grid step of a real run (local backend, anvil, agents): the smoke run's bundle
carries the `grid` block in summary.json, grid/grid.csv and the report's grid figure,
and the block is the one `testbed replay` computes for the same spec."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orchestrator.grid.bundle import bundle_grid
from orchestrator.grid.flow import CSV_COLUMNS, comparable, read_csv
from orchestrator.replay import run_replay
from orchestrator.reports.figures import png_size
from orchestrator.run import RunOptions, run
from orchestrator.scenario import build_scenario
from orchestrator.spec import load_spec
from tests.conftest import REPO, require_tool

SMOKE = REPO / "topologies" / "smoke.yaml"


@pytest.fixture(autouse=True)
def _anvil(state_dir: Path) -> None:
    require_tool("anvil")


def test_smoke_run_bundle_has_the_grid_block_csv_and_figure_and_agrees_with_replay(
    tmp_path: Path,
) -> None:
    result = run(RunOptions(spec=SMOKE, backend="local", out=tmp_path / "results"))
    assert result.outcome.status == "ok", result.outcome.message
    bundle = result.bundle
    summary = json.loads((bundle / "summary.json").read_text())
    grid = summary["grid"]
    assert grid["enabled"] and "error" not in grid, grid
    assert grid["csv"] == "grid/grid.csv"
    rows = read_csv(bundle / "grid" / "grid.csv")
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert len(rows) == 2 * 8
    assert {r["case"] for r in rows} == {"market", "no_market"}
    assert all(r["converged"] == "True" for r in rows)
    # replay and run agree on the block (timings and the bundle's CSV path aside)
    expected = run_replay(build_scenario(load_spec(SMOKE, env=os.environ)), "highs")["grid"]
    assert comparable(grid) == comparable(expected)
    assert grid["market"] != grid["no_market"]  # the batteries deliver when traded
    # the report's figure and section
    figure = bundle / "figures" / "grid-voltage-loading.png"
    width, height = png_size(figure)
    assert width > 600 and height > 400
    report = (bundle / "report.md").read_text()
    assert "## Grid" in report and "grid-voltage-loading.png" in report
    # the step reads the bundle alone: again, the same block
    assert comparable(bundle_grid(bundle)) == comparable(grid)
