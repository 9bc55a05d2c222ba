"""market.verify: every violation kind, triggered on purpose, with the ids at fault."""

from __future__ import annotations

import pytest

from market.types import Feeder, Kind, Offer, Problem, Solution, Trade
from market.verify import Violation, ViolationKind, objective, verify

V = ViolationKind
FEEDERS = (Feeder(1, c_ext=1000, c_int=1500), Feeder(2, c_ext=500, c_int=800))
OFFERS = (
    Offer(1, feeder=1, kind=Kind.SELL, energy=3000, start=1, end=3, price=10),
    Offer(2, feeder=2, kind=Kind.BUY, energy=700, start=1, end=2, price=20),
    Offer(3, feeder=1, kind=Kind.BUY, energy=900, start=2, end=3, price=15),
    Offer(4, feeder=2, kind=Kind.SELL, energy=400, start=2, end=2, price=30),
    Offer(5, feeder=2, kind=Kind.BUY, energy=1000, start=1, end=3, price=40),
    Offer(6, feeder=1, kind=Kind.SELL, energy=100, start=1, end=3, price=50),
    Offer(7, feeder=2, kind=Kind.SELL, energy=2000, start=1, end=3, price=10),
    Offer(8, feeder=1, kind=Kind.SELL, energy=100, start=1, end=1, price=-5),
)


def check(*trades: Trade, fixed: tuple[Trade, ...] = (), free_from: int | None = None):
    return verify(Problem(FEEDERS, OFFERS, fixed, free_from), Solution(trades))


def only(violations: list[Violation]) -> Violation:
    assert len(violations) == 1, violations
    return violations[0]


def test_feasible_solution_has_no_violation():
    trades = (Trade(1, 2, 1, 500, 15), Trade(1, 3, 2, 900, 12), Trade(4, 5, 2, 400, 35))
    assert check(*trades) == []
    assert objective(Solution(trades)) == 1800 == Solution(trades).objective


def test_empty_solution_is_feasible():
    assert check() == []


def test_unknown_offer():
    v = only(check(Trade(99, 2, 1, 10, 15)))
    assert (v.kind, v.offer, v.interval) == (V.UNKNOWN_OFFER, 99, 1)
    assert "99" in v.message


def test_unknown_offer_in_fixed_trades():
    v = only(check(fixed=(Trade(1, 98, 1, 10, 15),)))
    assert (v.kind, v.offer) == (V.UNKNOWN_OFFER, 98)


def test_not_matchable_kind():
    v = only(check(Trade(2, 5, 1, 10, 30)))
    assert (v.kind, v.offer) == (V.NOT_MATCHABLE_KIND, 2)
    assert "offer 2 is BUY" in v.message


def test_unknown_feeder():
    offers = (*OFFERS, Offer(9, feeder=7, kind=Kind.BUY, energy=50, start=1, end=1, price=99))
    problem = Problem(FEEDERS, offers)
    v = only(verify(problem, Solution((Trade(1, 9, 1, 50, 20),))))
    assert (v.kind, v.offer, v.feeder) == (V.UNKNOWN_FEEDER, 9, 7)


@pytest.mark.parametrize("energy", [0, -5])
def test_nonpositive_energy(energy: int):
    v = only(check(Trade(1, 2, 1, energy, 15)))
    assert (v.kind, v.offer, v.interval) == (V.NONPOSITIVE, 1, 1)


def test_negative_price():
    # Seller 8 accepts down to -5, so -1 is within (9) but not (17).
    v = only(check(Trade(8, 2, 1, 10, -1)))
    assert (v.kind, v.offer) == (V.NEGATIVE_PRICE, 8)


def test_not_matchable_price():
    found = check(Trade(6, 2, 1, 10, 30))
    assert [v.kind for v in found] == [V.NOT_MATCHABLE_PRICE, V.PRICE]
    assert found[0].offer == 6
    assert "50 > buyer 2 reservation 20" in found[0].message


def test_not_matchable_interval():
    v = only(check(Trade(1, 2, 3, 10, 15)))
    assert (v.kind, v.offer, v.interval) == (V.NOT_MATCHABLE_INTERVAL, 2, 3)


def test_interval_outside_both_offers_names_both():
    found = check(Trade(8, 3, 4, 10, 0))  # seller 8 covers 1..1, buyer 3 covers 2..3
    assert [(v.kind, v.offer, v.interval) for v in found] == [
        (V.NOT_MATCHABLE_INTERVAL, 3, 4),
        (V.NOT_MATCHABLE_INTERVAL, 8, 4),
    ]


def test_finalized_interval():
    v = only(check(Trade(1, 2, 1, 10, 15), free_from=2))
    assert (v.kind, v.interval) == (V.FINALIZED_INTERVAL, 1)
    assert check(Trade(1, 2, 2, 10, 15), free_from=2) == []


def test_duplicate_within_solution():
    v = only(check(Trade(1, 2, 1, 10, 15), Trade(1, 2, 1, 20, 16)))
    assert (v.kind, v.offer, v.interval) == (V.DUPLICATE, 1, 1)
    assert v.trade == Trade(1, 2, 1, 20, 16)


def test_duplicate_of_fixed_trade():
    v = only(check(Trade(1, 2, 1, 10, 15), fixed=(Trade(1, 2, 1, 10, 15),)))
    assert (v.kind, v.trade) == (V.DUPLICATE, Trade(1, 2, 1, 10, 15))


@pytest.mark.parametrize("price", [9, 21])
def test_price_outside_reservations(price: int):
    v = only(check(Trade(1, 2, 1, 10, price)))
    assert (v.kind, v.offer) == (V.PRICE, 1)


def test_price_at_both_reservations_is_fine():
    assert check(Trade(1, 2, 1, 10, 10), Trade(1, 2, 2, 10, 20)) == []


def test_sell_energy():
    v = only(check(Trade(4, 5, 2, 401, 35)))
    assert (v.kind, v.offer, v.feeder) == (V.SELL_ENERGY, 4, 2)
    assert "401 Wh sold > 400 Wh" in v.message


def test_buy_energy():
    v = only(check(Trade(1, 2, 1, 400, 15), Trade(1, 2, 2, 400, 15)))
    assert (v.kind, v.offer) == (V.BUY_ENERGY, 2)


def test_fixed_trades_use_up_offer_energy():
    fixed = (Trade(1, 2, 1, 400, 15),)
    assert check(Trade(7, 2, 2, 300, 15), fixed=fixed, free_from=2) == []
    v = only(check(Trade(7, 2, 2, 301, 15), fixed=fixed, free_from=2))
    assert (v.kind, v.offer) == (V.BUY_ENERGY, 2)


def test_feeder_ext_out():
    v = only(check(Trade(7, 3, 2, 600, 12)))  # feeder 2 exports 600 > 500
    assert (v.kind, v.feeder, v.interval, v.offer) == (V.FEEDER_EXT_OUT, 2, 2, None)
    assert "feeder 2, interval 2" in v.message


def test_feeder_ext_in():
    v = only(check(Trade(1, 5, 1, 600, 25)))  # feeder 2 imports 600 > 500
    assert (v.kind, v.feeder, v.interval) == (V.FEEDER_EXT_IN, 2, 1)


def test_same_feeder_trades_do_not_count_as_flow():
    assert check(Trade(7, 5, 1, 700, 25)) == []


def test_feeder_int_consumption():
    v = only(check(Trade(7, 5, 1, 400, 25), Trade(1, 5, 1, 450, 25)))
    assert (v.kind, v.feeder, v.interval) == (V.FEEDER_INT_CONSUMPTION, 2, 1)


def test_feeder_int_production():
    v = only(check(Trade(7, 3, 2, 450, 12), Trade(7, 5, 2, 400, 25)))
    assert (v.kind, v.feeder, v.interval) == (V.FEEDER_INT_PRODUCTION, 2, 2)


def test_fixed_trades_count_against_feeder_limits():
    fixed = (Trade(1, 5, 1, 400, 25),)
    assert check(Trade(7, 5, 2, 10, 25), fixed=fixed, free_from=2) == []
    v = only(check(Trade(1, 2, 1, 200, 15), fixed=fixed))  # 600 into feeder 2 at 1
    assert (v.kind, v.feeder, v.interval) == (V.FEEDER_EXT_IN, 2, 1)


def test_every_violation_is_reported_in_a_stable_order():
    trades = (
        Trade(99, 2, 1, 10, 15),
        Trade(1, 2, 1, 0, 15),
        Trade(1, 5, 1, 550, 25),
        Trade(4, 5, 2, 401, 35),
    )
    found = check(*trades)
    assert [v.kind for v in found] == [
        V.UNKNOWN_OFFER,
        V.NONPOSITIVE,
        V.SELL_ENERGY,
        V.FEEDER_EXT_IN,
    ]
    assert found == check(*reversed(trades))


def test_kind_names_are_stable():
    assert [k.value for k in V] == [k.name for k in V]
    assert V("FEEDER_EXT_OUT") is V.FEEDER_EXT_OUT
