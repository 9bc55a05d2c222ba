"""A smoke run with a real Prometheus: scrape targets rendered from the plan,
every agent scraped, the TSDB snapshot in the bundle, restored by `testbed
metrics`, and every panel query of the Grafana dashboard answered (with its
variables resolved) against that real server. One run serves every test."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from orchestrator.observability import dashboard as dash
from orchestrator.observability.explore import (
    check_dashboard,
    run_window,
    serve_snapshot,
    variable_values,
)
from orchestrator.reports.figures import png_size
from orchestrator.run import RunOptions, RunResult, run
from tests.conftest import REPO, require_tool

SMOKE = REPO / "topologies" / "smoke.yaml"
# The spec's 1 s, shortened to scrape 20 times over the run's expected length
# (8 lockstep intervals x 2 s solver period): the interval users get.
SCRAPE = 0.8


# Every test runs over two runs: on the machine as it is, and with both cores
# busy (stress-ng --cpu 2 for the whole run): metrics must be complete on a
# loaded machine too (a CI machine shares its cores).
@pytest.fixture(scope="module", params=["as-is", "stress-ng"])
def smoke(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunResult, Path]]:
    require_tool("anvil")
    require_tool("prometheus")
    root = tmp_path_factory.mktemp("observability")
    state = root / "state"
    old = os.environ.get("TESTBED_STATE_DIR")
    os.environ["TESTBED_STATE_DIR"] = str(state)
    stress = None
    if request.param == "stress-ng":
        argv = [require_tool("stress-ng"), "--cpu", "2", "--timeout", "900s", "--quiet"]
        stress = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    try:
        result = run(RunOptions(spec=SMOKE, out=root / "results"))
    finally:
        if stress is not None:  # its workers end with it (by our own pid)
            stress.terminate()
            stress.wait(timeout=60)
        if old is None:
            os.environ.pop("TESTBED_STATE_DIR", None)
        else:
            os.environ["TESTBED_STATE_DIR"] = old
    assert result.exit_code == 0, result.outcome
    yield result, state


def info_of(bundle: Path) -> dict[str, Any]:
    return dict(json.loads((bundle / "metrics" / "prometheus.json").read_text()))


def test_prometheus_scraped_every_agent_and_left_a_snapshot(
    smoke: tuple[RunResult, Path],
) -> None:
    result, state = smoke
    bundle = result.bundle
    info = info_of(bundle)
    config = yaml.safe_load((bundle / "metrics" / "prometheus.yml").read_text())
    manifest = json.loads((bundle / "manifest.json").read_text())
    agents = set(manifest["plan"]["agents"])
    static = config["scrape_configs"][0]["static_configs"]
    labelled = {c["labels"]["agent"]: c["labels"] for c in static}
    assert set(labelled) == agents | {"orchestrator"}
    assert all(lab["run_id"] == result.run_id for lab in labelled.values())
    assert config["global"]["scrape_interval"] == "800ms"
    assert info["scrape_interval_seconds"] == SCRAPE
    # every target was scraped, and the report says so from what the snapshot holds
    assert info["targets_scraped"] == len(agents) + 1 and info["series"] > 0
    report = (bundle / "report.md").read_text()
    assert f"scraped {len(agents) + 1} of {len(agents) + 1} targets ({info['series']} series)" in (
        report
    )
    assert info["start"] < info["end"]
    blocks = [p for p in (bundle / "metrics" / "tsdb").iterdir() if (p / "meta.json").exists()]
    assert [p.name for p in blocks] == info["blocks"] and blocks
    meta = json.loads((blocks[0] / "meta.json").read_text())
    assert meta["stats"]["numSamples"] > 0
    # Prometheus is gone with the run: its port is closed, its state removed.
    host, port = info["live_url"].removeprefix("http://").split(":")
    with socket.socket() as s:
        assert s.connect_ex((host, int(port))) != 0
    assert not list(state.glob("runs/*"))
    tsdb_dirs = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if any(str(state) in arg for arg in p.info["cmdline"] or ())
    ]
    assert tsdb_dirs == []


def test_rendered_config_passes_promtool(smoke: tuple[RunResult, Path]) -> None:
    promtool = require_tool("promtool")
    config = smoke[0].bundle / "metrics" / "prometheus.yml"
    done = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_dashboard_query_is_answered_by_the_restored_snapshot(
    smoke: tuple[RunResult, Path],
) -> None:
    result = smoke[0]
    board = dash.load()
    with serve_snapshot(result.bundle) as server:
        assert server.api is not None
        window = run_window(server.info)
        values = variable_values(server.api, window, board)
        assert values["run"] == result.run_id  # the run variable resolves to this run
        results = check_dashboard(server.api, window, board)
        energy = server.api.query_range(
            f'sum(testbed_energy_finalized_wh_total{{run_id="{result.run_id}"}})',
            window.start,
            window.end,
            window.step,
        )
        accepted = server.api.query_range(
            f'testbed_solutions_total{{run_id="{result.run_id}", result="accepted"}}',
            window.start,
            window.end,
            window.step,
        )
    assert len(results) == sum(len(p["targets"]) for p in board["panels"])
    empty = [f"{r.query.panel_id}{r.query.ref} {r.query.title}: {r.expr} {r.error or ''}"
             for r in results if not r.ok]  # fmt: skip
    assert empty == []
    # The final counter value reached Prometheus: all the energy the run finalized.
    assert max(energy[0].finite) == result.summary["total_energy_traded_wh"]
    # The agents waited for a last scrape: the solver's final count is in Prometheus too.
    assert max(accepted[0].finite) == result.summary["solutions"]["accepted"]


def test_testbed_metrics_cli_checks_and_queries_then_exits(
    smoke: tuple[RunResult, Path],
) -> None:
    bundle = str(smoke[0].bundle)
    env = {**os.environ, "TESTBED_STATE_DIR": str(smoke[1])}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "metrics", bundle, *args],
            capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=False,
        )  # fmt: skip

    check = cli("--check")
    assert check.returncode == 0, check.stdout + check.stderr
    total = sum(len(p["targets"]) for p in dash.load()["panels"])
    assert f"{total} of {total} dashboard queries answered" in check.stdout
    query = cli("--query", "sum by (role) (testbed_agent_ready)", "--json")
    assert query.returncode == 0, query.stderr
    roles = {s["labels"]["role"] for s in json.loads(query.stdout)[0]["series"]}
    assert roles == {"recorder", "dso", "clock", "solver", "prosumer"}
    missing = cli("--query", "no_such_metric")
    assert missing.returncode == 1
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("testbed-metrics-*"))


def test_the_run_wrote_its_report_and_figures(smoke: tuple[RunResult, Path]) -> None:
    bundle = smoke[0].bundle
    report = (bundle / "report.md").read_text()
    names = ("fig6-energy-per-interval", "fig10-producer-sales", "fig11-offer-to-trade", "grid-")
    for name in names:
        png = next((bundle / "figures").glob(f"{name}*.png"))
        assert f"figures/{png.name}" in report
        width, height = png_size(png)
        assert 600 <= width <= 2000 and 400 <= height <= 1200, (png, width, height)
        assert png.stat().st_size > 10_000
    total = smoke[0].summary["total_energy_traded_kwh"]
    assert total > 0
    assert f"| Energy traded | {total:,.1f} kWh |" in report  # as summary.json says
    assert "testbed metrics BUNDLE" in report and str(bundle) not in report
    html = (bundle / "report.html").read_text()  # figures embedded: tests/e2e/test_report_view.py
    assert html.count('<img src="data:image/png;base64,') == 4 and str(bundle) not in html


# -- the dashboard JSON itself -------------------------------------------------


def test_dashboard_file_is_the_generated_one() -> None:
    assert dash.load() == json.loads(dash.render())


def test_dashboard_ids_datasources_and_variables() -> None:
    board = dash.load()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["current"]["value"] == dash.DATASOURCE_UID
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            unknown = dash.variables_in(target["expr"]) - set(variables) - set(dash.BUILTIN)
            assert not unknown, (panel["title"], unknown)
            assert 'run_id=~"$run"' in target["expr"], target["expr"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
    for name in ("delta", "run"):
        assert any(name in dash.variables_in(q.expr) for q in dash.queries(board)), name


def test_provisioning_and_compose_agree_with_the_dashboard() -> None:
    folder = REPO / "dashboards"
    datasource = yaml.safe_load((folder / "provisioning/datasources/testbed.yaml").read_text())
    assert datasource["datasources"][0]["uid"] == dash.DATASOURCE_UID
    provider = yaml.safe_load((folder / "provisioning/dashboards/testbed.yaml").read_text())
    path = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((folder / "grafana-compose.yaml").read_text())
    service = compose["services"]["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in service["volumes"])
    for source in mounts:
        assert (folder / source).exists(), source
    assert mounts["./testbed-run.json"].startswith(path + "/")
    assert set(mounts.values()) >= {
        "/etc/grafana/provisioning/datasources",
        "/etc/grafana/provisioning/dashboards",
    }
    assert "PROMETHEUS_URL" in service["environment"]
