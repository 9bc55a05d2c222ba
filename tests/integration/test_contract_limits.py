"""The contract's verification at the edges of its encoding, on a real anvil: energies,
prices and feeder limits of 2^64 - 1, sums above 2^64 (per offer, per feeder, the
objective), ids of 2^32 - 1, intervals up to 2^16 - 1. Each solution's answer (the
objective, or the custom error with its arguments) equals agents.solver.onchain's
prediction, and market.verify reports the same rule; a submission of sums above 2^64
becomes the candidate, and a copy of it reverts NotBetter with those sums."""

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
from agents.solver.onchain import contract_revert
from market.types import Feeder, Kind, Problem, Solution, Trade
from market.verify import verify
from tests.integration.test_contract_workflow import (  # fixtures, shared with the workflow
    REVERT_GAS,
    Harness,
    anvil_log_on_failure,  # noqa: F401
    node,  # noqa: F401
)

M64, M32 = 2**64 - 1, 2**32 - 1
FIRST, LAST = 65_530, 65_534  # lastInterval < 2^16 - 1
A, B = 1, M32  # feeder ids; B's internal limit is one Wh below the maximum
FEEDERS = (Feeder(A, M64, M64), Feeder(B, M64, M64 - 1))
OFFERS = (  # (feeder, kind, energy, price); every one over FIRST..LAST; ids 1..
    (A, Kind.SELL, M64, 0),  # 1
    (B, Kind.BUY, M64, M64),  # 2
    (B, Kind.SELL, M64 - 1, M64),  # 3
    (A, Kind.BUY, M64, M64 - 1),  # 4
    (A, Kind.SELL, M64, 0),  # 5
    (B, Kind.BUY, M64, M64),  # 6
)
T0, T1 = FIRST, FIRST + 1


def T(seller: int, buyer: int, interval: int, energy: int, price: int) -> Trade:
    return Trade(seller, buyer, interval, energy, price)


CASES = {
    "feasible, objective above 2^64": [T(1, 2, T0, M64 - 1, 7), T(5, 6, T1, M64 - 1, M64)],
    "maximal price": [T(3, 2, T0, 5, M64)],
    "feeder internal limit by one Wh": [T(1, 2, T0, M64, 0)],
    "sell sum above 2^64": [T(1, 2, T0, M64 - 1, 0), T(1, 4, T0, 2, M64 - 1)],
    "buy sum above 2^64": [T(1, 2, T0, M64 - 2, 0), T(3, 2, T0, M64 - 1, M64)],
    "feeder sum above 2^64": [T(1, 2, T0, M64 - 2, 0), T(5, 6, T0, M64, 0)],
    "price above the buyer's maximum": [T(1, 4, T0, 1, M64)],
    "seller above buyer at the top": [T(3, 4, T0, 1, M64 - 1)],
    "largest unknown id": [T(1, M32, T0, 1, 0)],
    "interval 2^16 - 1": [T(1, 2, 2**16 - 1, 1, 0)],
    "zero energy": [T(1, 2, T1, 0, M64)],
}


@pytest.fixture(scope="module")
def market(node: Anvil) -> Iterator[tuple[Harness, Problem]]:  # noqa: F811
    w3 = node.web3()
    dso = Sender(w3, Account.create())
    params = MarketParams(
        first_interval=FIRST,
        last_interval=LAST,
        t_clear=1,
        interval_seconds=3600,
        epoch=latest_timestamp(w3) - 60,  # FIRST's deadline is an hour away
    )
    h = Harness(w3, deploy_market(w3, dso, FEEDERS, params), dso, params)
    for feeder, kind, energy, price in OFFERS:
        who = h.anon(feeder, kind, energy, FIRST, LAST, balance=energy * price)
        assert h.post(who, kind, energy, FIRST, LAST, price)
    offers = tuple(
        e.offer for e in h.market.events(0, types=[OfferPosted]) if isinstance(e, OfferPosted)
    )
    assert [(o.energy, o.price) for o in offers] == [(e, p) for _, _, e, p in OFFERS]
    yield h, Problem(FEEDERS, offers, (), h.market.next_finalize())


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_answer_at_the_limits_is_the_predicted_one(
    market: tuple[Harness, Problem], case: str
) -> None:
    h, problem = market
    solution = Solution(tuple(CASES[case]))
    predicted = contract_revert(problem, solution)
    reported = {v.kind for v in verify(problem, solution)}
    if predicted is None:
        assert not reported
        assert h.market.check_solution(list(solution.trades)) == solution.objective
        return
    assert predicted.kind in reported
    with pytest.raises(ContractRevert) as info:
        h.market.check_solution(list(solution.trades))
    assert (info.value.name, info.value.params) == (predicted.error, dict(predicted.args))


def test_sums_above_2_64_are_accepted_and_copies_refused(market: tuple[Harness, Problem]) -> None:
    h, _ = market
    trades = CASES["feasible, objective above 2^64"]
    total = sum(t.energy for t in trades)
    assert total > M64
    h.market.submit_solution(h.sender(), trades).wait()
    assert h.market.candidate().remaining_objective == total
    with pytest.raises(ContractRevert) as info:
        h.market.submit_solution(h.sender(), trades, gas=REVERT_GAS).wait()
    assert (info.value.name, info.value.params) == (
        "NotBetter",
        {"objective": total, "candidateObjective": total},
    )
