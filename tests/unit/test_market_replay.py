"""market.replay: the streaming market of section 4.3, deterministic and chain-free."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from market.errors import MarketError
from market.replay import replay
from market.solve import solve
from market.types import Feeder, Kind, Offer, Problem, Solution
from market.verify import verify
from tests.conftest import require_tool
from tests.unit.test_market_solve import _transax_problem

FEEDERS = (Feeder(1, c_ext=2000, c_int=3000), Feeder(2, c_ext=1500, c_int=3000))


def day(battery: bool) -> list[Offer]:
    """Two producers in feeder 1 with morning production; consumers in both feeders
    want energy in the afternoon. With a battery the morning energy can wait."""
    offers: list[Offer] = []
    for t in (1, 2, 3):
        for _producer in range(2):
            end = 8 if battery else t
            offers.append(Offer(len(offers) + 1, 1, Kind.SELL, 900, t, end, 10))
    for t in range(1, 9):
        for feeder in (1, 2):
            energy = 300 if t <= 3 else 800
            offers.append(Offer(len(offers) + 1, feeder, Kind.BUY, energy, t, t, 20))
    return offers


def run(offers, **kw):
    params = {"first_interval": 1, "last_interval": 8, "prediction_window": 3} | kw
    return replay(FEEDERS, offers, **params)


def test_same_inputs_give_byte_identical_json():
    first, second = run(day(True)), run(day(True))
    assert first.to_json() == second.to_json()
    doc = json.loads(first.to_json())
    assert doc["total_wh"] == first.total_wh > 0
    assert len(doc["trades"]) == len(first.trades)


def test_every_delivery_interval_is_reported_and_trades_are_sorted():
    result = run(day(False))
    assert sorted(result.per_interval_wh) == list(range(1, 9))
    assert result.total_wh == sum(t.energy for t in result.trades)
    assert list(result.trades) == sorted(result.trades)
    assert result.solves == 8 == len(result.steps)
    assert [s.finalized_interval for s in result.steps] == list(range(1, 9))
    assert [s.clock for s in result.steps] == list(range(0, 8))


def test_battery_offers_trade_more_than_single_interval_ones():
    without, with_battery = run(day(False)), run(day(True), prediction_window=8)
    # Without a battery only the morning demand (2 x 300 Wh per interval) is served.
    assert without.total_wh == 3 * 600
    assert with_battery.total_wh > without.total_wh
    late = sum(wh for t, wh in with_battery.per_interval_wh.items() if t > 3)
    assert late > 0


def test_finalized_trades_are_feasible_for_the_whole_day():
    offers = day(True)
    result = run(offers, prediction_window=4)
    problem = Problem(FEEDERS, tuple(offers))
    assert verify(problem, Solution(result.trades)) == []
    assert result.total_wh <= solve(problem).lp_objective + 1e-6


def test_offers_are_seen_only_within_the_prediction_window():
    # With L = 1 an offer for t + 1 is posted only at t + 1, after t + 1 was finalized.
    assert run(day(False), prediction_window=1).total_wh == 0
    assert run(day(False), prediction_window=2).total_wh == 3 * 600


def test_candidate_is_replaced_only_by_a_strictly_better_solution():
    # Everything is visible from the start: the first solution is optimal, later
    # solutions are equal at best, so the candidate is never replaced again.
    offers = day(True)
    result = run(offers, prediction_window=20)
    assert result.replacements == 1
    assert result.steps[0].replaced and not any(s.replaced for s in result.steps[1:])
    assert result.total_wh == solve(Problem(FEEDERS, tuple(offers))).solution.objective


def test_t_clear_shifts_the_clock():
    result = run(day(False), t_clear=2, prediction_window=3)
    assert [s.clock for s in result.steps] == list(range(-1, 7))
    assert result.total_wh == 3 * 600


def test_invariant_under_offer_order_and_ids_of_identical_offers():
    offers = day(True)
    shuffled = offers[:]
    random.Random(7).shuffle(shuffled)
    assert run(shuffled).to_json() == run(offers).to_json()
    # Swap the ids of two offers with identical content: same problem, same result.
    a, b = offers[0], offers[1]
    assert dataclasses.replace(a, id=b.id) == b
    swapped = [dataclasses.replace(a, id=b.id), dataclasses.replace(b, id=a.id), *offers[2:]]
    assert run(swapped).to_json() == run(offers).to_json()


def test_summary_for_the_cli():
    result = run(day(True))
    summary = result.summary("highs")
    assert summary["engine"] == "highs"
    assert summary["total_energy_traded_kwh"] == pytest.approx(result.total_wh / 1000)
    assert summary["trades"] == len(result.trades)
    assert set(summary["per_interval_kwh"]) == {str(t) for t in range(1, 9)}
    assert summary["solve_seconds_total"] >= 0
    json.dumps(summary)


def test_glpk_engine_replays_to_the_same_total():
    require_tool("glpsol")
    offers = day(True)
    glpk = run(offers, engine="glpk", prediction_window=20)
    assert glpk.total_wh == run(offers, prediction_window=20).total_wh
    assert glpk.engine == "glpk"


def test_bad_parameters_raise():
    with pytest.raises(MarketError):
        run(day(False), prediction_window=0)
    with pytest.raises(MarketError):
        run(day(False), first_interval=9)
    with pytest.raises(MarketError, match="duplicate"):
        run([*day(False), day(False)[0]])


def test_transax_prediction_window_and_battery(transax_dir):
    """Paper Figure 9: without battery L changes nothing; with battery the day trades
    more, and with the default tie-break (market/README.md) already at L = 2 as much as
    all offers at once. Every replay stays feasible for the whole day."""
    totals = {}
    for folder, window in (
        ("noBattery", 2),
        ("noBattery", 5),
        ("withBattery", 2),
        ("withBattery", 13),
    ):
        problem = _transax_problem(transax_dir / folder)
        result = replay(
            problem.feeders,
            problem.offers,
            first_interval=1,
            last_interval=96,
            prediction_window=window,
        )
        assert verify(problem, Solution(result.trades)) == []
        totals[folder, window] = result.total_wh
    assert totals["noBattery", 2] == totals["noBattery", 5]
    assert totals["withBattery", 2] > totals["noBattery", 2]
    # the all-at-once LP optimum, whatever the window
    assert totals["withBattery", 13] == totals["withBattery", 2] == 3_091_100


def test_offer_wait_counts_intervals_until_an_offer_is_first_traded():
    # A battery buyer (3..5, price 12) cannot buy from the first seller (price 15);
    # it waits from clock 1, when it is posted, to clock 3, when a cheaper seller
    # for interval 5 is posted. Everyone else trades as soon as posted.
    offers = [
        Offer(1, 1, Kind.SELL, 900, 3, 3, 15),
        Offer(2, 1, Kind.BUY, 900, 3, 3, 20),
        Offer(3, 1, Kind.BUY, 900, 3, 5, 12),
        Offer(4, 1, Kind.SELL, 900, 5, 5, 10),
    ]
    result = run(offers, last_interval=5, prediction_window=3)
    assert result.total_wh == 1800
    assert dict(result.offer_wait) == {1: 0, 2: 0, 3: 2, 4: 0}
    waits = result.summary()["offer_to_trade_intervals"]
    assert waits["max"] == 2 and waits["count"] == 4 and waits["p50"] == 0
