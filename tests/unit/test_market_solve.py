"""market.solve: both engines, the extended problem, rounding, determinism."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.errors import MarketError
from market.lp import matchable, prepare, split
from market.lp_glpk import enumerate_matchable
from market.rounding import round_solution
from market.solve import SolveStatus, midpoint_price, solve
from market.types import Feeder, Kind, Offer, Problem, Solution, Trade
from market.verify import verify
from tests.conftest import require_tool

FEEDERS = (Feeder(1, c_ext=1000, c_int=1500), Feeder(2, c_ext=500, c_int=800))
OFFERS = (
    Offer(1, feeder=1, kind=Kind.SELL, energy=3000, start=1, end=3, price=10),
    Offer(2, feeder=2, kind=Kind.BUY, energy=700, start=1, end=2, price=20),
    Offer(3, feeder=1, kind=Kind.BUY, energy=900, start=2, end=3, price=15),
    Offer(4, feeder=2, kind=Kind.SELL, energy=400, start=2, end=2, price=30),
    Offer(5, feeder=2, kind=Kind.BUY, energy=1000, start=1, end=3, price=40),
)
PROBLEM = Problem(FEEDERS, OFFERS)
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw: st.DrawFn, max_offers: int = 9, intervals: int = 4) -> Problem:
    n_feeders = draw(st.integers(1, 3))
    feeders = tuple(
        Feeder(f, c_ext=draw(st.integers(0, 3000)), c_int=draw(st.integers(0, 4000)))
        for f in range(1, n_feeders + 1)
    )
    offers = []
    for oid in draw(st.lists(st.integers(1, 50), min_size=1, max_size=max_offers, unique=True)):
        start = draw(st.integers(1, intervals))
        offers.append(
            Offer(
                oid,
                feeder=draw(st.integers(1, n_feeders)),
                kind=draw(st.sampled_from(Kind)),
                energy=draw(st.integers(0, 5000)),
                start=start,
                end=draw(st.integers(start, intervals)),
                price=draw(st.integers(0, 3)),
            )
        )
    return Problem(feeders, tuple(offers))


def test_highs_small_problem_is_optimal_and_feasible():
    result = solve(PROBLEM, "highs")
    assert result.status is SolveStatus.OPTIMAL
    assert result.lp_objective == pytest.approx(2600)
    assert result.solution.objective == 2600
    assert verify(PROBLEM, result.solution) == []
    assert list(result.solution.trades) == sorted(result.solution.trades)
    assert result.variables > 0 and result.constraints > 0 and result.engine == "highs"
    for trade in result.solution.trades:
        seller = next(o for o in OFFERS if o.id == trade.seller)
        buyer = next(o for o in OFFERS if o.id == trade.buyer)
        assert trade.price == (seller.price + buyer.price) // 2


def test_glpk_small_problem_matches_highs():
    require_tool("glpsol")
    glpk = solve(PROBLEM, "glpk")
    assert glpk.lp_objective == pytest.approx(2600, rel=1e-6)
    assert glpk.solution.objective == 2600
    assert verify(PROBLEM, glpk.solution) == []


@SETTINGS
@given(problems())
def test_engines_agree_and_rounded_solutions_verify(problem: Problem):
    require_tool("glpsol")
    highs, glpk = solve(problem, "highs"), solve(problem, "glpk")
    assert highs.lp_objective == pytest.approx(glpk.lp_objective, rel=1e-6, abs=1e-6)
    for result in (highs, glpk):
        assert verify(problem, result.solution) == []
        assert result.solution.objective <= result.lp_objective + 1e-6
        assert all(t.energy > 0 for t in result.solution.trades)


@SETTINGS
@given(problems(), st.integers(2, 4))
def test_extended_problem_with_fixed_trades(problem: Problem, free_from: int):
    require_tool("glpsol")
    full = solve(problem, "highs")
    fixed = tuple(t for t in full.solution.trades if t.interval < free_from)
    extended = dataclasses.replace(problem, fixed=fixed, free_from=free_from)
    results = [solve(extended, engine) for engine in ("highs", "glpk")]
    assert results[0].lp_objective == pytest.approx(results[1].lp_objective, rel=1e-6, abs=1e-6)
    fixed_wh = Solution(fixed).objective
    for result in results:
        assert verify(extended, result.solution) == []
        assert all(t.interval >= free_from for t in result.solution.trades)
        # The rest of the full solution is feasible here; nothing beats the full LP.
        assert fixed_wh + result.lp_objective >= full.solution.objective - 1e-6
        assert fixed_wh + result.lp_objective <= full.lp_objective + 1e-6
        combined = Solution(fixed + result.solution.trades)
        assert verify(problem, combined) == []


@SETTINGS
@given(problems(max_offers=12))
def test_vectorised_matchable_equals_plain_enumeration(problem: Problem):
    prep = prepare(problem, aggregate=False)
    fast, plain = matchable(prep), enumerate_matchable(prep)
    for name in ("s", "b", "t"):
        assert np.array_equal(getattr(fast, name), getattr(plain, name))


@SETTINGS
@given(problems(), st.randoms(use_true_random=False))
def test_same_trades_for_any_offer_order(problem: Problem, rnd: random.Random):
    offers = list(problem.offers)
    rnd.shuffle(offers)
    shuffled = dataclasses.replace(problem, offers=tuple(offers))
    assert solve(shuffled).solution == solve(problem).solution


def test_identical_offers_are_interchangeable_and_results_repeat():
    twins = [Offer(i, 1, Kind.SELL, 700, 1, 3, 10) for i in (11, 12, 13)]
    buyers = [Offer(20 + i, 2, Kind.BUY, 900, i, i, 40) for i in (1, 2, 3)]
    base = Problem(FEEDERS, (*twins, *buyers))
    relabelled = Problem(FEEDERS, (*[dataclasses.replace(o) for o in reversed(twins)], *buyers))
    first = solve(base)
    assert first.solution == solve(base).solution == solve(relabelled).solution
    assert first.solution.objective == 1500  # feeder 2 imports at most 500 per interval
    assert repr(first.solution) == repr(solve(base).solution)


def test_fixed_trades_reduce_what_is_left():
    fixed = (Trade(1, 5, 1, 500, 25),)
    problem = Problem(FEEDERS, OFFERS, fixed, free_from=2)
    result = solve(problem)
    assert all(t.interval >= 2 for t in result.solution.trades)
    # Feeder 2 can still take 500 (buyer 2, import at 2) + 500 (buyer 5's rest); c_int
    # 800 at interval 2 forces part of buyer 5's share to 3. Buyer 3 takes 900 locally.
    assert result.lp_objective == pytest.approx(1900)
    assert verify(problem, result.solution) == []


def test_last_interval_limits_the_free_window():
    result = solve(PROBLEM, last_interval=1)
    assert {t.interval for t in result.solution.trades} == {1}
    assert result.lp_objective == pytest.approx(500)  # feeder 2 imports at most 500


def test_custom_price_rule():
    result = solve(PROBLEM, price_rule=lambda seller, buyer: seller)
    assert all(t.price in (10, 30) for t in result.solution.trades)
    assert midpoint_price(10, 21) == 15


def test_nothing_matchable_gives_an_empty_solution():
    problem = Problem(FEEDERS, (OFFERS[0], Offer(9, 1, Kind.BUY, 100, 5, 6, 99)))
    result = solve(problem)
    assert result.solution == Solution() and result.variables == 0 and result.lp_objective == 0


def test_unknown_engine_and_malformed_problems_raise():
    with pytest.raises(MarketError, match="unknown engine"):
        solve(PROBLEM, "cplex")
    with pytest.raises(MarketError, match="duplicate offer ids"):
        solve(Problem(FEEDERS, (OFFERS[0], OFFERS[0])))
    with pytest.raises(MarketError, match="unknown feeder"):
        solve(Problem(FEEDERS, (Offer(1, 9, Kind.SELL, 1, 1, 1, 1),)))
    infeasible_fixed = (Trade(1, 5, 1, 900, 25),)  # feeder 2 imports 900 > 500
    with pytest.raises(MarketError, match="fixed trades violate"):
        solve(Problem(FEEDERS, OFFERS, infeasible_fixed, free_from=2))


def test_rounding_repairs_net_flow_broken_by_flooring():
    # Feeder 1 exports 20 Wh to feeder 2 and imports 9.5 + 0.5 Wh from feeder 3:
    # net 10 = c_ext. Flooring the imports to 9 would make the net 11 > 10.
    feeders = (Feeder(1, 10, 100), Feeder(2, 100, 100), Feeder(3, 100, 100))
    offers = (
        Offer(1, 1, Kind.SELL, 20, 1, 1, 0),
        Offer(2, 2, Kind.BUY, 20, 1, 1, 0),
        Offer(3, 3, Kind.SELL, 10, 1, 1, 0),
        Offer(4, 1, Kind.BUY, 5, 1, 1, 0),
        Offer(5, 1, Kind.BUY, 5, 1, 1, 0),
    )
    problem = Problem(feeders, offers)
    prep = prepare(problem, aggregate=False)
    var = matchable(prep)
    wanted = {(1, 2): 20.0, (3, 4): 4.5, (3, 5): 5.5}
    pairs = [
        (int(prep.sells.member_id[s]), int(prep.buys.member_id[b]))
        for s, b in zip(var.s, var.b, strict=True)
    ]
    x = np.array([wanted.get(p, 0.0) for p in pairs])
    floored = Solution(tuple(sorted(_trades(prep, var, np.floor(x).astype(np.int64)))))
    assert [v.kind.name for v in verify(problem, floored)] == ["FEEDER_EXT_OUT"]
    energy = round_solution(prep, var, x)
    solution = Solution(tuple(sorted(_trades(prep, var, energy))))
    assert verify(problem, solution) == []
    # The repair cuts the export to 19; the fill then tops up import and export.
    assert solution.objective == 30


def _trades(prep, var, energy) -> list[Trade]:
    return [Trade(p.seller, p.buyer, p.interval, p.energy, 0) for p in split(prep, var, energy)]


def test_paper_scale_transax(transax_dir):
    problem = _transax_problem(transax_dir / "withBattery")
    first, second = solve(problem), solve(problem)
    assert first.solution == second.solution
    assert first.lp_objective == pytest.approx(3_091_100, rel=1e-9)
    assert first.lp_objective - 10 <= first.solution.objective <= first.lp_objective
    assert verify(problem, first.solution) == []


def _transax_problem(folder) -> Problem:
    """A small private reader: one offer per row, kWh -> Wh, uniform prices."""
    offers, feeders = [], set()
    for path in sorted(folder.glob("prosumer_*.csv")):
        feeder = int(path.stem.split("_")[1]) // 100
        feeders.add(feeder)
        for line in path.read_text().splitlines()[1:]:
            start, end, kwh = line.split(",")
            wh = round(float(kwh) * 1000)
            if wh:
                kind = Kind.SELL if wh > 0 else Kind.BUY
                price = 100_000 if wh > 0 else 200_000
                offers.append(
                    Offer(len(offers) + 1, feeder, kind, abs(wh), int(start), int(end), price)
                )
    return Problem(tuple(Feeder(f, 20_000, 25_000) for f in sorted(feeders)), tuple(offers))


@pytest.mark.parametrize("engine", ["highs", "glpk"])
def test_price_levels_bind(engine: str):
    # Seller 2 (30) can only sell to buyer 4 (40), who wants 50 Wh: a balance of total
    # supply and demand alone (200 = 200) would promise 200 Wh; the optimum is 150.
    if engine == "glpk":
        require_tool("glpsol")
    feeders = (Feeder(1, 0, 1000),)
    offers = (
        Offer(1, 1, Kind.SELL, 100, 1, 1, 10),
        Offer(2, 1, Kind.SELL, 100, 1, 1, 30),
        Offer(3, 1, Kind.BUY, 150, 1, 1, 20),
        Offer(4, 1, Kind.BUY, 50, 1, 1, 40),
    )
    problem = Problem(feeders, offers)
    result = solve(problem, engine)
    assert result.lp_objective == pytest.approx(150)
    assert result.solution.objective == 150
    assert verify(problem, result.solution) == []
    assert {(t.seller, t.buyer) for t in result.solution.trades} >= {(2, 4)}
