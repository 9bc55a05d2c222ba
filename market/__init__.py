"""The energy trading problem of the paper (sections 4 and 5): pure domain code.

`market` imports neither `agents` nor `orchestrator`.
"""

from market.types import Feeder, Kind, Offer, Problem, Solution, Trade

__all__ = ["Feeder", "Kind", "Offer", "Problem", "Solution", "Trade"]
