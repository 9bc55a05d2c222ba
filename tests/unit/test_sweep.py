"""Sweep specs: the `sweep:` section's checks (with positions), its expansion
into points (cartesian product, names, overrides, paths relative to the spec
file), per-point validation, the sweep table and a two-point replay sweep."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import pytest
import yaml

from orchestrator.errors import SpecError
from orchestrator.replay import run_replay
from orchestrator.scenario import build_scenario
from orchestrator.spec import load_spec, parse_spec
from orchestrator.spec.schema import NAME_PATTERN
from orchestrator.sweeps.points import expand, load_points
from orchestrator.sweeps.runner import SweepOptions, replay_sweep
from orchestrator.sweeps.table import FIG9, SweepTable, series_label
from tests.conftest import REPO

SMOKE = REPO / "topologies" / "smoke.yaml"
BASE = """\
name: sw
microgrid:
  dataset: {kind: synthetic}
market: {prediction_window: 3}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="s.yaml")
    return info.value.problems


def test_sweep_keys_and_values_are_checked_where_they_are_written() -> None:
    text = BASE + (
        "sweep:\n"
        "  market.prediction_windw: [2, 3]\n"
        "  market.t_clear: [0, 1]\n"
        "  microgrid.dataset.battery: [false, 'yes']\n"
        "  name: [a]\n"
        "  solvers[0].engine: [cplex]\n"
    )
    assert problems(text) == [
        "s.yaml:6:3: sweep.market.prediction_windw: unknown spec key "
        "market.prediction_windw; did you mean 'prediction_window'?",
        "s.yaml:7:20: sweep.market.t_clear[0]: must be >= 1, got 0",
        "s.yaml:8:38: sweep.microgrid.dataset.battery[1]: expected true or false, got string 'yes'",
        "s.yaml:9:3: sweep.name: name cannot be swept",
        "s.yaml:10:23: sweep.solvers[0].engine[0]: must be one of 'glpk', 'highs', "
        "got string 'cplex'",
    ]
    assert problems(BASE + "sweep:\n  seed: []\n") == [
        "s.yaml:6:9: sweep.seed: must have at least 1 item"
    ]


def test_overlapping_sweep_keys_are_refused() -> None:
    text = BASE + "sweep:\n  market: [{}]\n  market.t_clear: [1]\n"
    assert problems(text) == [
        "s.yaml:6:3: sweep.market: overlaps sweep key 'market.t_clear' (one contains the other)"
    ]


def test_points_are_the_cartesian_product_in_key_order(tmp_path: Path) -> None:
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(
        BASE
        + "sweep:\n  market.prediction_window: [2, 5]\n  microgrid.dataset.battery: [false, true]\n"
    )
    base = load_spec(spec_file)
    assert base.sweep == {
        "market.prediction_window": (2, 5),
        "microgrid.dataset.battery": (False, True),
    }
    points = expand(base)
    assert [p.values for p in points] == [
        (("market.prediction_window", 2), ("microgrid.dataset.battery", False)),
        (("market.prediction_window", 2), ("microgrid.dataset.battery", True)),
        (("market.prediction_window", 5), ("microgrid.dataset.battery", False)),
        (("market.prediction_window", 5), ("microgrid.dataset.battery", True)),
    ]
    assert points[1].name == "sw-02-prediction_window-2_battery-true"
    assert points[1].overrides() == (
        "market.prediction_window=2",
        "microgrid.dataset.battery=true",
        "sweep=null",
        "name=sw-02-prediction_window-2_battery-true",
    )
    assert all(re.fullmatch(NAME_PATTERN, p.name) for p in points)
    loaded = load_points(spec_file, [], {}, base)
    specs = [spec for _, spec in loaded]
    assert [(s.market.prediction_window, s.microgrid.dataset.battery) for s in specs] == [
        (2, False), (2, True), (5, False), (5, True),
    ]  # fmt: skip
    assert all(s.sweep is None for s in specs)
    # a point's resolved spec stands on its own: no sweep, its own name
    resolved = specs[3].to_dict()
    assert "sweep" not in resolved and resolved["name"] == points[3].name
    # the sweep spec round-trips through its resolved form
    assert parse_spec(yaml.safe_dump(base.to_dict()), source="r.yaml") == base


def test_a_point_that_breaks_a_cross_key_rule_is_named() -> None:
    sweep = "sweep={market.prediction_window: [2, 4], market.t_clear: [1, 4]}"
    base = load_spec(SMOKE, [sweep])
    with pytest.raises(SpecError) as info:
        load_points(SMOKE, [sweep], {}, base)
    lines = info.value.problems
    assert len(lines) == 2  # (L=2, t_clear=4) and (L=4, t_clear=4); t_clear=1 is fine
    assert lines[0].startswith("sweep point 2 (market.prediction_window=2, market.t_clear=4): ")
    assert lines[1].startswith("sweep point 4 (market.prediction_window=4, market.t_clear=4): ")
    assert all("market.t_clear: must be < market.prediction_window" in line for line in lines)


def test_dataset_paths_in_a_sweep_are_relative_to_the_spec_file(tmp_path: Path) -> None:
    folder = tmp_path / "specs"
    folder.mkdir()
    spec_file = folder / "s.yaml"
    spec_file.write_text(
        "name: t\nmicrogrid:\n  dataset: {kind: transax, path: data/noBattery}\n"
        "sweep:\n  microgrid.dataset.path: [data/noBattery, data/withBattery]\n"
    )
    points = expand(load_spec(spec_file))
    assert [p.value("microgrid.dataset.path") for p in points] == [
        str(folder / "data" / "noBattery"),
        str(folder / "data" / "withBattery"),
    ]
    assert [p.label for p in points] == [
        "microgrid.dataset.path=noBattery",
        "microgrid.dataset.path=withBattery",
    ]
    assert series_label("microgrid.dataset.path", points[1].value("microgrid.dataset.path")) == (
        "with battery"
    )


def test_the_paper_sweeps_declare_figure_9() -> None:
    for name in ("paper-fig9", "transax-fig9"):
        spec = load_spec(REPO / "topologies" / f"{name}.yaml", env={})
        assert spec.market.clock == "lockstep"
        assert spec.sweep is not None
        assert spec.sweep["market.prediction_window"] == (2, 3, 5, 7, 10, 13)
        assert spec.sweep["market.tie_break"] == ("expiring-first", "storage-last", "none")
        assert (spec.market.first_interval, spec.market.last_interval) == (1, 96)
        assert len(expand(spec)) == 36


def test_replay_sweep_writes_the_table_and_figure_9(tmp_path: Path) -> None:
    sweep = "sweep={market.prediction_window: [2, 3], microgrid.dataset.battery: [true]}"
    result = replay_sweep(
        SweepOptions(spec=SMOKE, overrides=(sweep,), out=tmp_path, env=os.environ)
    )
    assert result.directory.parent == tmp_path / "smoke"
    doc = json.loads(result.files["json"].read_text())
    assert doc["keys"] == ["market.prediction_window", "microgrid.dataset.battery"]
    totals = {p["market.prediction_window"]: p["total_energy_traded_kwh"] for p in doc["points"]}
    for window, total in totals.items():  # each point is exactly `testbed replay` of it
        spec = load_spec(SMOKE, [f"market.prediction_window={window}"])
        assert run_replay(build_scenario(spec), "highs")["total_energy_traded_kwh"] == total
    with result.files["csv"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["market.prediction_window"] for r in rows] == ["2", "3"]
    assert [r["microgrid.dataset.battery"] for r in rows] == ["true", "true"]
    assert "| point | market.prediction_window |" in result.files["markdown"].read_text()
    assert result.files["fig9"].name == FIG9
    assert result.files["fig9"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.table.series() == {"with battery": [(2.0, totals[2]), (3.0, totals[3])]}
    # the all-offers-at-once optimum: the same for both points, above both totals
    (bound,) = {p["upper_bound_kwh"] for p in doc["points"]}
    assert bound >= max(totals.values()) > 0
    assert result.table.bounds() == {"with battery: all offers at once": bound}


def test_sweep_table_series_group_by_the_other_keys() -> None:
    from orchestrator.sweeps.points import SweepPoint

    table = SweepTable(
        "x", "id", "replay", ["microgrid.dataset.battery", "market.prediction_window"]
    )
    for i, (battery, window, kwh) in enumerate(
        [(False, 2, 10.0), (False, 5, 10.0), (True, 2, 10.0), (True, 5, 12.5)], start=1
    ):
        values = (("microgrid.dataset.battery", battery), ("market.prediction_window", window))
        table.add(SweepPoint(i, values, f"x-{i}"), {"total_energy_traded_kwh": kwh})
    assert table.series() == {
        "no battery": [(2.0, 10.0), (5.0, 10.0)],
        "with battery": [(2.0, 10.0), (5.0, 12.5)],
    }


def test_policies_are_series_and_share_their_dataset_bound() -> None:
    from orchestrator.sweeps.points import SweepPoint

    keys = ["market.prediction_window", "market.tie_break"]
    table = SweepTable("x", "id", "replay", keys)
    rows = [(2, "none", 9.0), (5, "none", 8.0)]
    rows += [(2, "expiring-first", 10.0), (5, "expiring-first", 11.0)]
    for i, (window, policy, kwh) in enumerate(rows, start=1):
        values = (("market.prediction_window", window), ("market.tie_break", policy))
        table.add(
            SweepPoint(i, values, f"x-{i}"),
            {"total_energy_traded_kwh": kwh, "upper_bound_kwh": 11.5},
        )
    assert table.series() == {
        "none": [(2.0, 9.0), (5.0, 8.0)],
        "expiring-first": [(2.0, 10.0), (5.0, 11.0)],
    }
    assert table.bounds() == {"all offers at once": 11.5}
