"""The energy trading problem of the paper (sections 4 and 5): pure domain code.

`market` imports neither `agents` nor `orchestrator`. The domain types are imported
eagerly; `verify`, `solve`, `replay` and friends lazily on first use, so that
`import market.types` stays light (the solvers pull in numpy, scipy and HiGHS).
"""

from __future__ import annotations

import importlib
from typing import Any

from market.errors import MarketError
from market.types import Feeder, Kind, Offer, Problem, Solution, Trade

_LAZY = {
    "verify": "market.verify",
    "objective": "market.verify",
    "Violation": "market.verify",
    "ViolationKind": "market.rules",
    "solve": "market.solve",
    "SolveResult": "market.solve",
    "SolveStatus": "market.solve",
    "ENGINES": "market.solve",
    "midpoint_price": "market.solve",
    "replay": "market.replay",
    "ReplayResult": "market.replay",
    "extended_problem": "market.replay",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'market' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "Feeder",
    "Kind",
    "MarketError",
    "Offer",
    "Problem",
    "Solution",
    "Trade",
    *sorted(_LAZY),
]
