"""agents.common.typed: the one generic (de)serialiser of the agents' config classes."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from agents.common.errors import ConfigError
from agents.common.typed import from_plain, to_json, to_plain
from market.types import Kind


@dataclass(frozen=True)
class Inner:
    n: int
    x: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Outer:
    name: str
    kind: Kind
    mode: Literal["a", "b"] = "a"
    path: Path = Path(".")
    limit: int | None = None
    flag: bool = False
    items: tuple[Inner, ...] = ()
    by_id: Mapping[int, int] = field(default_factory=dict)
    extra: Any = None


SAMPLE = Outer(
    name="o",
    kind=Kind.BUY,
    mode="b",
    path=Path("/tmp/x"),
    limit=3,
    flag=True,
    items=(Inner(1, 2.5), Inner(2)),
    by_id={7: 70},
    extra={"free": [1]},
)


def test_round_trip_through_json() -> None:
    plain = json.loads(to_json(SAMPLE))
    assert plain["kind"] == 1 and plain["path"] == "/tmp/x" and plain["by_id"] == {"7": 70}
    assert from_plain(Outer, plain) == SAMPLE
    assert from_plain(Outer, to_plain(SAMPLE)) == SAMPLE
    assert from_plain(Outer, {"name": "o", "kind": 0}) == Outer(name="o", kind=Kind.SELL)


def test_plain_data_has_plain_types_and_one_compact_line() -> None:
    plain = to_plain(SAMPLE)
    assert type(plain["kind"]) is int  # an IntEnum member becomes its value
    assert type(plain["items"][0]["n"]) is int and plain["items"][1] == {"n": 2, "x": 0.0}
    assert to_plain(Inner) is Inner  # a class is not data
    text = to_json(SAMPLE)
    assert text.count("\n") == 1 and ", " not in text  # json's C encoder, no indent
    assert json.loads(text) == json.loads(json.dumps(plain, indent=1))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": 3}, "name: expected str, got 3"),
        ({"kind": 5}, "kind: 5 is not one of 0, 1"),
        ({"mode": "c"}, "mode: 'c' is not one of a, b"),
        ({"limit": "3"}, "limit: expected int or null, got '3'"),
        ({"flag": 1}, "flag: expected bool, got 1"),
        ({"items": [{"n": True}]}, "items.0.n: expected int, got True"),
        ({"items": [{"n": 1, "y": 2}]}, "items.0.y: unknown key 'y'"),
        ({"items": {"n": 1}}, "items: expected a list, got dict"),
        ({"by_id": {"seven": 1}}, "by_id.seven: expected an integer key, got 'seven'"),
        ({"nme": "o"}, "nme: unknown key 'nme' (did you mean 'name'?)"),
    ],
)
def test_errors_name_the_key(change: dict[str, Any], message: str) -> None:
    data = {"name": "o", "kind": 0, **change}
    with pytest.raises(ConfigError, match=re.escape(message)):
        from_plain(Outer, data)


def test_missing_keys_and_non_objects() -> None:
    with pytest.raises(ConfigError, match="kind: missing"):
        from_plain(Outer, {"name": "o"})
    with pytest.raises(ConfigError, match="Outer: expected object, got list"):
        from_plain(Outer, [])
