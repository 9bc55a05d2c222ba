"""The one exception root of the `market` package (it must not import `orchestrator`)."""

from __future__ import annotations


class MarketError(Exception):
    """A market problem cannot be solved or replayed: malformed input, solver failure,
    or a rounded solution that could not be made feasible."""
