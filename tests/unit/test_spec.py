"""The spec pipeline on valid specs: defaults, resolution, round trip, topologies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from market.types import Feeder
from orchestrator.errors import SpecError
from orchestrator.spec import Spec, json_schema, load_spec, parse_spec
from orchestrator.spec.backends import NAMES as BACKEND_NAMES
from orchestrator.spec.backends import backend_entry
from orchestrator.spec.faults import CONFIG_ACTIONS
from orchestrator.spec.schema import apply_defaults
from tests.conftest import REPO, TRANSAX_DIR

TOPOLOGIES = sorted((REPO / "topologies").glob("*.yaml"))
MINIMAL = "microgrid:\n  dataset: {kind: synthetic}\n"


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_minimal_spec_gets_every_default(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, MINIMAL, "my-exp.yaml"), env={})
    assert spec.name == "my-exp"
    assert spec.seed == 0
    assert spec.microgrid.dataset.seed == 0  # the spec's seed
    assert spec.microgrid.dataset.battery is False
    assert (spec.microgrid.feeders.c_ext_kw, spec.microgrid.feeders.c_int_kw) == (80, 100)
    assert (spec.microgrid.prices.sell, spec.microgrid.prices.buy) == (100_000, 200_000)
    market = spec.market
    assert (market.interval_minutes, market.first_interval, market.last_interval) == (15, 1, 96)
    assert (market.prediction_window, market.t_clear, market.clock) == (2, 1, "lockstep")
    assert (market.simulated_interval_seconds, market.solver_period_seconds) == (120, 5)
    assert [(s.name, s.engine, s.behaviour) for s in spec.solvers] == [
        ("solver-1", "highs", "honest")
    ]
    assert spec.chain.kind == "anvil" and spec.chain.block_time_seconds == 0
    assert spec.deployment.backend == "local" and spec.deployment.hosts == ()
    assert spec.deployment.prosumers_per_host is None
    assert spec.metrics.prometheus.enabled is True
    assert spec.source == str(tmp_path / "my-exp.yaml")


def test_feeder_limits_in_wh_per_interval_with_overrides() -> None:
    spec = parse_spec(
        MINIMAL
        + "  feeders:\n    c_ext_kw: 80\n    c_int_kw: 100.5\n"
        + "    overrides: [{id: 7, c_ext_kw: 0.1}, {id: 2, c_int_kw: 4}]\n"
    )
    assert spec.feeder(1) == Feeder(1, c_ext=20_000, c_int=25_125)
    assert spec.feeder(7) == Feeder(7, c_ext=25, c_int=25_125)
    assert spec.feeder(2) == Feeder(2, c_ext=20_000, c_int=1_000)


def test_interval_length_changes_the_conversion() -> None:
    spec = parse_spec(MINIMAL + "market: {interval_minutes: 60, last_interval: 24}\n")
    assert spec.feeder(1) == Feeder(1, c_ext=80_000, c_int=100_000)


def test_dataset_seed_given_explicitly_wins() -> None:
    spec = parse_spec("seed: 4\nmicrogrid:\n  dataset: {kind: synthetic, seed: 9}\n")
    assert (spec.seed, spec.microgrid.dataset.seed) == (4, 9)


def test_relative_transax_path_resolves_against_the_spec_file(tmp_path: Path) -> None:
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    text = "microgrid:\n  dataset: {kind: transax, path: ../data/noBattery}\n"
    spec = load_spec(write(spec_dir, text), env={})
    assert spec.microgrid.dataset.path == str(tmp_path / "data" / "noBattery")


def test_relative_path_from_set_resolves_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    monkeypatch.chdir(tmp_path)
    text = "microgrid:\n  dataset: {kind: transax, path: elsewhere}\n"
    spec = load_spec(write(spec_dir, text), ["microgrid.dataset.path=traces"], env={})
    assert spec.microgrid.dataset.path == str(tmp_path / "traces")


def test_to_dict_is_the_resolved_spec_and_loads_back_equal(tmp_path: Path) -> None:
    text = (
        "name: rt\nseed: 3\nmicrogrid:\n  dataset: {kind: transax, path: data}\n"
        "  feeders: {overrides: [{id: 2, c_ext_kw: 40}]}\n"
        "deployment:\n  backend: ssh\n  hosts: [{name: bbb-1, address: 10.0.0.2, user: debian}]\n"
    )
    spec = load_spec(write(tmp_path, text), env={})
    resolved = spec.to_dict()
    assert resolved["microgrid"]["dataset"] == {"kind": "transax", "path": str(tmp_path / "data")}
    assert resolved["deployment"]["hosts"] == [
        {"name": "bbb-1", "address": "10.0.0.2", "user": "debian"}
    ]
    assert "source" not in resolved
    again = load_spec(write(tmp_path, yaml.safe_dump(resolved), "resolved.yaml"), env={})
    assert again == spec
    assert isinstance(again, Spec)


def test_schema_is_valid_draft_2020_12_and_accepts_resolved_specs() -> None:
    schema = json_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    resolved = parse_spec(MINIMAL).to_dict()
    assert list(Draft202012Validator(schema).iter_errors(resolved)) == []
    schema["properties"].clear()  # a fresh copy every time
    assert json_schema()["properties"]


def test_apply_defaults_fills_list_items_and_keeps_given_values() -> None:
    schema = json_schema()
    data = {"microgrid": {"dataset": {"kind": "synthetic"}}, "solvers": [{"name": "s"}]}
    full = apply_defaults(data, schema)
    assert full["solvers"] == [{"name": "s", "engine": "highs", "behaviour": "honest"}]
    assert full["market"]["t_clear"] == 1
    assert data == {"microgrid": {"dataset": {"kind": "synthetic"}}, "solvers": [{"name": "s"}]}


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_every_topology_loads_and_is_named_after_its_file(path: Path) -> None:
    spec = load_spec(path, env={"TRANSAX_DATA": str(TRANSAX_DIR)})
    assert spec.name == path.stem
    assert path.read_text().startswith("# "), "a comment header says what it reproduces"
    for backend in BACKEND_NAMES:
        refused = {f.action for f in spec.faults} - backend_entry(backend).fault_actions
        refused -= set(CONFIG_ACTIONS)  # solver and prosumer behaviours: every backend
        if refused:  # a backend refuses the fault actions it cannot do, before anything runs
            with pytest.raises(SpecError, match=f"not supported by the {backend} backend"):
                load_spec(path, [f"deployment.backend={backend}"], env={})
            continue
        switched = load_spec(path, [f"deployment.backend={backend}"], env={})
        assert switched.deployment.backend == backend


def test_topology_set() -> None:
    names = {p.stem for p in TOPOLOGIES}
    wanted = {"smoke", "paper-a", "paper-b", "paper-c", "paper-d", "transax-a", "transax-battery"}
    assert wanted <= names


@pytest.mark.parametrize(
    ("name", "battery", "window"),
    [("paper-a", False, 2), ("paper-b", True, 2), ("paper-c", True, 5), ("paper-d", True, 13)],
)
def test_paper_topologies_follow_table_2(name: str, battery: bool, window: int) -> None:
    spec = load_spec(REPO / "topologies" / f"{name}.yaml", env={})
    assert spec.microgrid.dataset.kind == "synthetic"
    assert spec.microgrid.dataset.battery is battery
    assert spec.market.prediction_window == window
    assert (spec.market.first_interval, spec.market.last_interval) == (1, 96)
    assert spec.market.simulated_interval_seconds == 120
    assert spec.market.solver_period_seconds == 5
    assert spec.feeder(1) == Feeder(1, c_ext=20_000, c_int=25_000)
    changed = load_spec(
        REPO / "topologies" / f"{name}.yaml", ["market.prediction_window=7"], env={}
    )
    assert changed.market.prediction_window == 7


@pytest.mark.parametrize(
    ("name", "subdir"), [("transax-a", "noBattery"), ("transax-battery", "withBattery")]
)
def test_transax_topologies_default_to_the_shared_traces(name: str, subdir: str) -> None:
    spec = load_spec(REPO / "topologies" / f"{name}.yaml", env={})
    expected = os.path.normpath(REPO.parent / "shared" / "datasets" / "transax-phase2" / subdir)
    assert spec.microgrid.dataset.path == expected
    assert spec.feeder(11) == Feeder(11, c_ext=20_000, c_int=25_000)
    moved = load_spec(REPO / "topologies" / f"{name}.yaml", env={"TRANSAX_DATA": "/data/tx"})
    assert moved.microgrid.dataset.path == f"/data/tx/{subdir}"


def test_smoke_topology_is_small_with_multi_interval_offers() -> None:
    spec = load_spec(REPO / "topologies" / "smoke.yaml", env={})
    dataset = spec.microgrid.dataset
    assert dataset.kind == "synthetic" and dataset.battery
    assert dataset.prosumers is not None and len(dataset.prosumers) == 6
    assert len({p // 100 for p in dataset.prosumers}) == 2
    assert spec.market.last_interval - spec.market.first_interval + 1 == 8
    assert spec.market.clock == "lockstep"


def test_missing_spec_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "nope.yaml")
    assert caught.value.problems == [
        f"{tmp_path / 'nope.yaml'}: cannot read spec: No such file or directory"
    ]
    assert caught.value.exit_code == 2
