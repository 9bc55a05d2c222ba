"""Trimming the solver's solution to what one submission can carry (agents.solver.trim)."""

from __future__ import annotations

import random

from agents.solver.trim import BLOCK_GAS_LIMIT, SUBMIT_GAS_PER_TRADE, max_trades, trim
from market.solve import solve
from market.types import Feeder, Kind, Offer, Problem, Solution, Trade
from market.verify import verify

# F1 may export at most 5 Wh net; F2 is unconstrained
FEEDERS = (Feeder(1, 5, 10**6), Feeder(2, 10**6, 10**6))
OFFERS = (
    Offer(1, 1, Kind.SELL, 100, 1, 2, 10),
    Offer(2, 2, Kind.SELL, 100, 1, 2, 10),
    Offer(3, 2, Kind.BUY, 100, 1, 2, 30),
    Offer(4, 1, Kind.BUY, 100, 1, 2, 30),
)
PROBLEM = Problem(FEEDERS, OFFERS, (), 1)
# F1 exports 12 and imports 9 in interval 1 (net 3 <= 5)
SOLUTION = Solution(
    (
        Trade(1, 3, 1, 12, 20),
        Trade(2, 4, 1, 9, 20),
        Trade(2, 3, 1, 7, 20),
        Trade(2, 3, 2, 6, 20),
        Trade(1, 3, 2, 2, 20),
    )
)


def test_a_solution_within_the_limit_is_kept_as_it_is() -> None:
    assert not verify(PROBLEM, SOLUTION)
    assert trim(PROBLEM, SOLUTION, 5) is SOLUTION


def test_the_largest_trades_are_kept_while_the_feeder_rules_hold() -> None:
    kept = trim(PROBLEM, SOLUTION, 3)
    assert not verify(PROBLEM, kept)
    # 12 Wh out of F1 alone breaks its c_ext (5): skipped; so is 9 Wh into F1 on its own
    assert kept.trades == (Trade(2, 3, 1, 7, 20), Trade(1, 3, 2, 2, 20), Trade(2, 3, 2, 6, 20))
    assert len(trim(PROBLEM, SOLUTION, 1).trades) == 1


def test_trimming_is_deterministic_whatever_the_order_of_the_trades() -> None:
    shuffled = list(SOLUTION.trades)
    random.Random(7).shuffle(shuffled)
    assert trim(PROBLEM, Solution(tuple(shuffled)), 3) == trim(PROBLEM, SOLUTION, 3)


def test_an_optimum_above_the_limit_is_trimmed_to_a_feasible_one() -> None:
    sellers = tuple(Offer(i, 1 + i % 2, Kind.SELL, 3 + i % 4, 1, 3, 10) for i in range(1, 41))
    buyers = tuple(Offer(100 + i, 2 - i % 2, Kind.BUY, 1 + i % 5, 1, 3, 40) for i in range(60))
    feeders = (Feeder(1, 20, 10**6), Feeder(2, 20, 10**6))
    problem = Problem(feeders, sellers + buyers, (), 1)
    optimum = solve(problem, "highs", last_interval=3).solution
    assert len(optimum.trades) > 25
    kept = trim(problem, optimum, 25)
    assert len(kept.trades) == 25 and not verify(problem, kept)
    energies = sorted((t.energy for t in optimum.trades), reverse=True)
    assert kept.objective >= sum(energies[:25]) - 2 * max(energies)


def test_the_limit_fits_a_block() -> None:
    n = max_trades()
    assert n > 5_000 and n * SUBMIT_GAS_PER_TRADE < BLOCK_GAS_LIMIT
    assert max_trades(100_000) == 0
