"""The honest behaviour submits exactly when its objective beats the candidate."""

from __future__ import annotations

import pytest

from agents.common.errors import ConfigError
from agents.solver.behaviour import Honest, make_behaviour
from market.solve import SolveResult, solve
from market.types import Feeder, Kind, Offer, Problem


def _result() -> tuple[Problem, SolveResult]:
    problem = Problem(
        feeders=(Feeder(1, c_ext=10_000, c_int=10_000),),
        offers=(Offer(1, 1, Kind.SELL, 700, 2, 2, 10), Offer(2, 1, Kind.BUY, 500, 2, 3, 30)),
        free_from=2,
    )
    return problem, solve(problem, "highs")


def test_honest_submits_only_a_strictly_better_solution() -> None:
    problem, result = _result()
    assert result.solution.objective == 500
    honest = make_behaviour("honest")
    assert isinstance(honest, Honest)
    better = honest.decide(problem, result, candidate_objective=499)
    assert better.submit and better.solution == result.solution
    assert better.delay_seconds == 0.0
    tie = honest.decide(problem, result, candidate_objective=500)
    assert not tie.submit and tie.solution is None
    # the honest path is not an adversarial action: nothing recorded, one submission
    assert not better.adversarial and better.solutions == (result.solution,)
    assert better.expect is None and tie.solutions == ()


def test_unknown_behaviour_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="honest"):
        make_behaviour("greedy")
    with pytest.raises(ConfigError, match="options: unknown option 'count' for honest"):
        make_behaviour("honest", {"count": 2})
