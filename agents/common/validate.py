"""One checked value of a config mapping (shared by agents.common.config and
agents.common.adversaries)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents.common.errors import ConfigError


def typed(data: Mapping[str, Any], key: str, kind: type) -> Any:
    """data[key], which must exist and be a `kind` (a bool is not an int)."""
    if key not in data:
        raise ConfigError(f"{key}: missing")
    value = data[key]
    if kind is int and isinstance(value, bool):
        raise ConfigError(f"{key}: expected int, got bool")
    if not isinstance(value, kind):
        raise ConfigError(f"{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value
