"""The catalogue of market rules against the compiled contract and against its readers.

The ABI is the committed artefact (contracts/build/Market.abi.json); which of its errors
are solution checks is read from the verifier library's source, where they are declared
(each with the market.verify kind it stands for in a comment).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import market.verify as verify
from agents.chain.errors import MALFORMED_ERRORS, VIOLATION_BY_ERROR
from agents.common.adversaries import ONCHAIN_VIOLATIONS
from agents.solver import adversary, onchain
from agents.solver.behaviour import ERROR_OF_KIND
from market import rules
from market.rules import RULES, Attack, Stage, ViolationKind
from market.types import Feeder, Kind, Offer, Problem, Solution, Trade

ROOT = Path(__file__).resolve().parents[2]
ABI = json.loads((ROOT / "contracts/build/Market.abi.json").read_text())
ABI_ERRORS = {item["name"]: item for item in ABI if item["type"] == "error"}
VERIFIER = (ROOT / "contracts/SolutionVerifier.sol").read_text()
# file-level declarations: `error Name(type name, ...); // [KIND]`
DECLARED = {
    m["name"]: m["kind"]
    for m in re.finditer(
        r"^error (?P<name>\w+)\((?P<args>[^)]*)\);(?:\s*// \[(?P<kind>\w+)\])?", VERIFIER, re.M
    )
}


def _shape(name: str) -> tuple[tuple[str, str], ...]:
    return tuple((p["name"], p["type"]) for p in ABI_ERRORS[name]["inputs"])


def test_every_solution_check_error_of_the_abi_is_in_the_catalogue_and_back() -> None:
    catalogue = {e.name: e for e in rules.verifier_errors()}
    assert DECLARED, "no error declarations found in SolutionVerifier.sol"
    assert set(DECLARED) <= set(ABI_ERRORS)
    assert set(catalogue) == set(DECLARED)
    for name, error in catalogue.items():
        assert _shape(name) == error.args, name
    assert _shape(rules.NOT_BETTER.name) == rules.NOT_BETTER.args


def test_submission_errors_are_what_submit_solution_reverts_with_itself() -> None:
    market = (ROOT / "contracts/Market.sol").read_text()
    body = market[market.index("function submitSolution(") :]
    body = body[: body.index("\n    }\n")]
    reverts = re.findall(r"\brevert (\w+)\(", body)
    # AmountTooLarge: an objective above 2^128 Wh, which no calldata can carry
    assert tuple(r for r in reverts if r != "AmountTooLarge") == tuple(
        e.name for e in rules.SUBMISSION_ERRORS
    )
    for error in rules.SUBMISSION_ERRORS:
        assert _shape(error.name) == error.args, error.name


def test_the_kind_each_contract_error_stands_for_matches_the_source() -> None:
    declared = {name: kind for name, kind in DECLARED.items() if kind}
    assert declared == {name: kind.value for name, kind in rules.KIND_OF_ERROR.items()}
    assert {n for n, kind in DECLARED.items() if not kind} == rules.MALFORMED_ERRORS


def test_contract_order_is_the_order_of_the_verifier_reverts() -> None:
    reverts = re.findall(r"\brevert (\w+)\(", VERIFIER)
    assert tuple(dict.fromkeys(reverts)) == rules.CONTRACT_ORDER
    assert set(rules.CONTRACT_ORDER) == {e.name for e in rules.verifier_errors()}


def test_one_rule_per_kind_in_the_enum_order() -> None:
    assert [r.kind for r in RULES] == list(ViolationKind)
    assert {k: i for i, k in enumerate(ViolationKind)} == rules.REPORT_RANK
    for rule in RULES:
        assert (rule.error is None) == (rule.attack is None), rule.kind
        assert (rule.side is not None) == (rule.stage in (Stage.OFFER, Stage.FEEDER)), rule.kind
    assert rules.OFFCHAIN == (ViolationKind.UNKNOWN_FEEDER, ViolationKind.NEGATIVE_PRICE)


def test_feeder_rules_are_rows_rising_on_their_side() -> None:
    for rule in RULES:
        assert (rule.row is not None) == (rule.stage is Stage.FEEDER), rule.kind
        if rule.row is not None:
            on_side = rule.row.sold if rule.side == Kind.SELL else rule.row.bought
            assert on_side == 1 and rule.row.limit in ("c_ext", "c_int"), rule.kind


def test_error_mappings_and_onchain_kinds_come_from_the_catalogue() -> None:
    assert dict(VIOLATION_BY_ERROR) == {v: k for k, v in ERROR_OF_KIND.items()}
    assert {r.kind: r.error.name for r in RULES if r.error is not None} == ERROR_OF_KIND
    assert {"MalformedTrade", "UnsortedTrades"} == MALFORMED_ERRORS
    assert tuple(r.kind for r in RULES if r.onchain) == ONCHAIN_VIOLATIONS


def test_every_checker_covers_exactly_its_rules() -> None:
    per_trade = {r.kind for r in RULES if r.stage is Stage.TRADE}
    assert set(verify.TRADE_ORDER) == per_trade - {
        ViolationKind.UNKNOWN_OFFER,
        ViolationKind.NOT_MATCHABLE_KIND,
        ViolationKind.UNKNOWN_FEEDER,
    }
    assert set(onchain.TRADE_TESTS) == set(onchain.TRADE_ORDER)
    k = ViolationKind
    assert (
        *(k.DUPLICATE, k.UNKNOWN_OFFER, k.NOT_MATCHABLE_KIND, k.NONPOSITIVE),
        *(k.FINALIZED_INTERVAL, k.NOT_MATCHABLE_INTERVAL, k.NOT_MATCHABLE_PRICE, k.PRICE),
        *(k.SELL_ENERGY, k.BUY_ENERGY),
    ) == onchain.TRADE_ORDER
    assert onchain.FEEDER_ORDER == verify.FEEDER_ORDER
    assert set(adversary.ATTACKS) == set(Attack)
    assert {r.attack for r in RULES if r.attack} == set(Attack)


@pytest.mark.parametrize("kind", verify.FEEDER_ORDER, ids=str)
def test_feeder_excess_is_the_amount_over_the_limit(kind: ViolationKind) -> None:
    feeder = Feeder(1, c_ext=40, c_int=100)
    side = rules.RULE_OF[kind].side
    for sold, bought in ((0, 0), (100, 60), (60, 100), (101, 0), (0, 101), (141, 100)):
        excess = rules.feeder_excess(kind, feeder, sold, bought)
        more = rules.feeder_excess(
            kind, feeder, sold + (side == Kind.SELL), bought + (side == Kind.BUY)
        )
        assert more == excess + 1  # one Wh more on the rule's side
    assert rules.feeder_excess(ViolationKind.FEEDER_EXT_OUT, feeder, 141, 100) == 1
    assert rules.feeder_excess(ViolationKind.FEEDER_INT_CONSUMPTION, feeder, 0, 100) == 0
    with pytest.raises(ValueError):
        rules.feeder_excess(ViolationKind.PRICE, feeder, 0, 0)


def test_prediction_follows_the_encodings_word_order() -> None:
    """Equal (interval, seller, buyer, energy): the word with the lower price comes first,
    so the contract meets the valid copy, then reports the second as a duplicate (found
    on anvil by tests/integration/test_contract_rules.py)."""
    offers = (Offer(1, 1, Kind.SELL, 500, 3, 6, 10), Offer(2, 1, Kind.BUY, 1_000, 3, 6, 20))
    problem = Problem((Feeder(1, 1_000, 1_000),), offers, (), free_from=4)
    priced_out, valid = Trade(1, 2, 4, 5, 21), Trade(1, 2, 4, 5, 15)
    for trades in ((priced_out, valid), (valid, priced_out)):
        assert onchain.contract_verdict(problem, Solution(trades)) is ViolationKind.DUPLICATE
    assert onchain.contract_verdict(problem, Solution((priced_out,))) is ViolationKind.PRICE


def test_beats_candidate_needs_the_minimum_improvement_only_with_trades_left() -> None:
    assert rules.beats_candidate(101, 100) and not rules.beats_candidate(100, 100)
    assert not rules.beats_candidate(109, 100, 10) and rules.beats_candidate(110, 100, 10)
    assert rules.beats_candidate(1, 0, 10) and not rules.beats_candidate(0, 0, 10)
