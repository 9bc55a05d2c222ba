"""submitSolution's pre-check on a real anvil (issue 14, front-running): while a candidate
has trades left, a solution whose energies do not add up to the candidate's remaining
objective + minImprovement reverts NotBetter before the verification (so a copy, or an
infeasible solution, costs no verification); with no candidate every rule is still
named. agents.solver.onchain.submission_error predicts each answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account

from agents.chain.contract import deploy_market
from agents.chain.errors import ContractRevert
from agents.chain.events import OfferPosted
from agents.chain.node import Anvil, latest_timestamp
from agents.chain.tx import Sender
from agents.common.market import MarketParams
from agents.solver.onchain import submission_error
from market.types import Feeder, Kind, Problem, Solution, Trade
from tests.integration.test_contract_workflow import (  # fixtures, shared with the workflow
    REVERT_GAS,
    Harness,
    anvil_log_on_failure,  # noqa: F401
    node,  # noqa: F401
)

FEEDERS = (Feeder(1, 1_000, 1_000),)
MIN_IMPROVEMENT = 10


def T(seller: int, buyer: int, interval: int, energy: int, price: int = 15) -> Trade:
    return Trade(seller, buyer, interval, energy, price)


@pytest.fixture
def market(node: Anvil) -> Iterator[tuple[Harness, Problem]]:  # noqa: F811
    """A market with minImprovement 10 Wh, one sell and one buy offer; hour-long intervals,
    the first one's deadline an hour away."""
    w3 = node.web3()
    dso = Sender(w3, Account.create())
    params = MarketParams(
        first_interval=3,
        last_interval=6,
        t_clear=1,
        interval_seconds=3600,
        epoch=latest_timestamp(w3) - 60,
        min_improvement_wh=MIN_IMPROVEMENT,
    )
    h = Harness(w3, deploy_market(w3, dso, FEEDERS, params), dso, params)
    assert h.market.params().min_improvement_wh == MIN_IMPROVEMENT
    for kind, energy, price in ((Kind.SELL, 500, 10), (Kind.BUY, 1_000, 20)):
        who = h.anon(1, kind, energy, 3, 6, balance=energy * price)
        h.post(who, kind, energy, 3, 6, price)
    offers = tuple(
        e.offer for e in h.market.events(0, types=[OfferPosted]) if isinstance(e, OfferPosted)
    )
    yield h, Problem(FEEDERS, offers, (), h.market.next_finalize())


def _answer(h: Harness, trades: list[Trade]) -> ContractRevert | None:
    """Submit; the revert (state unchanged) or None when it became the candidate."""
    before = h.state()
    try:
        h.market.submit_solution(h.sender(), trades, gas=REVERT_GAS).wait()
    except ContractRevert as exc:
        assert h.state() == before
        return exc
    return None


def _expect(
    h: Harness, problem: Problem, trades: list[Trade], name: str | None, **params: int
) -> None:
    remaining = h.market.candidate().remaining_objective
    predicted = submission_error(problem, Solution(tuple(trades)), remaining, MIN_IMPROVEMENT)
    assert predicted == name
    got = _answer(h, trades)
    assert (got.name if got else None) == name, str(got)
    if got is not None:
        for key, value in params.items():
            assert got.params[key] == value, (key, got.params)


def test_no_candidate_every_rule_is_named(market: tuple[Harness, Problem]) -> None:
    h, problem = market
    _expect(h, problem, [T(1, 99, 4, 1)], "UnknownOffer", offerId=99)
    _expect(h, problem, [T(1, 2, 4, 501)], "SellEnergyExceeded", offerId=1, traded=501)
    _expect(h, problem, [], "NotBetter", objective=0, candidateObjective=0)
    _expect(h, problem, [T(1, 2, 4, 1)], None)  # any objective beats no candidate


def test_with_a_candidate_the_objective_is_checked_first(market: tuple[Harness, Problem]) -> None:
    h, problem = market
    a = [T(1, 2, 4, 60), T(1, 2, 5, 40)]
    _expect(h, problem, a, None)
    assert h.market.candidate().remaining_objective == 100
    # a copy of the candidate (what a front-runner leaves the original with)
    _expect(h, problem, a, "NotBetter", objective=100, candidateObjective=100)
    # better, but by less than minImprovement
    _expect(h, problem, [T(1, 2, 4, 60), T(1, 2, 5, 49)], "NotBetter", objective=109)
    # infeasible and not better: refused unverified, as NotBetter, not UnknownOffer
    _expect(h, problem, [*a, T(1, 99, 6, 5)], "NotBetter", objective=105)
    # infeasible and better: the verification names the rule
    _expect(h, problem, [*a, T(1, 99, 6, 10)], "UnknownOffer", offerId=99)
    _expect(h, problem, [T(1, 2, 4, 501)], "SellEnergyExceeded", offerId=1, traded=501)
    # better by exactly minImprovement: the new candidate
    _expect(h, problem, [T(1, 2, 4, 60), T(1, 2, 5, 50)], None)
    assert h.market.candidate().remaining_objective == 110
