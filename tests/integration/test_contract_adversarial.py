"""Adversarial solvers against the contract on a real anvil: infeasible solutions of every
constraint kind are rejected with the violated rule (the same one market.verify reports),
an inferior solution never replaces a better candidate, a better one does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account

from agents.chain.contract import deploy_market
from agents.chain.events import OfferPosted
from agents.chain.node import Anvil, latest_timestamp
from agents.chain.tx import Sender
from agents.common.market import MarketParams
from market.types import Feeder, Kind, Problem, Solution, Trade
from market.verify import ViolationKind, objective, verify
from tests.integration.test_contract_workflow import (  # fixtures, shared with the workflow
    REVERT_GAS,
    Harness,
    anvil_log_on_failure,  # noqa: F401
    harness,  # noqa: F401
    node,  # noqa: F401
)

# F2 has a tight external limit, F3 a tight internal one.
FEEDERS = (Feeder(1, 1_000, 1_000), Feeder(2, 40, 1_000), Feeder(3, 1_000, 50))
OFFERS = (  # (feeder, kind, energy, start, end, price); ids 1.. in this order
    (1, Kind.SELL, 500, 3, 6, 10),  # 1
    (1, Kind.BUY, 1_000, 3, 6, 20),  # 2
    (2, Kind.BUY, 500, 3, 6, 20),  # 3
    (2, Kind.SELL, 500, 3, 6, 10),  # 4
    (3, Kind.SELL, 500, 3, 6, 10),  # 5
    (3, Kind.BUY, 500, 3, 6, 20),  # 6
    (1, Kind.SELL, 30, 5, 5, 25),  # 7: expensive, interval 5 only
    (1, Kind.BUY, 30, 4, 4, 20),  # 8: small, interval 4 only
)
# Rs > Rb: no price can lie in [Rs, Rb] either, and market.verify reports both.
ALSO_REPORTED = {"NotMatchablePrice": {ViolationKind.PRICE}}
FREE_FROM = 4  # interval 3 is finalized before the cases run


def T(seller: int, buyer: int, interval: int, energy: int, price: int = 15) -> Trade:
    return Trade(seller, buyer, interval, energy, price)


INFEASIBLE = {
    "UnknownOffer": ([T(1, 99, 4, 5)], ViolationKind.UNKNOWN_OFFER),
    "NotMatchableKind": ([T(2, 1, 4, 5)], ViolationKind.NOT_MATCHABLE_KIND),
    "NonPositiveEnergy": ([T(1, 2, 4, 0)], ViolationKind.NONPOSITIVE),
    "FinalizedInterval": ([T(1, 2, 3, 5)], ViolationKind.FINALIZED_INTERVAL),
    "NotMatchableInterval": ([T(1, 8, 5, 5)], ViolationKind.NOT_MATCHABLE_INTERVAL),
    "NotMatchablePrice": ([T(7, 2, 5, 5, 22)], ViolationKind.NOT_MATCHABLE_PRICE),
    "PriceOutOfRange": ([T(1, 2, 4, 5, 21), T(1, 2, 5, 5, 9)], ViolationKind.PRICE),
    "DuplicateTrade": ([T(1, 2, 4, 5), T(1, 2, 4, 6)], ViolationKind.DUPLICATE),
    "SellEnergyExceeded": ([T(1, 2, 4, 300), T(1, 2, 5, 201)], ViolationKind.SELL_ENERGY),
    "BuyEnergyExceeded": ([T(1, 8, 4, 31)], ViolationKind.BUY_ENERGY),
    "FeederExtOut": ([T(4, 2, 4, 41)], ViolationKind.FEEDER_EXT_OUT),
    "FeederExtIn": ([T(1, 2, 4, 10), T(1, 3, 4, 41)], ViolationKind.FEEDER_EXT_IN),
    "FeederIntConsumption": (
        [T(1, 6, 4, 26), T(4, 6, 4, 25)],
        ViolationKind.FEEDER_INT_CONSUMPTION,
    ),
    "FeederIntProduction": ([T(5, 2, 5, 30), T(5, 3, 5, 21)], ViolationKind.FEEDER_INT_PRODUCTION),
}


@pytest.fixture(scope="module")
def market(node: Anvil) -> Iterator[tuple[Harness, Problem]]:  # noqa: F811
    """One market with OFFERS posted and interval 3 finalized, shared by the cases (their
    transactions revert, so it never changes)."""
    w3 = node.web3()
    dso = Sender(w3, Account.create())
    # hour-long intervals, interval 3 finalizable now: submissions stay before 4's deadline
    params = MarketParams(
        first_interval=3,
        last_interval=6,
        t_clear=1,
        interval_seconds=3600,
        epoch=latest_timestamp(w3) - 3600,
    )
    h = Harness(w3, deploy_market(w3, dso, FEEDERS, params), dso, params)
    for feeder, kind, energy, start, end, price in OFFERS:
        who = h.anon(feeder, kind, energy, balance=energy * price)
        h.post(who, kind, energy, start, end, price)
    h.finalize_through(3)
    offers = tuple(
        e.offer for e in h.market.events(0, types=[OfferPosted]) if isinstance(e, OfferPosted)
    )
    yield h, Problem(FEEDERS, offers, (), h.market.next_finalize())


@pytest.mark.parametrize("error", sorted(INFEASIBLE))
def test_infeasible_solution_is_rejected_with_the_violated_rule(
    market: tuple[Harness, Problem], error: str
) -> None:
    h, problem = market
    trades, kind = INFEASIBLE[error]
    assert problem.free_from == FREE_FROM
    reported = {v.kind for v in verify(problem, Solution(tuple(trades)))}
    assert reported == {kind} | ALSO_REPORTED.get(error, set())
    with pytest.raises(Exception) as checked:
        h.market.check_solution(trades)
    assert getattr(checked.value, "name", None) == error, str(checked.value)
    assert checked.value.violation is kind  # type: ignore[attr-defined]
    before = h.state()
    with pytest.raises(Exception) as submitted:
        h.market.submit_solution(h.sender(), trades, gas=REVERT_GAS).wait()
    assert getattr(submitted.value, "name", None) == error
    assert h.state() == before  # never the candidate


def test_flows_in_and_out_of_a_feeder_net_out(market: tuple[Harness, Problem]) -> None:
    h, problem = market
    # F2 exports 100 and imports 100 in interval 4: each flow is above c_ext = 40, the net is 0.
    trades = [T(4, 2, 4, 100), T(1, 3, 4, 100), T(5, 6, 6, 50), T(1, 6, 5, 50)]
    assert verify(problem, Solution(tuple(trades))) == []
    assert h.market.check_solution(trades) == 300


def _submit(h: Harness, trades: list[Trade]) -> int:
    h.market.submit_solution(h.sender(), trades).wait()
    return h.market.candidate().candidate_id


def _refused(h: Harness, trades: list[Trade], name: str) -> None:
    before = h.state()
    with pytest.raises(Exception) as info:
        h.market.submit_solution(h.sender(), trades, gas=REVERT_GAS).wait()
    assert getattr(info.value, "name", None) == name, str(info.value)
    assert h.state() == before


def test_only_a_better_solution_replaces_the_candidate(harness: Harness) -> None:  # noqa: F811
    h, m = harness, harness.market
    for feeder, kind, energy, start, end, price in OFFERS[:2]:
        who = h.anon(feeder, kind, energy, balance=energy * price)
        h.post(who, kind, energy, start, end, price)
    a = [T(1, 2, 4, 60), T(1, 2, 5, 40)]
    assert _submit(h, a) == 1
    _refused(h, [T(1, 2, 4, 100)], "NotBetter")  # equal is not better
    _refused(h, [T(1, 2, 3, 90)], "NotBetter")
    _refused(h, [T(1, 2, 3, 400), T(1, 2, 4, 400)], "SellEnergyExceeded")  # big but infeasible
    c = [T(1, 2, 4, 60), T(1, 2, 5, 60), T(1, 2, 6, 5)]
    assert _submit(h, c) == 2
    state = m.candidate()
    assert (state.remaining_objective, state.head_interval) == (objective(Solution(tuple(c))), 4)

    h.finalize_through(4)  # 60 Wh of c are final; 65 Wh of it remain
    assert m.candidate().remaining_objective == 65
    _refused(h, [T(1, 2, 5, 65)], "NotBetter")
    d = [T(1, 2, 5, 66)]  # less than c in total, more than what is left of it
    assert _submit(h, d) == 3
    h.finalize_through(6)
    assert m.offer(1).remaining == 500 - 60 - 66
    assert m.candidate().remaining_objective == 0
