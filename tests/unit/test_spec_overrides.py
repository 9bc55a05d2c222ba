"""`${VAR}` interpolation from an explicit env mapping, and `--set` overrides."""

from __future__ import annotations

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec import parse_spec
from orchestrator.spec.interpolate import SubstitutionError, substitute
from orchestrator.spec.overrides import parse_key

MINIMAL = "microgrid:\n  dataset: {kind: synthetic}\n"


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("${A:-d}", {}, "d"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("${A-d}", {}, "d"),
        ("${A:-}", {}, ""),
        ("pre/${A}/${B:-b}/post", {"A": "a"}, "pre/a/b/post"),
        ("$$HOME and $HOME", {"HOME": "h"}, "$HOME and $HOME"),
        ("${A:-../x/y}", {}, "../x/y"),
    ],
)
def test_substitute(text: str, env: dict[str, str], expected: str) -> None:
    assert substitute(text, env) == expected


def test_substitute_problems() -> None:
    unset = substitute("${MISSING}", {})
    assert isinstance(unset, SubstitutionError)
    assert str(unset) == "variable MISSING is not set (write ${MISSING:-default} for a default)"
    broken = substitute("${1A}", {})
    assert isinstance(broken, SubstitutionError)
    assert str(broken) == "invalid interpolation in '${1A}': use ${NAME} or ${NAME:-default}"


def test_unquoted_values_are_retyped_after_interpolation_quoted_ones_are_not() -> None:
    text = (
        MINIMAL
        + "seed: ${SEED:-3}\n"
        + "name: '${NAME:-007}'\n"
        + "market:\n  prediction_window: ${L}\n  simulated_interval_seconds: ${DT:-30.5}\n"
        + "metrics:\n  prometheus:\n    enabled: ${PROM:-false}\n"
    )
    spec = parse_spec(text, env={"L": "13"})
    assert spec.seed == 3
    assert spec.name == "007"
    assert spec.market.prediction_window == 13
    assert spec.market.simulated_interval_seconds == 30.5
    assert spec.metrics.prometheus.enabled is False
    assert parse_spec(text, env={"L": "5", "SEED": "42"}).seed == 42


def test_env_mapping_is_explicit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBED_SEED_FOR_TEST", "11")
    text = MINIMAL + "seed: ${TESTBED_SEED_FOR_TEST:-1}\n"
    assert parse_spec(text, env={}).seed == 1
    assert parse_spec(text).seed == 11  # env=None: the process environment


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("market.clock", ("market", "clock")),
        ("solvers[0].engine", ("solvers", 0, "engine")),
        ("solvers.1.engine", ("solvers", 1, "engine")),
        ("a[0][2]", ("a", 0, 2)),
        ("", None),
        ("a..b", None),
        ("a[x]", None),
        ("a]", None),
    ],
)
def test_parse_key(key: str, path: tuple[str | int, ...] | None) -> None:
    assert parse_key(key) == path


def test_overrides_are_yaml_typed_and_applied_in_order() -> None:
    spec = parse_spec(
        MINIMAL,
        overrides=[
            "market.prediction_window=5",
            "market.prediction_window=7",
            "market.clock=wallclock",
            "microgrid.dataset.battery=true",
            "microgrid.dataset.prosumers=[101, 102]",
            "chain.block_time_seconds=1.5",
        ],
        env={},
    )
    assert spec.market.prediction_window == 7
    assert spec.market.clock == "wallclock"
    assert spec.microgrid.dataset.battery is True
    assert spec.microgrid.dataset.prosumers == (101, 102)
    assert spec.chain.block_time_seconds == 1.5


def test_override_values_are_not_interpolated() -> None:
    overrides = ["microgrid.dataset.kind=transax", "microgrid.dataset.path=/data/${X}"]
    spec = parse_spec(MINIMAL, overrides=overrides, env={"X": "no"})
    assert spec.microgrid.dataset.path == "/data/${X}"


def test_overrides_start_from_defaults_of_missing_sections() -> None:
    spec = parse_spec(
        MINIMAL,
        overrides=[
            "solvers[0].engine=glpk",
            "solvers[1]={name: s2}",
            "deployment.backend=docker",
            "deployment.hosts[0]={name: h1, profile: bbb}",
        ],
    )
    assert [(s.name, s.engine) for s in spec.solvers] == [("solver-1", "glpk"), ("s2", "highs")]
    assert spec.deployment.backend == "docker"
    assert [(h.name, h.profile) for h in spec.deployment.hosts] == [("h1", "bbb")]


def test_override_value_must_be_yaml() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(MINIMAL, overrides=["solvers=[{name: a}"])
    assert caught.value.problems == [
        "--set solvers=[{name: a}: solvers: value is not valid YAML: while parsing a flow "
        "sequence: expected ',' or ']', but got '<stream end>'"
    ]


def test_override_replaces_a_whole_subtree() -> None:
    text = MINIMAL + "solvers: [{name: a, engine: glpk}, {name: b}]\n"
    spec = parse_spec(text, overrides=["solvers=[{name: only}]"])
    assert [s.name for s in spec.solvers] == ["only"]
