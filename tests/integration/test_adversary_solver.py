"""Adversarial solver behaviours (issue 8) on a real anvil and the real compiled contract.

The solver objects run in-process (`Solver.step` with its real `SolverChain`: estimate,
sign, send, receipt); the test plays DSO and prosumers through agents.chain. Checked:
an "infeasible" solver of kind "any" submits one solution per constraint kind the
contract checks, each reverts with that kind's custom error and never becomes the
candidate, while an honest solver's solution in the same interval does; "inferior" is
refused with NotBetter; "flood" makes exactly `count` submissions; "late" submits after
its delay, from `flush`, not from `step`. Every adversarial action is in behaviour.jsonl
and in the metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from prometheus_client import REGISTRY

from agents.chain.contract import deploy_market
from agents.chain.node import Anvil, latest_timestamp
from agents.chain.tx import Sender
from agents.common.abi import keccak256
from agents.common.actionlog import ActionLog, read
from agents.common.adversaries import ONCHAIN_VIOLATIONS
from agents.common.market import MarketParams
from agents.solver.agent import Solver
from agents.solver.behaviour import ERROR_OF_KIND, Flood, Honest, Inferior, Late, make_behaviour
from agents.solver.chainview import SolverChain
from market.types import Feeder, Kind
from tests.integration.test_contract_workflow import (  # fixtures, shared with the workflow
    Harness,
    anvil_log_on_failure,  # noqa: F401
    node,  # noqa: F401
)

# F2 only buys and F4 only sells, each behind a 40 Wh external limit; F3 has a 50 Wh
# internal limit. Offers are large enough that the optimum leaves slack in most of them,
# so every feeder and energy rule can be broken on its own.
FEEDERS = (
    Feeder(1, 10_000, 10_000),
    Feeder(2, 40, 1_000),
    Feeder(3, 1_000, 50),
    Feeder(4, 40, 1_000),
)
FIRST, LAST, T_CLEAR, SECONDS = 3, 6, 1, 3600
OFFERS = (  # (feeder, kind, energy, start, end, price); ids 1.. in this order
    (1, Kind.SELL, 2_500, 3, 6, 10),
    (1, Kind.BUY, 2_000, 3, 6, 20),
    (2, Kind.BUY, 1_000, 3, 6, 20),
    (4, Kind.SELL, 1_000, 3, 6, 10),
    (3, Kind.SELL, 1_000, 3, 6, 10),
    (3, Kind.BUY, 1_000, 3, 6, 20),
    (1, Kind.SELL, 30, 5, 5, 25),  # priced above every buyer
    (1, Kind.BUY, 30, 4, 4, 20),  # interval 4 only
)


def _post(h: Harness, offers: tuple[tuple[int, Kind, int, int, int, int], ...]) -> None:
    for feeder, kind, energy, start, end, price in offers:
        who = h.anon(feeder, kind, energy, start, end, balance=energy * price)
        assert h.post(who, kind, energy, start, end, price)


@pytest.fixture
def market(node: Anvil) -> Iterator[Harness]:  # noqa: F811
    """A fresh market with OFFERS posted and interval 3 finalized (free from 4)."""
    w3 = node.web3()
    dso = Sender(w3, Account.create())
    # interval 3 finalizable now, 4's deadline an interval away: submissions are taken
    params = MarketParams(
        first_interval=FIRST,
        last_interval=LAST,
        t_clear=T_CLEAR,
        interval_seconds=SECONDS,
        epoch=latest_timestamp(w3) - SECONDS,
    )
    h = Harness(w3, deploy_market(w3, dso, FEEDERS, params), dso, params)
    _post(h, OFFERS)
    h.finalize_through(FIRST)
    yield h


def _solver(node: Anvil, h: Harness, name: str, behaviour: object, tmp: Path) -> Solver:  # noqa: F811
    key = "0x" + keccak256(f"{h.market.address}/{name}".encode()).hex()
    chain = SolverChain.connect(node.url, h.market.address, 31337, key)
    return Solver(chain, "highs", behaviour, LAST, actions=ActionLog(tmp, name))  # type: ignore[arg-type]


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_infeasible_of_every_kind_reverts_and_the_honest_solution_wins(
    node: Anvil,  # noqa: F811
    market: Harness,
    tmp_path: Path,
) -> None:
    h = market
    adversary = _solver(
        node, h, "adversary", make_behaviour("infeasible", {"kind": "any"}), tmp_path
    )
    honest = _solver(node, h, "honest", Honest(), tmp_path / "honest")
    free_from = h.market.next_finalize()
    assert free_from == FIRST + 1
    before = h.market.candidate()
    rejected = _metric("testbed_solutions_total", result="rejected", reason="FeederExtIn")
    for _ in ONCHAIN_VIOLATIONS:
        outcome = adversary.step(free_from, interval=free_from - T_CLEAR)
        assert outcome.result == "rejected"
        assert h.market.candidate() == before  # never the candidate
    records = read(tmp_path / "behaviour.jsonl")
    submits = [r for r in records if r["action"] == "submit"]
    assert [r["result"] for r in submits] == [
        f"reverted: {ERROR_OF_KIND[k]}" for k in ONCHAIN_VIOLATIONS
    ]
    assert [r["expected"] for r in submits] == [ERROR_OF_KIND[k] for k in ONCHAIN_VIOLATIONS]
    # no candidate yet: every infeasible solution claims more than the optimum would give
    assert all(r["candidate"] == 0 and r["objective"] > 0 for r in submits)
    assert records[0]["action"] == "switch" and records[0]["behaviour"] == "infeasible"
    assert (
        _metric("testbed_solutions_total", result="rejected", reason="FeederExtIn") == rejected + 1
    )

    outcome = honest.step(free_from, interval=free_from - T_CLEAR)
    assert outcome.result == "accepted"
    after = h.market.candidate()
    assert after.candidate_id == before.candidate_id + 1
    assert after.remaining_objective == outcome.objective
    assert not (tmp_path / "honest" / "behaviour.jsonl").exists()  # honest: nothing to record

    # with a candidate in place the infeasible ones still name their rule
    for _ in ONCHAIN_VIOLATIONS:
        adversary.step(free_from, interval=free_from - T_CLEAR)
        assert h.market.candidate() == after
    again = [r for r in read(tmp_path / "behaviour.jsonl") if r["action"] == "submit"][14:]
    assert [r["result"] for r in again] == [
        f"reverted: {ERROR_OF_KIND[k]}" for k in ONCHAIN_VIOLATIONS
    ]


def test_inferior_and_flood_are_refused_once_an_honest_candidate_exists(
    node: Anvil,  # noqa: F811
    market: Harness,
    tmp_path: Path,
) -> None:
    h = market
    free_from = h.market.next_finalize()
    empty = _solver(node, h, "empty", Inferior(no_candidate="empty"), tmp_path / "empty")
    assert empty.step(free_from).result == "rejected"  # nothing to beat: the empty solution
    assert read(tmp_path / "empty" / "behaviour.jsonl")[-1]["result"] == "reverted: NotBetter"
    inferior = _solver(node, h, "inferior", Inferior(), tmp_path / "inferior")
    # no candidate yet: strictly worse than the optimum, and accepted
    first = inferior.step(free_from, interval=free_from - T_CLEAR)
    assert first.result == "accepted"
    weak = h.market.candidate().remaining_objective
    assert 0 < weak < first.objective
    honest = _solver(node, h, "honest", Honest(), tmp_path / "honest")
    assert honest.step(free_from).result == "accepted"  # the honest solver beats it
    best = h.market.candidate()
    assert best.remaining_objective == first.objective

    assert inferior.step(free_from).result == "rejected"
    (_, refused) = [
        r for r in read(tmp_path / "inferior" / "behaviour.jsonl") if r["action"] == "submit"
    ]
    assert refused["result"] == "reverted: NotBetter" and refused["expected"] == "NotBetter"
    assert refused["objective"] <= refused["candidate"] == best.remaining_objective

    actions = _metric("testbed_adversarial_actions_total", behaviour="flood")
    flood = _solver(node, h, "flood", Flood(count=3), tmp_path / "flood")
    outcome = flood.step(free_from)
    assert outcome.results == ("rejected",) * 3
    switch, *records = read(tmp_path / "flood" / "behaviour.jsonl")
    assert switch["action"] == "switch" and switch["result"] == "switched"
    assert [r["result"] for r in records] == ["reverted: NotBetter"] * 3
    objectives = [r["objective"] for r in records]
    assert objectives[0] == best.remaining_objective and objectives == sorted(
        objectives, reverse=True
    )
    assert _metric("testbed_adversarial_actions_total", behaviour="flood") == actions + 3
    assert h.market.candidate() == best


def test_late_submits_after_its_delay_without_blocking_the_step(
    node: Anvil,  # noqa: F811
    market: Harness,
    tmp_path: Path,
) -> None:
    h = market
    free_from = h.market.next_finalize()
    late = _solver(node, h, "late", Late(delay_seconds=0.5), tmp_path)
    before = h.market.candidate()
    outcome = late.step(free_from, interval=free_from - T_CLEAR)
    assert outcome.result == "scheduled" and not outcome.submitted
    assert h.market.candidate() == before  # nothing sent yet
    assert late.flush() == 0 and len(late.pending) == 1
    deadline = time.monotonic() + 30
    while not late.flush():
        assert time.monotonic() < deadline, "late submission never became due"
        time.sleep(0.05)
    (record,) = [r for r in read(tmp_path / "behaviour.jsonl") if r["action"] == "submit"]
    assert record["result"] == "accepted"
    assert record["delay_seconds"] == 0.5
    assert record["time"] >= record["decided_at"] + 0.5
    assert h.market.candidate().candidate_id == before.candidate_id + 1

    # a late decision still pending when the market ends is dropped, and recorded so
    _post(h, ((1, Kind.SELL, 100, 5, 6, 10), (1, Kind.BUY, 100, 5, 6, 20)))
    assert late.step(free_from).result == "scheduled"
    assert late.drop_pending("the market is done") == 1
    assert read(tmp_path / "behaviour.jsonl")[-1]["result"] == "dropped: the market is done"
