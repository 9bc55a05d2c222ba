"""Every rule the contract checks, at least RUNS times, with its arguments, on a real anvil.

One market (a feeder per kind of limit: small c_ext, small c_int, large both; offers
priced and ranged so that every rule can break; intervals 1 and 2 finalized). Random
feasible bases (seeded) are turned into infeasible solutions of each rule by the
adversary's constructions (agents.solver.adversary); each distinct solution is checked
on chain (checkSolution, a call) and the custom error, arguments included, must be the
one agents.solver.onchain.contract_revert predicts."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

import pytest
from eth_account import Account

from agents.chain.contract import deploy_market
from agents.chain.errors import ContractRevert
from agents.chain.events import OfferPosted
from agents.chain.node import Anvil, latest_timestamp
from agents.chain.tx import Sender
from agents.common.adversaries import ONCHAIN_VIOLATIONS
from agents.common.market import MarketParams
from agents.solver import adversary
from agents.solver.onchain import contract_revert
from market.types import Feeder, Kind, Offer, Problem, Solution, Trade
from market.verify import verify
from tests.integration.test_contract_workflow import (  # fixtures, shared with the workflow
    Harness,
    anvil_log_on_failure,  # noqa: F401
    node,  # noqa: F401
)

RUNS = 30  # solutions per rule
BASES = 600  # random feasible bases tried at most
FEEDERS = (Feeder(1, 15, 1_000), Feeder(2, 1_000, 12), Feeder(4, 1_000, 1_000))
OFFERS = (  # (feeder, kind, energy, start, end, price); ids 1.. in this order
    (4, Kind.SELL, 60, 1, 6, 5),
    (4, Kind.BUY, 60, 1, 6, 9),
    (1, Kind.SELL, 40, 1, 6, 3),
    (1, Kind.BUY, 40, 1, 6, 8),
    (2, Kind.SELL, 50, 1, 6, 4),
    (2, Kind.BUY, 50, 1, 6, 10),
    (4, Kind.SELL, 30, 4, 5, 12),  # priced above every buyer
    (4, Kind.BUY, 30, 3, 3, 7),  # interval 3 only
    (1, Kind.SELL, 25, 3, 6, 6),
    (2, Kind.BUY, 25, 5, 6, 9),
)
FINALIZED = 2


@pytest.fixture(scope="module")
def market(node: Anvil) -> Iterator[tuple[Harness, Problem]]:  # noqa: F811
    w3 = node.web3()
    dso = Sender(w3, Account.create())
    params = MarketParams(
        first_interval=1,
        last_interval=6,
        t_clear=1,
        interval_seconds=3600,
        epoch=latest_timestamp(w3) - 60,
    )
    h = Harness(w3, deploy_market(w3, dso, FEEDERS, params), dso, params)
    for feeder, kind, energy, start, end, price in OFFERS:
        who = h.anon(feeder, kind, energy, start, end, balance=energy * price)
        assert h.post(who, kind, energy, start, end, price)
    h.finalize_through(FINALIZED)  # no candidate: nothing traded, free from 3
    offers = tuple(
        e.offer for e in h.market.events(0, types=[OfferPosted]) if isinstance(e, OfferPosted)
    )
    yield h, Problem(FEEDERS, offers, (), h.market.next_finalize())


def _base(problem: Problem, rng: random.Random) -> Solution:
    """A random feasible solution: plausible trades kept while market.verify accepts."""
    free = problem.free_from or 0
    pairs = [
        (s, b, t)
        for s in problem.offers
        for b in problem.offers
        if (s.kind, b.kind) == (Kind.SELL, Kind.BUY) and s.price <= b.price
        for t in range(max(s.start, b.start, free), min(s.end, b.end) + 1)
    ]
    kept: list[Trade] = []
    for s, b, t in rng.sample(pairs, rng.randint(0, 5)):
        trade = Trade(s.id, b.id, t, rng.randint(1, 12), rng.randint(s.price, b.price))
        if not verify(problem, Solution((*kept, trade))):
            kept.append(trade)
    return Solution(tuple(kept))


def _solutions(problem: Problem) -> dict[str, list[Solution]]:
    """Up to RUNS distinct solutions per on-chain rule, by the predicted revert."""
    rng = random.Random(14)
    found: dict[str, dict[tuple[Trade, ...], Solution]] = {k.value: {} for k in ONCHAIN_VIOLATIONS}
    for _ in range(BASES):
        base = _base(problem, rng)
        for kind in ONCHAIN_VIOLATIONS:
            if len(found[kind.value]) >= RUNS:
                continue
            built = adversary.infeasible(problem, base, 0, kind)
            if built is not None:
                found[kind.value][tuple(sorted(built.solution.trades))] = built.solution
        if all(len(f) >= RUNS for f in found.values()):
            break
    return {kind: list(f.values()) for kind, f in found.items()}


def _offer(problem: Problem, offer_id: int) -> Offer:
    return next(o for o in problem.offers if o.id == offer_id)


def test_every_rule_reverts_with_its_arguments(market: tuple[Harness, Problem]) -> None:
    h, problem = market
    assert _offer(problem, 7).price > max(o.price for o in problem.offers if o.kind is Kind.BUY)
    counts: Counter[str] = Counter()
    for kind, solutions in _solutions(problem).items():
        for solution in solutions:
            predicted = contract_revert(problem, solution)
            assert predicted is not None and predicted.kind.value == kind
            with pytest.raises(ContractRevert) as info:
                h.market.check_solution(list(solution.trades))
            got = (info.value.name, info.value.params)
            assert got == (predicted.error, dict(predicted.args)), solution
            counts[kind] += 1
    assert {k.value for k in ONCHAIN_VIOLATIONS} == set(counts)
    assert min(counts.values()) >= RUNS, counts
