"""Solver behaviours: what a solver does with the solution it computed.

A behaviour is a small strategy object: given the problem, the solver's own
optimal result and the contract candidate's remaining objective, it decides
what (if anything) to submit. "honest" is the paper's solver (section 5.2.2):
submit the optimum iff it beats the candidate. Adversarial behaviours
(infeasible, inferior, late) plug in here later via `BEHAVIOURS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from agents.common.errors import ConfigError
from market.solve import SolveResult
from market.types import Problem, Solution


@dataclass(frozen=True)
class Decision:
    """Submit `solution` (after `delay_seconds`), or skip when it is None."""

    solution: Solution | None
    reason: str
    delay_seconds: float = 0.0

    @property
    def submit(self) -> bool:
        return self.solution is not None


class Behaviour(Protocol):
    name: str

    def decide(self, problem: Problem, result: SolveResult, candidate_objective: int) -> Decision:
        """`candidate_objective`: Wh of the contract candidate's trades in the
        intervals that are still free (>= problem.free_from)."""
        ...


class Honest:
    """Submit the optimal integer solution iff its objective is strictly
    greater than the candidate's remaining objective (the contract keeps the
    candidate on ties, so an equal submission would only burn gas)."""

    name = "honest"

    def decide(self, problem: Problem, result: SolveResult, candidate_objective: int) -> Decision:
        ours = result.solution.objective
        if ours > candidate_objective:
            return Decision(result.solution, f"objective {ours} > candidate {candidate_objective}")
        return Decision(None, f"objective {ours} <= candidate {candidate_objective}")


BEHAVIOURS: dict[str, Callable[[], Behaviour]] = {"honest": Honest}


def make_behaviour(name: str) -> Behaviour:
    factory = BEHAVIOURS.get(name)
    if factory is None:
        known = ", ".join(sorted(BEHAVIOURS))
        raise ConfigError(f"behaviour: unknown solver behaviour {name!r} (known: {known})")
    return factory()
