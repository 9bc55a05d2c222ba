"""The contract's reverts against the catalogue of market rules on a real anvil: for one
solution breaking each on-chain rule (test_contract_adversarial's cases), the revert is
the rule's error, and its arguments name what market.verify names.

Argument convention of the catalogue: `seller`, `buyer` are the offending trade's offers,
`offerId` the offer at fault, `feeder` and `interval` where the rule is broken; the
amount/limit arguments are checked against verify's message values.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from agents.chain.errors import ContractRevert
from agents.solver.onchain import contract_verdict
from market import rules
from market.types import Problem, Solution, Trade
from market.verify import Violation, verify
from tests.integration.test_contract_adversarial import INFEASIBLE, market  # noqa: F401
from tests.integration.test_contract_workflow import (
    Harness,
    anvil_log_on_failure,  # noqa: F401
    node,  # noqa: F401
)


def _named(v: Violation) -> dict[str, Any]:
    """What the violation names, under the catalogue's argument names."""
    named: dict[str, Any] = {"offerId": v.offer, "feeder": v.feeder, "interval": v.interval}
    if v.trade is not None:
        named |= {"seller": v.trade.seller, "buyer": v.trade.buyer}
    return named


def _feeder_values(problem: Problem, trades: list[Trade], v: Violation) -> dict[str, Any]:
    """Amount and limit of a feeder error (amount = excess + limit), from the trades."""
    offers = {o.id: o for o in problem.offers}
    feeder = next(f for f in problem.feeders if f.id == v.feeder)
    here = [t for t in trades if t.interval == v.interval]
    sold = sum(t.energy for t in here if offers[t.seller].feeder == feeder.id)
    bought = sum(t.energy for t in here if offers[t.buyer].feeder == feeder.id)
    error = rules.RULE_OF[v.kind].error
    assert error is not None
    (amount_name, _), (limit_name, _) = error.args[2:]
    limit = feeder.c_ext if limit_name == "cExt" else feeder.c_int
    excess = rules.feeder_excess(v.kind, feeder, sold, bought)
    return {amount_name: excess + limit, limit_name: limit}


@pytest.mark.parametrize("error", sorted(INFEASIBLE))
def test_revert_arguments_name_what_verify_names(
    market: tuple[Harness, Problem],  # noqa: F811
    error: str,
) -> None:
    h, problem = market
    trades, kind = INFEASIBLE[error]
    rule = rules.RULE_OF[kind]
    assert rule.error is not None and rule.error.name == error
    with pytest.raises(ContractRevert) as info:
        h.market.check_solution(trades)
    err = info.value
    assert (err.name, err.violation) == (error, kind)
    assert list(err.params) == [name for name, _ in rule.error.args]
    found = [v for v in verify(problem, Solution(tuple(trades))) if v.kind is kind]
    expected = []
    for v in found:
        named = _named(v)
        want = {k: named[k] for k in err.params if k in named}
        if rule.stage is rules.Stage.FEEDER:
            want |= _feeder_values(problem, trades, v)
        expected.append(want)
    got = {k: err.params[k] for k in expected[0]}
    assert got in expected, (err.params, found)


def test_the_solvers_prediction_names_the_contracts_first_violation(
    market: tuple[Harness, Problem],  # noqa: F811
) -> None:
    """Every case and every pair of cases in one solution: the contract stops at the first
    violation in its order of checks (market.rules.CONTRACT_ORDER), as predicted."""
    h, problem = market
    cases = [trades for trades, _ in INFEASIBLE.values()]
    seen: Counter[str] = Counter()
    for i, first in enumerate(cases):
        for second in cases[i:]:
            trades = first if first is second else [*first, *second]
            predicted = contract_verdict(problem, Solution(tuple(trades)))
            try:
                h.market.check_solution(trades)
                got = None
            except ContractRevert as err:
                got = err.violation
            assert got is predicted, (trades, got, predicted)
            seen[str(got)] += 1
    # every rule came first somewhere (a pair may also be feasible: flows that cancel out)
    assert set(seen) - {"None"} == {str(k) for k in rules.ONCHAIN}, seen
