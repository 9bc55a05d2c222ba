"""From a spec to market inputs: dataset selection, feeders, offers."""

from __future__ import annotations

from pathlib import Path

import pytest

from market.types import Feeder, Kind
from orchestrator.errors import DatasetError, SpecError
from orchestrator.scenario import build_scenario
from orchestrator.spec import load_spec, parse_spec
from tests.conftest import REPO


def test_smoke_scenario() -> None:
    scenario = build_scenario(load_spec(REPO / "topologies" / "smoke.yaml", env={}))
    assert [p.id for p in scenario.dataset.prosumers] == [101, 103, 104, 701, 702, 703]
    assert scenario.feeders == (Feeder(1, 20_000, 25_000), Feeder(7, 20_000, 25_000))
    offers = scenario.offers
    assert [o.id for o in offers] == list(range(1, len(offers) + 1))
    assert all(49 <= o.start <= o.end <= 56 for o in offers), "cut to the window"
    assert any(o.kind is Kind.SELL and o.start < o.end for o in offers), "battery offers"
    assert {o.price for o in offers if o.kind is Kind.SELL} == {100_000}
    assert {o.price for o in offers if o.kind is Kind.BUY} == {200_000}
    assert scenario.offers_of(101) and all(o.feeder == 1 for o in scenario.offers_of(101))
    assert sum(len(scenario.offers_of(p.id)) for p in scenario.dataset.prosumers) == len(offers)


def test_transax_scenario(transax_dir: Path) -> None:
    spec = parse_spec(
        "microgrid:\n  dataset: {kind: transax, path: withBattery, feeders: [1, 2]}\n"
        "  feeders: {overrides: [{id: 2, c_ext_kw: 40}]}\n"
        "market: {first_interval: 50, last_interval: 52}\n",
        base_dir=transax_dir,
    )
    scenario = build_scenario(spec)
    assert scenario.feeders == (Feeder(1, 20_000, 25_000), Feeder(2, 10_000, 25_000))
    assert len(scenario.dataset.prosumers) == 9 + 17
    multi = [o for o in scenario.offers if o.start != o.end]
    assert [(o.start, o.end, o.energy) for o in multi][:2] == [(50, 52, 8_400), (51, 52, 8_600)]


def test_selection_of_unknown_feeders_and_prosumers_names_each_at_its_line() -> None:
    spec = parse_spec(
        "microgrid:\n  dataset:\n    kind: synthetic\n    feeders: [1, 12, 2]\n"
        "    prosumers:\n      - 101\n      - 1299\n      - 118\n",
        source="exp.yaml",
    )
    with pytest.raises(DatasetError) as caught:
        build_scenario(spec)
    synthetic = "the synthetic microgrid (scale 1)"
    assert str(caught.value).splitlines() == [
        f"exp.yaml:4:18: microgrid.dataset.feeders[1]: feeder 12 is not in {synthetic} "
        "(feeders 1..11)",
        f"exp.yaml:7:9: microgrid.dataset.prosumers[1]: prosumer 1299 is not in {synthetic} "
        "(ids are feeder * 100 + n; no feeder 12, feeders 1..11)",
        f"exp.yaml:8:9: microgrid.dataset.prosumers[2]: prosumer 118 is not in {synthetic} "
        "(ids are feeder * 100 + n; feeder 1 has 101..109)",
    ]


def test_feeder_override_for_a_feeder_the_dataset_lacks() -> None:
    spec = parse_spec(
        "microgrid:\n  dataset: {kind: synthetic, prosumers: [101]}\n"
        "  feeders: {overrides: [{id: 4, c_ext_kw: 40}]}\n",
        source="exp.yaml",
    )
    with pytest.raises(SpecError) as caught:
        build_scenario(spec)
    assert caught.value.problems == [
        "exp.yaml:3:30: microgrid.feeders.overrides[0].id: feeder 4 is not in the dataset "
        "(feeders 1)"
    ]


def test_missing_transax_directory_is_a_dataset_error_at_the_spec_line(tmp_path: Path) -> None:
    spec = parse_spec(
        "microgrid:\n  dataset: {kind: transax, path: nowhere}\n",
        base_dir=tmp_path,
        source="exp.yaml",
    )
    with pytest.raises(DatasetError) as caught:
        build_scenario(spec)
    assert str(caught.value) == (
        f"exp.yaml:2:34: microgrid.dataset.path: no such directory {tmp_path / 'nowhere'}"
    )
    (tmp_path / "nowhere").mkdir()
    with pytest.raises(DatasetError) as caught:
        build_scenario(spec)
    assert str(caught.value) == (
        "exp.yaml:2:34: microgrid.dataset.path: no prosumer_<ID>.csv files in "
        f"{tmp_path / 'nowhere'}"
    )


def test_unknown_transax_prosumer_names_the_files_there(tmp_path: Path) -> None:
    for prosumer in (101, 102, 201):
        (tmp_path / f"prosumer_{prosumer}.csv").write_text("startTime,endTime,energy\n50,50,1\n")
    spec = parse_spec(
        "microgrid:\n  dataset:\n    kind: transax\n    path: .\n    prosumers: [101, 103]\n",
        base_dir=tmp_path,
        source="exp.yaml",
    )
    with pytest.raises(DatasetError) as caught:
        build_scenario(spec)
    assert str(caught.value) == (
        f"exp.yaml:5:22: microgrid.dataset.prosumers[1]: prosumer 103 is not in {tmp_path} "
        "(ids are feeder * 100 + n; feeder 1 has 101, 102)"
    )
