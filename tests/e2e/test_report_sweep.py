"""`testbed run` and `testbed replay` on a two-point sweep, `testbed report`
and `testbed replay --plot`, as a user runs them. The lockstep sweep's
totals equal the replay sweep's, point by point (the correctness oracle)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.reports.figures import png_size
from tests.conftest import REPO, require_tool

SMOKE = REPO / "topologies" / "smoke.yaml"
SWEEP = ["--set", "sweep={market.prediction_window: [2, 3]}", "--set", "market.last_interval=52"]
PNG = b"\x89PNG\r\n\x1a\n"


def cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    state = tmp_path_factory.mktemp("state")
    return {**os.environ, "TESTBED_STATE_DIR": str(state)}


@pytest.fixture(scope="module")
def run_sweep(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> dict[str, Any]:
    require_tool("anvil")
    out = tmp_path_factory.mktemp("results")
    done = cli("run", str(SMOKE), *SWEEP, "--out", str(out), "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    doc["stderr"] = done.stderr
    return doc


def check_png(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == PNG, path
    width, height = png_size(path)
    assert 600 <= width <= 2000 and 400 <= height <= 1200, (path, width, height)
    return width, height


def test_run_sweep_runs_every_point_with_progress(run_sweep: dict[str, Any]) -> None:
    points = run_sweep["points"]
    assert [p["market.prediction_window"] for p in points] == [2, 3]
    assert all(p["status"] == "ok" and p["exit_code"] == 0 for p in points)
    assert "[1/2] market.prediction_window=2" in run_sweep["stderr"]
    assert "[2/2] market.prediction_window=3" in run_sweep["stderr"]
    directory = Path(run_sweep["directory"])
    assert directory.name.startswith("sweep-") and directory.parent.name == "smoke"
    for name in ("sweep.json", "sweep.csv", "sweep.md"):
        assert (directory / name).is_file()
    check_png(directory / "fig9-energy-vs-prediction-window.png")
    for point in points:
        bundle = Path(point["bundle"])
        assert bundle.parent.parent == directory
        summary = json.loads((bundle / "summary.json").read_text())
        assert summary["total_energy_traded_kwh"] == point["total_energy_traded_kwh"]
        spec = (bundle / "spec.yaml").read_text()
        assert f"prediction_window: {point['market.prediction_window']}" in spec
        assert "sweep" not in spec  # the point's resolved spec is a single experiment
        for png in (bundle / "figures").glob("*.png"):
            check_png(png)
        assert (bundle / "report.md").is_file()


def test_replay_sweep_gives_the_same_table(
    run_sweep: dict[str, Any], env: dict[str, str], tmp_path: Path
) -> None:
    plot = tmp_path / "fig9.png"
    done = cli("replay", str(SMOKE), *SWEEP, "--out", str(tmp_path), "--plot", str(plot), env=env)
    assert done.returncode == 0, done.stderr
    assert "| point | market.prediction_window |" in done.stdout  # the table, for people
    json_file = next(line for line in done.stdout.splitlines() if line.startswith("json: "))
    replayed = json.loads(Path(json_file.removeprefix("json: ")).read_text())
    assert replayed["mode"] == "replay" and replayed["spec"] == "smoke"
    by_window = {p["market.prediction_window"]: p for p in replayed["points"]}
    for point in run_sweep["points"]:
        window = point["market.prediction_window"]
        assert point["total_energy_traded_kwh"] == by_window[window]["total_energy_traded_kwh"]
    check_png(plot)


def test_report_rewrites_a_bundle_report(run_sweep: dict[str, Any], env: dict[str, str]) -> None:
    bundle = Path(run_sweep["points"][0]["bundle"])
    for path in (bundle / "figures").glob("*.png"):
        path.unlink()
    done = cli("report", str(bundle), "--producer", "701", "--json", env=env)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc["figures"]) == {"fig6", "fig10", "fig11", "grid"}
    for path in doc["figures"].values():
        check_png(Path(path))
    report = Path(doc["markdown"]).read_text()
    total = run_sweep["points"][0]["total_energy_traded_kwh"]
    assert f"| Energy traded | {total:,.1f} kWh |" in report
    missing = cli("report", str(bundle / "nope"), env=env)
    assert missing.returncode == 1 and "not a results bundle" in missing.stderr


def test_replay_plot_writes_figure_6(env: dict[str, str], tmp_path: Path) -> None:
    plot = tmp_path / "plots" / "fig6.png"
    done = cli("replay", str(SMOKE), "--plot", str(plot), "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total_energy_traded_kwh"] > 0
    assert f"figure 6: {plot}" in done.stderr
    check_png(plot)
