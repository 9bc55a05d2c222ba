"""End to end: the installed `testbed` console script, run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from tests.conftest import REPO

TESTBED = REPO / ".venv" / "bin" / "testbed"
SMOKE = REPO / "topologies" / "smoke.yaml"
SUMMARY_KEYS = {
    "spec",
    "dataset",
    "engine",
    "total_energy_traded_kwh",
    "per_interval_kwh",
    "trades",
    "solve_seconds_total",
}


def run_testbed(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert TESTBED.exists(), "run scripts/setup.sh first"
    return subprocess.run(
        [str(TESTBED), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_help_teaches_with_examples() -> None:
    result = run_testbed("--help")
    assert result.returncode == 0
    assert "testbed replay topologies/smoke.yaml" in result.stdout
    for command in ("validate", "schema", "replay", "dataset"):
        assert command in result.stdout
    replay_help = run_testbed("replay", "--help")
    assert "examples:" in replay_help.stdout and "--engine" in replay_help.stdout
    assert run_testbed().returncode == 2


def test_validate_smoke() -> None:
    result = run_testbed("validate", SMOKE)
    assert result.returncode == 0, result.stderr
    ok, cost = result.stdout.splitlines()  # the run's cost: tests/e2e/test_cli_limits.py
    assert ok == (
        "topologies/smoke.yaml: ok: smoke: 6 prosumers on 2 feeders, 55 offers in "
        "intervals 49..56, L = 3, lockstep clock, local backend"
    ).replace("topologies/smoke.yaml", str(SMOKE))
    assert cost.startswith("  a run: ")


def test_validate_checks_every_sweep_point() -> None:
    fig9 = REPO / "topologies" / "paper-fig9.yaml"
    ok = run_testbed("validate", fig9)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[0].endswith("local backend, sweep of 36 points")
    # valid as written (L = 13 > t_clear = 3), but not at the points with L = 2 and 3
    bad = run_testbed(
        "validate", fig9, "--set", "market.prediction_window=13", "--set", "market.t_clear=3"
    )
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        f"sweep point {n} (market.prediction_window={window}, "
        f"microgrid.dataset.battery={battery}, market.tie_break={policy})"
        for n, (window, battery, policy) in enumerate(
            (
                (window, battery, policy)
                for window in (2, 3)
                for battery in ("false", "true")
                for policy in ("expiring-first", "storage-last", "none")
            ),
            start=1,
        )
    ]
    assert all("market.t_clear: must be < market.prediction_window" in line for line in lines)


def test_validate_prints_the_resolved_spec() -> None:
    result = run_testbed("validate", SMOKE, "--print", "--set", "deployment.backend=docker")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert resolved["name"] == "smoke"
    assert resolved["deployment"]["backend"] == "docker"
    assert resolved["market"]["t_clear"] == 1


def test_invalid_spec_reports_every_problem_and_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "microgrid:\n  dataset: {kind: synthetic}\nmarket:\n  predicton_window: 3\n"
        "  clock: lockstp\n"
    )
    result = run_testbed("validate", spec, "--set", "solvers[0].engine=cplex")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{spec}:4:3: market.predicton_window: unknown key; did you mean 'prediction_window'?",
        f"{spec}:5:10: market.clock: must be one of 'lockstep', 'wallclock', "
        "got string 'lockstp'; did you mean 'lockstep'?",
        "--set solvers[0].engine=cplex: solvers[0].engine: must be one of 'glpk', 'highs', "
        "got string 'cplex'",
    ]


def test_schema_is_json_schema_2020_12() -> None:
    result = run_testbed("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    Draft202012Validator.check_schema(schema)
    assert {"name", "seed", "microgrid", "market", "solvers", "deployment"} <= set(
        schema["properties"]
    )
    smoke = yaml.safe_load(SMOKE.read_text())
    assert list(Draft202012Validator(schema).iter_errors(smoke)) == []


def test_dataset_synth_is_deterministic_and_readable(tmp_path: Path) -> None:
    first = run_testbed("dataset", "synth", "--seed", "4", "--battery", "--out", tmp_path / "a")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"{tmp_path / 'a'}: 102 prosumers on 11 feeders, 5 producers")
    second = run_testbed("dataset", "synth", "--seed", "4", "--battery", "--out", tmp_path / "b")
    assert second.returncode == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(files) == 102
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    info = run_testbed("dataset", "info", tmp_path / "a", "--json")
    facts = json.loads(info.stdout)
    assert facts["producers"] == [101, 102, 701, 801, 1001]
    assert facts["multi_interval_offers"] > 0
    again = run_testbed("dataset", "synth", "--seed", "4", "--out", tmp_path / "a")
    assert again.returncode == 2
    assert "already holds 102 prosumer_<ID>.csv files" in again.stderr
    forced = run_testbed(
        "dataset", "synth", "--seed", "5", "--scale", "2", "--force", "--out", tmp_path / "a"
    )
    assert forced.returncode == 0
    assert "204 prosumers on 22 feeders, 10 producers" in forced.stdout


def test_bad_traces_exit_2_naming_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "prosumer_101.csv").write_text("startTime,endTime,energy\n1,1,x\n")
    result = run_testbed("dataset", "info", tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr == f"{tmp_path / 'prosumer_101.csv'}:2: energy: 'x' is not a number of kWh\n"
    )


def test_replay_smoke_table_and_json() -> None:
    table = run_testbed("replay", SMOKE)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == (
        "smoke: intervals 49..56, L = 3, T_clear = 1, engine highs, tie-break expiring-first"
    )
    assert lines[3] == "interval  time   traded kWh"
    assert [line.split()[:2] for line in lines[4:12]] == [
        [str(t), f"{(t - 1) // 4:02d}:{(t - 1) % 4 * 15:02d}"] for t in range(49, 57)
    ]
    total, wait, grid = lines[-5], lines[-4], lines[-3:]
    assert total.startswith("total ") and " kWh traded in " in total
    assert wait.startswith("intervals an offer waited for its first trade")
    assert grid[0].startswith("grid: 2 feeders, 9 buses, 8 intervals in ")
    assert grid[1].startswith("  market   : V ") and grid[2].startswith("  no_market: V ")

    highs, glpk = (
        json.loads(run_testbed("replay", SMOKE, "--json", "--engine", e).stdout)
        for e in ("highs", "glpk")
    )
    assert set(highs) >= SUMMARY_KEYS
    assert highs["spec"] == "smoke" and highs["dataset"]["kind"] == "synthetic"
    assert (highs["engine"], glpk["engine"]) == ("highs", "glpk")
    assert list(highs["per_interval_kwh"]) == [str(t) for t in range(49, 57)]
    assert highs["total_energy_traded_kwh"] > 0
    assert highs["total_energy_traded_kwh"] == pytest.approx(
        sum(highs["per_interval_kwh"].values())
    )
    assert glpk["total_energy_traded_kwh"] == highs["total_energy_traded_kwh"]
    assert highs["grid"]["enabled"] and highs["grid"]["intervals"] == 8
    assert highs["grid"]["market"]["not_converged"] == []
    # The table (another process, same engine) shows the same numbers.
    assert [float(line.split()[2]) for line in lines[4:12]] == pytest.approx(
        list(highs["per_interval_kwh"].values()), abs=0.05
    )
    assert float(total.split()[1]) == pytest.approx(highs["total_energy_traded_kwh"], abs=0.05)
    assert total.split()[5] == str(highs["trades"])
    waited = highs["offer_to_trade_intervals"]  # the JSON's numbers, not rounded again
    assert wait.endswith(f"p50 {waited['p50']:g}, p99 {waited['p99']:g}, max {waited['max']:g}")


@pytest.mark.parametrize(
    ("spec", "subdir"), [("transax-a", "noBattery"), ("transax-battery", "withBattery")]
)
def test_replay_public_traces_on_a_window(transax_dir: Path, spec: str, subdir: str) -> None:
    window = ["--set", "market.first_interval=50", "--set", "market.last_interval=56"]
    env = {"TRANSAX_DATA": str(transax_dir)}
    path = REPO / "topologies" / f"{spec}.yaml"
    engines = ("highs", "glpk") if subdir == "withBattery" else ("highs",)
    summaries = []
    for engine in engines:
        result = run_testbed("replay", path, *window, "--json", "--engine", engine, env=env)
        assert result.returncode == 0, result.stderr
        summaries.append(json.loads(result.stdout))
    highs = summaries[0]
    assert set(highs) >= SUMMARY_KEYS
    assert highs["dataset"]["path"] == str(transax_dir / subdir)
    assert highs["dataset"]["prosumers"] == 102
    assert list(highs["per_interval_kwh"]) == [str(t) for t in range(50, 57)]
    assert highs["trades"] > 0
    # Feeder limits bind: at most 11 feeders x 25 kWh of production per interval.
    assert 0 < max(highs["per_interval_kwh"].values()) <= 11 * 25
    for other in summaries[1:]:
        assert other["total_energy_traded_kwh"] == highs["total_energy_traded_kwh"]
