"""Adversarial solver behaviours without a chain: what they build from a real solve.

The contract's own verdicts are checked in tests/integration/test_adversary_solver.py;
here: every on-chain kind is built from the solver's problem, market.verify reports
that kind, the predicted contract revert names it, and the objective beats the
candidate; inferior and flood solutions are feasible and no better than they should be.
"""

from __future__ import annotations

import pytest

from agents.common.adversaries import ONCHAIN_VIOLATIONS
from agents.common.config import TraceOffer
from agents.prosumer import misbehave
from agents.prosumer.plan import AddressBatch
from agents.solver import adversary
from agents.solver.behaviour import (
    ERROR_OF_KIND,
    Flood,
    Honest,
    Inferior,
    Late,
    make_behaviour,
)
from agents.solver.onchain import contract_verdict, submission_error
from market.solve import SolveResult, solve
from market.types import Feeder, Kind, Offer, Problem, Solution, Trade
from market.verify import ViolationKind, verify

FEEDERS = (
    Feeder(1, 10_000, 10_000),
    Feeder(2, 40, 1_000),
    Feeder(3, 1_000, 50),
    Feeder(4, 40, 1_000),
)
OFFERS = tuple(
    Offer(i + 1, f, k, e, s, end, p)
    for i, (f, k, e, s, end, p) in enumerate(
        (
            (1, Kind.SELL, 2_500, 3, 6, 10),
            (1, Kind.BUY, 2_000, 3, 6, 20),
            (2, Kind.BUY, 1_000, 3, 6, 20),
            (4, Kind.SELL, 1_000, 3, 6, 10),
            (3, Kind.SELL, 1_000, 3, 6, 10),
            (3, Kind.BUY, 1_000, 3, 6, 20),
            (1, Kind.SELL, 30, 5, 5, 25),
            (1, Kind.BUY, 30, 4, 4, 20),
        )
    )
)
PROBLEM = Problem(FEEDERS, OFFERS, (), free_from=4)


@pytest.fixture(scope="module")
def result() -> SolveResult:
    return solve(PROBLEM, "highs", last_interval=6)


@pytest.mark.parametrize("kind", ONCHAIN_VIOLATIONS, ids=lambda k: k.value)
@pytest.mark.parametrize(("candidate", "min_improvement"), [(0, 1), (2_300, 1), (2_300, 50)])
def test_infeasible_of_each_kind(
    result: SolveResult, kind: ViolationKind, candidate: int, min_improvement: int
) -> None:
    assert result.solution.objective == 2_300
    built = adversary.infeasible(PROBLEM, result.solution, candidate, kind, min_improvement)
    assert built is not None
    reported = {v.kind for v in verify(PROBLEM, built.solution)}
    assert kind in reported
    assert contract_verdict(PROBLEM, built.solution) is kind
    # it passes the contract's pre-check: only the verification can stop it
    assert built.solution.objective >= candidate + (min_improvement if candidate else 1)
    error = submission_error(PROBLEM, built.solution, candidate, min_improvement)
    assert error == ERROR_OF_KIND[kind]
    # where the optimum leaves room, nothing else is broken; in this market every buyer
    # the expensive seller reaches is full, a copied trade overdraws its offers, and
    # unbalancing F4 or F3 spills over into a neighbouring feeder's limit
    inexact = {
        ViolationKind.DUPLICATE,
        ViolationKind.SELL_ENERGY,
        ViolationKind.NOT_MATCHABLE_PRICE,
        ViolationKind.FEEDER_EXT_OUT,
        ViolationKind.FEEDER_INT_PRODUCTION,
    }
    if candidate == 0 and kind not in inexact:
        assert reported == adversary.expected_kinds(kind), built.detail


def test_not_matchable_price_needs_a_seller_priced_above_a_buyer(result: SolveResult) -> None:
    cheap = Problem(FEEDERS, OFFERS[:6] + OFFERS[7:], (), free_from=4)
    opt = solve(cheap, "highs", last_interval=6).solution
    assert adversary.infeasible(cheap, opt, 0, ViolationKind.NOT_MATCHABLE_PRICE) is None


def test_any_cycles_through_every_kind(result: SolveResult) -> None:
    behaviour = make_behaviour("infeasible", {"kind": "any"})
    expected = [
        behaviour.decide(PROBLEM, result, 0).expect for _ in range(len(ONCHAIN_VIOLATIONS) + 1)
    ]
    names = [ERROR_OF_KIND[k] for k in ONCHAIN_VIOLATIONS]
    assert expected == [*names, names[0]]


def test_unknown_kind_is_skipped_when_nothing_can_be_built() -> None:
    lonely = Problem(FEEDERS, (OFFERS[0],), (), free_from=4)
    res = solve(lonely, "highs", last_interval=6)
    decision = make_behaviour("infeasible", {"kind": "NOT_MATCHABLE_PRICE"}).decide(lonely, res, 0)
    assert not decision.submit and decision.adversarial


def test_inferior_is_feasible_and_not_better(result: SolveResult) -> None:
    behaviour = Inferior()
    worse = behaviour.decide(PROBLEM, result, 0)  # no candidate: strictly below the optimum
    assert worse.solution is not None and not verify(PROBLEM, worse.solution)
    assert 0 < worse.solution.objective < 2_300 and worse.expect is None
    capped = behaviour.decide(PROBLEM, result, 1_000)
    assert capped.solution is not None and not verify(PROBLEM, capped.solution)
    assert capped.solution.objective <= 1_000 and capped.expect == "NotBetter"
    equal = behaviour.decide(PROBLEM, result, 5_000)
    assert equal.solution == result.solution and equal.expect == "NotBetter"
    never = Inferior(no_candidate="empty").decide(PROBLEM, result, 0)
    assert never.solution == Solution(()) and never.expect == "NotBetter"
    # no candidate: the minimum improvement does not apply (the worse one is accepted)
    assert behaviour.decide(PROBLEM, result, 0, min_improvement=20).expect is None


def test_honest_submits_only_what_beats_the_candidate_by_the_minimum(result: SolveResult) -> None:
    assert Honest().decide(PROBLEM, result, 2_299).submit
    assert not Honest().decide(PROBLEM, result, 2_300).submit
    assert not Honest().decide(PROBLEM, result, 2_290, min_improvement=11).submit
    assert Honest().decide(PROBLEM, result, 2_290, min_improvement=10).submit
    assert Honest().decide(PROBLEM, result, 0, min_improvement=10_000).submit  # no candidate


def test_submission_error_checks_the_objective_first_only_with_a_candidate() -> None:
    ghost = Solution((Trade(1, 99, 4, 5, 15),))  # unknown buyer, 5 Wh
    assert submission_error(PROBLEM, ghost, 0) == "UnknownOffer"
    assert submission_error(PROBLEM, ghost, 5) == "NotBetter"  # equal: refused unverified
    assert submission_error(PROBLEM, ghost, 4) == "UnknownOffer"
    assert submission_error(PROBLEM, ghost, 4, min_improvement=2) == "NotBetter"
    assert submission_error(PROBLEM, Solution(()), 0) == "NotBetter"
    fine = Solution((Trade(1, 2, 4, 5, 15),))
    assert submission_error(PROBLEM, fine, 0) is None
    assert submission_error(PROBLEM, fine, 4) is None
    assert submission_error(PROBLEM, fine, 4, min_improvement=2) == "NotBetter"


def test_scaling_falls_back_to_a_feasible_solution() -> None:
    # one trade out of feeder 2 balanced by one into it: scaling 41 and 40 Wh by 1/2
    # rounds them to 20 and 20, still balanced; every result is checked by verify
    problem = Problem(FEEDERS, OFFERS, (), free_from=4)
    opt = Solution((Trade(4, 2, 4, 40, 15), Trade(1, 3, 4, 40, 15)))
    for target in (79, 40, 3, 1, 0):
        out = adversary.scaled(problem, opt, target)
        assert not verify(problem, out) and out.objective <= target


def test_flood_makes_count_solutions_the_optimum_first(result: SolveResult) -> None:
    decision = Flood(count=4).decide(PROBLEM, result, 0)
    assert len(decision.solutions) == 4 and decision.solutions[0] == result.solution
    objectives = [s.objective for s in decision.solutions]
    assert objectives == sorted(objectives, reverse=True) and len(set(objectives)) == 4
    assert all(not verify(PROBLEM, s) for s in decision.solutions)
    assert len(Flood(count=1).decide(PROBLEM, result, 0).solutions) == 1


def test_late_is_the_honest_decision_with_a_delay(result: SolveResult) -> None:
    late = Late(delay_seconds=2.5)
    now = late.decide(PROBLEM, result, 0)
    assert now.solution == result.solution and now.delay_seconds == 2.5 and now.adversarial
    skip = late.decide(PROBLEM, result, 2_300)
    assert not skip.submit and skip.delay_seconds == 0.0


def test_misbehaving_offers() -> None:
    offers = [TraceOffer(3, 4, 300), TraceOffer(3, 3, 200)]
    batch = AddressBatch(prosumer=7, feeder=1, counter=0, offers=offers)
    beyond = misbehave.distort("beyond_assets", offers[0], batch, 10, next_finalize=3)
    assert (beyond.energy, beyond.start, beyond.end) == (800, 3, 4)  # 500 issued + 300
    past = misbehave.distort("past_interval", offers[0], batch, 10, next_finalize=3)
    assert (past.energy, past.start, past.end) == (300, 1, 2)
    with pytest.raises(ValueError, match="steal"):
        misbehave.distort("steal", offers[0], batch, 10, next_finalize=3)
