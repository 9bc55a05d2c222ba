"""Frozen dataclasses <-> JSON, generically: the one (de)serialiser of the run contract.

`to_plain(obj)` turns a dataclass into JSON-ready data (every field, enums as their
values, paths as strings); `from_plain(cls, data)` builds `cls` back from such data,
checking each value against the field's type hint. Errors are `ConfigError`s that
name the bad key as a dotted path (`prosumers.0.offers.1.energy_wh: expected int`);
unknown keys are errors too (the writer and the reader share the classes, so an
unknown key is a bug or a version mismatch). A class checks what types cannot say
in `__post_init__`, raising ConfigError; the path of the object is put in front.

Supported hints: int, float, str, bool, Path, Any, Literal[...], Enum subclasses,
X | None, tuple[X, ...], Mapping[K, V] / dict[K, V] (int keys from JSON strings),
nested dataclasses (also with kw_only fields and inheritance).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import types
import typing
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from agents.common.errors import ConfigError

T = TypeVar("T")

_KEY_PATH = re.compile(r"^[A-Za-z_][\w.]*: ")


_PLAIN = frozenset({int, str, float, bool, type(None)})  # exact types: an IntEnum is no int here


_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def _field_names(cls: type) -> tuple[str, ...] | None:
    """The fields of dataclass `cls` (None: not a dataclass), once per class: the
    orchestrator writes the configs of hundreds of hosts and their offers at bring-up."""
    if cls not in _FIELD_NAMES:
        dc = dataclasses.is_dataclass(cls)
        _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls)) if dc else None
    return _FIELD_NAMES[cls]


def to_plain(value: Any) -> Any:
    """JSON-ready data of a dataclass (recursively)."""
    if type(value) in _PLAIN:
        return value
    names = None if isinstance(value, type) else _field_names(type(value))
    if names is not None:
        return {name: to_plain(getattr(value, name)) for name in names}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def to_json(value: Any) -> str:
    """One line of compact JSON: json's C encoder (an indented dump is written by its
    pure-Python one, 6x slower: 0.4 of the 1.3 CPU-s the configs of a 10x run cost)."""
    return json.dumps(to_plain(value), separators=(",", ":")) + "\n"


def from_plain(cls: type[T], data: Any, where: str = "") -> T:
    """An instance of dataclass `cls` from plain data; ConfigError naming the key."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected object, got {_name(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        import difflib  # for a mistake only: a host's start does without it

        close = difflib.get_close_matches(str(unknown[0]), list(fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{_join(where, str(unknown[0]))}: unknown key {unknown[0]!r}{hint}")
    hints = _hints(typing.cast(type, cls))
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        path = _join(where, name)
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], path)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{path}: missing")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if not where:
            raise
        message = str(exc)
        sep = "." if _KEY_PATH.match(message) else ": "
        raise ConfigError(f"{where}{sep}{message}") from exc


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _expected(what: str, value: Any, path: str) -> ConfigError:
    return ConfigError(f"{path}: expected {what}, got {value!r}")


def _convert(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        inner = [a for a in args if a is not type(None)]
        if value is None and len(inner) < len(args):
            return None
        if len(inner) != 1:
            raise ConfigError(f"{path}: unsupported type {hint}")
        if value is None:
            raise _expected(_describe(inner[0]), value, path)
        try:
            return _convert(inner[0], value, path)
        except ConfigError as exc:
            raise _expected(f"{_describe(inner[0])} or null", value, path) from exc
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
            raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(str, allowed))}")
        return value
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {_name(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}.{i}") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{path}: expected {len(args)} items, got {len(value)}")
        return tuple(
            _convert(a, v, f"{path}.{i}") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin in (dict, Mapping):
        key_type, item_type = typing.get_args(hint)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected object, got {_name(value)}")
        return {
            _key(key_type, k, f"{path}.{k}"): _convert(item_type, v, f"{path}.{k}")
            for k, v in value.items()
        }
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_plain(hint, value, path)
    return _scalar(hint, value, path)


def _scalar(hint: Any, value: Any, path: str) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise _expected("bool", value, path)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _expected("int", value, path)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _expected("float", value, path)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _expected("str", value, path)
        return value
    if hint is Path:
        if not isinstance(value, str):
            raise _expected("path string", value, path)
        return Path(value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            known = ", ".join(str(m.value) for m in hint)
            raise ConfigError(f"{path}: {value!r} is not one of {known}") from None
    raise ConfigError(f"{path}: unsupported type {hint}")


def _key(hint: Any, key: Any, path: str) -> Any:
    """Mapping keys: JSON object keys are strings, int keys are written as digits."""
    if hint is int and isinstance(key, str):
        try:
            return int(key)
        except ValueError:
            raise _expected("an integer key", key, path) from None
    return _convert(hint, key, path)


def _describe(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint)
