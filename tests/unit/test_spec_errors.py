"""Spec errors: exact `file:line:col: dotted.path: message` lines, all at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec import load_spec, parse_spec
from orchestrator.spec.backends import NAMES as BACKEND_NAMES

BACKENDS_LISTED = ", ".join(repr(name) for name in BACKEND_NAMES)


def problems(
    text: str, overrides: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source="exp.yaml", overrides=overrides, env=env or {})
    assert caught.value.exit_code == 2
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def test_schema_errors_are_collected_with_positions_and_suggestions() -> None:
    text = """\
seed: abc
microgrid:
  dataset:
    kind: transx
  feeders:
    overides: []
market:
  predicton_window: 3
  first_interval: 0
  clock: lockstp
solvers:
  - name: s1
    engine: cplex
deployment:
  backend: kubernetes
  hosts: [{name: h1, adress: 10.0.0.1}]
"""
    assert problems(text) == [
        "exp.yaml:1:7: seed: expected an integer, got string 'abc'",
        "exp.yaml:4:11: microgrid.dataset.kind: must be one of 'synthetic', 'transax', "
        "got string 'transx'; did you mean 'transax'?",
        "exp.yaml:6:5: microgrid.feeders.overides: unknown key; did you mean 'overrides'?",
        "exp.yaml:8:3: market.predicton_window: unknown key; did you mean 'prediction_window'?",
        "exp.yaml:9:19: market.first_interval: must be >= 1, got 0",
        "exp.yaml:10:10: market.clock: must be one of 'lockstep', 'wallclock', "
        "got string 'lockstp'; did you mean 'lockstep'?",
        "exp.yaml:13:13: solvers[0].engine: must be one of 'glpk', 'highs', got string 'cplex'",
        f"exp.yaml:15:12: deployment.backend: must be one of {BACKENDS_LISTED}, "
        "got string 'kubernetes'",
        "exp.yaml:16:22: deployment.hosts[0].adress: unknown key; did you mean 'address'?",
    ]


def test_unknown_key_without_a_close_match_lists_the_known_ones() -> None:
    assert problems("microgrid: {dataset: {kind: synthetic}}\nchain: {zzz: 1}\n") == [
        "exp.yaml:2:9: chain.zzz: unknown key "
        "(expected one of: kind, block_time_seconds, chain_id, accounts)"
    ]


def test_misspelt_section_and_missing_required_keys() -> None:
    assert problems("marke: {}\n") == [
        "exp.yaml:1:1: marke: unknown key; did you mean 'market'?",
        "exp.yaml:1:1: microgrid: missing required key",
    ]
    assert problems("microgrid:\n  feeders: {}\n") == [
        "exp.yaml:2:3: microgrid.dataset: missing required key"
    ]


def test_type_errors_name_what_was_given() -> None:
    text = (
        "microgrid: {dataset: {kind: synthetic, battery: 1, feeders: [1, 1]}}\n"
        "market: {prediction_window: 2.5, t_clear: true}\n"
        "solvers: []\n"
        "metrics: yes\n"
        "name: 'my exp'\n"
    )
    assert problems(text) == [
        "exp.yaml:1:49: microgrid.dataset.battery: expected true or false, got integer 1",
        "exp.yaml:1:65: microgrid.dataset.feeders[1]: duplicate integer 1 (also item 0)",
        "exp.yaml:2:29: market.prediction_window: expected an integer, got number 2.5",
        "exp.yaml:2:43: market.t_clear: expected an integer, got boolean true",
        "exp.yaml:3:10: solvers: must have at least 1 item",
        "exp.yaml:4:10: metrics: expected a mapping, got boolean true",
        "exp.yaml:5:7: name: 'my exp' is not valid "
        "(letters, digits, '.', '_' and '-', starting with a letter or digit)",
    ]


def test_cross_reference_errors_are_collected_together() -> None:
    text = """\
microgrid:
  dataset: {kind: transax, seed: 3, battery: true}
  feeders:
    c_ext_kw: 80.001
    overrides: [{id: 2}, {id: 2, c_ext_kw: 1}]
market:
  first_interval: 50
  last_interval: 40
  prediction_window: 2
  t_clear: 2
  solver_period_seconds: 200
solvers: [{name: a}, {name: a, engine: glpk}]
"""
    assert problems(text) == [
        "exp.yaml:2:12: microgrid.dataset.path: missing required key "
        "(kind transax reads a directory of traces)",
        "exp.yaml:2:28: microgrid.dataset.seed: only valid with kind synthetic",
        "exp.yaml:2:37: microgrid.dataset.battery: only valid with kind synthetic",
        "exp.yaml:4:15: microgrid.feeders.c_ext_kw: 80.001 kW is 20000.25 Wh per "
        "15-minute interval, not a whole number of Wh",
        "exp.yaml:5:17: microgrid.feeders.overrides[0]: sets no limit "
        "(give c_ext_kw and/or c_int_kw)",
        "exp.yaml:5:31: microgrid.feeders.overrides[1].id: feeder 2 is already overridden "
        "in overrides[0]",
        "exp.yaml:8:18: market.last_interval: must be >= market.first_interval (50)",
        "exp.yaml:10:12: market.t_clear: must be < market.prediction_window (2): at interval t "
        "the trades of t + t_clear are finalized, and offers are visible only L - 1 "
        "intervals ahead",
        "exp.yaml:11:26: market.solver_period_seconds: must be <= "
        "market.simulated_interval_seconds (120): a solver must run at least once per interval",
        "exp.yaml:12:29: solvers[1].name: duplicate solver name 'a'",
    ]


def test_dataset_selection_and_deployment_checks() -> None:
    text = """\
microgrid:
  dataset: {kind: synthetic, path: x, feeders: [1, 7], prosumers: [101, 200, 205]}
  feeders: {overrides: [{id: 3, c_ext_kw: 40}]}
market: {interval_minutes: 7, last_interval: 300}
deployment: {backend: ssh, hosts: [{name: b1, address: 10.0.0.2}, {name: b1}]}
"""
    assert problems(text) == [
        "exp.yaml:2:30: microgrid.dataset.path: only valid with kind transax",
        "exp.yaml:2:73: microgrid.dataset.prosumers[1]: 200 is not a prosumer id "
        "(feeder * 100 + n, n = 1..99)",
        "exp.yaml:2:78: microgrid.dataset.prosumers[2]: prosumer 205 is in feeder 2, "
        "which microgrid.dataset.feeders leaves out",
        # the default limits do not fit 7-minute intervals either
        "exp.yaml:3:12: microgrid.feeders.c_ext_kw: 80 kW is 9333.333333 Wh per "
        "7-minute interval, not a whole number of Wh",
        "exp.yaml:3:12: microgrid.feeders.c_int_kw: 100 kW is 11666.66667 Wh per "
        "7-minute interval, not a whole number of Wh",
        "exp.yaml:3:30: microgrid.feeders.overrides[0].id: feeder 3 is not in "
        "microgrid.dataset.feeders [1, 7]",
        "exp.yaml:3:43: microgrid.feeders.overrides[0].c_ext_kw: 40 kW is 4666.666667 Wh per "
        "7-minute interval, not a whole number of Wh",
        "exp.yaml:4:28: market.interval_minutes: must divide a day (1440 minutes)",
        "exp.yaml:4:46: market.last_interval: must be <= 205, the intervals in a day "
        "of 7-minute intervals",
        "exp.yaml:5:67: deployment.hosts[1]: ssh hosts need an address",
        "exp.yaml:5:74: deployment.hosts[1].name: duplicate host name 'b1'",
    ]


def test_yaml_syntax_and_duplicate_keys() -> None:
    assert problems("microgrid: [\n") == [
        "exp.yaml:2:1: (root): invalid YAML: while parsing a flow node: "
        "expected the node content, but found '<stream end>'"
    ]
    assert problems("seed: 1\nseed: 2\nmicrogrid: {dataset: {kind: synthetic}}\n") == [
        "exp.yaml:2:1: seed: duplicate key (the earlier one would be ignored)"
    ]
    assert problems("") == ["exp.yaml:1:1: (root): expected a mapping, got null"]


def test_errors_in_overridden_values_point_at_the_override() -> None:
    text = "microgrid: {dataset: {kind: synthetic}}\n"
    overrides = (
        "market.prediction_window=1",
        "solvers[0].engine=glpkk",
        "chain.kind=geth",
        "foo",
        "solvers.3.name=x",
        "microgrid.dataset.kind.x=1",
    )
    assert problems(text, overrides) == [
        "--set chain.kind=geth: chain.kind: must be one of 'anvil', got string 'geth'",
        "--set foo: expected KEY=VALUE, e.g. market.clock=lockstep",
        "--set market.prediction_window=1: market.prediction_window: must be >= 2, got 1",
        "--set microgrid.dataset.kind.x=1: microgrid.dataset.kind.x: "
        "cannot set a key inside microgrid.dataset.kind: it is not a mapping",
        "--set solvers.3.name=x: solvers[3].name: index 3 is out of range: solvers has 1 items",
        "--set solvers[0].engine=glpkk: solvers[0].engine: must be one of 'glpk', 'highs', "
        "got string 'glpkk'; did you mean 'glpk'?",
    ]


def test_interpolation_errors_are_reported_once_at_the_value() -> None:
    text = "seed: ${SEED}\nname: ${\nmicrogrid: {dataset: {kind: synthetic}}\n"
    assert problems(text) == [
        "exp.yaml:1:7: seed: variable SEED is not set (write ${SEED:-default} for a default)",
        "exp.yaml:2:7: name: invalid interpolation in '${': use ${NAME} or ${NAME:-default}",
    ]


def test_file_name_must_make_a_valid_default_name(tmp_path: Path) -> None:
    path = tmp_path / "my spec.yaml"
    path.write_text("microgrid: {dataset: {kind: synthetic}}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path, env={})
    assert caught.value.problems == [
        f"{path}:1:1: name: the file name gives 'my spec', not a valid experiment name "
        "(letters, digits, '.', '_' and '-', starting with a letter or digit); "
        "set name: explicitly"
    ]
