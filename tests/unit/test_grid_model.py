"""`microgrid.grid`: the spec section (defaults, overrides, errors at file:line:col)
and the network description resolved against a dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.datasets import synthesize
from orchestrator.errors import SpecError
from orchestrator.grid.model import describe_network
from orchestrator.spec import load_spec
from orchestrator.spec.grid import LINE_STD_TYPES, TRAFO_STD_TYPES, GridConfig
from tests.conftest import REPO

SMOKE = REPO / "topologies" / "smoke.yaml"


def test_std_type_names_are_pandapowers() -> None:
    import pandapower as pp

    net = pp.create_empty_network()
    assert set(LINE_STD_TYPES) <= set(pp.available_std_types(net, "line").index)
    assert set(TRAFO_STD_TYPES) <= set(pp.available_std_types(net, "trafo").index)


def test_defaults_are_a_european_lv_feeder() -> None:
    grid = load_spec(SMOKE, env={}).microgrid.grid
    assert grid == GridConfig()
    assert grid.enabled
    assert (grid.line.std_type, grid.line.span_m) == ("NAYY 4x150 SE", 30)
    assert grid.transformer.std_type == "0.4 MVA 20/0.4 kV"
    assert (grid.vm_min_pu, grid.vm_max_pu, grid.max_loading_percent) == (0.95, 1.05, 100)


def test_every_value_overridable_and_per_feeder() -> None:
    overrides = [
        "microgrid.grid.line.span_m=45",
        "microgrid.grid.line.max_i_ka=0.2",
        "microgrid.grid.vm_min_pu=0.9",
        "microgrid.grid.load_cos_phi=1",
        'microgrid.grid.feeders=[{id: 7, line: {std_type: "NAYY 4x50 SE"}, '
        'transformer: {std_type: "0.63 MVA 20/0.4 kV", sn_mva: 0.5}}]',
    ]
    spec = load_spec(SMOKE, overrides, env={})
    grid = spec.microgrid.grid
    assert grid.line_of(1).span_m == 45 and grid.line_of(1).std_type == "NAYY 4x150 SE"
    assert grid.line_of(7).std_type == "NAYY 4x50 SE"
    assert grid.line_of(7).span_m == 45 and grid.line_of(7).max_i_ka == 0.2
    assert grid.transformer_of(7).sn_mva == 0.5
    assert grid.transformer_of(1).std_type == "0.4 MVA 20/0.4 kV"
    # the resolved spec round-trips
    again = load_spec(SMOKE, overrides, env={}).to_dict()
    assert again["microgrid"]["grid"]["feeders"][0]["id"] == 7


def _spec_file(tmp_path: Path, grid_yaml: str) -> Path:
    text = SMOKE.read_text().replace(
        "  feeders:\n    c_ext_kw: 80", f"  grid:\n{grid_yaml}  feeders:\n    c_ext_kw: 80"
    )
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as err:
        load_spec(path, env={})
    for line in err.value.problems:
        assert line.startswith(f"{path}:"), line
        assert line.split(":")[1].isdigit() and line.split(":")[2].isdigit(), line
    return err.value.problems


def test_schema_errors_point_at_file_line_col(tmp_path: Path) -> None:
    path = _spec_file(
        tmp_path, "    line:\n      std_type: NAYY 4x150\n    voltage: 3\n    vm_max_pu: 0\n"
    )
    text = "\n".join(_problems(path))
    assert ":19:17: microgrid.grid.line.std_type: must be one of" in text
    assert "did you mean 'NAYY 4x150 SE'?" in text
    assert ":20:5: microgrid.grid.voltage: unknown key" in text
    assert "microgrid.grid.vm_max_pu: must be > 0, got 0" in text


def test_cross_key_errors_point_at_file_line_col(tmp_path: Path) -> None:
    path = _spec_file(
        tmp_path, "    vm_min_pu: 1.1\n    feeders:\n      - {id: 1}\n      - {id: 1}\n"
    )
    text = "\n".join(_problems(path))
    assert ":18:16: microgrid.grid.vm_min_pu: must be < microgrid.grid.vm_max_pu (1.05)" in text
    assert "microgrid.grid.feeders[1].id: feeder 1 already in microgrid.grid.feeders[0]" in text


def test_network_description_of_the_dataset() -> None:
    spec = load_spec(SMOKE, env={})
    dataset = synthesize(7, battery=True).select(prosumers=[101, 103, 104, 701, 702, 703])
    network = describe_network(spec.microgrid.grid, dataset)
    assert [(f.id, f.prosumers) for f in network.feeders] == [
        (1, (101, 103, 104)),
        (7, (701, 702, 703)),
    ]
    assert network.prosumers == (101, 103, 104, 701, 702, 703)
    assert network.buses == 1 + 2 + 6
    summary = network.summary()
    assert summary["lines"] == 6 and summary["transformers"] == 2
    assert summary["band"] == {"vm_min_pu": 0.95, "vm_max_pu": 1.05, "max_loading_percent": 100}


def test_override_of_a_feeder_not_in_the_dataset_is_an_error() -> None:
    spec = load_spec(
        SMOKE,
        ["microgrid.grid.feeders=[{id: 3}]"],
        env={},
    )
    dataset = synthesize(7).select(feeders=[1, 7])
    with pytest.raises(
        SpecError, match=r"microgrid.grid.feeders\[0\].id: feeder 3 is not in the dataset"
    ):
        describe_network(spec.microgrid.grid, dataset, "smoke.yaml")
