"""The solver's problem construction from decoded contract events.

Checks exact problems built from OfferPosted / TradeFinalized arguments, and that a
streaming run driven by `OrderBook` (with chain-like offer ids, assigned in posting
order) finalizes exactly what `market.replay` finalizes, by offer content.
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from agents.solver.behaviour import Honest
from agents.solver.book import (
    BookError,
    OrderBook,
    extended_problem,
    offer_from_event,
    trade_from_event,
)
from market.replay import replay
from market.solve import solve
from market.types import Feeder, Kind, Offer, Problem, Trade

FEEDERS = (Feeder(1, c_ext=5_000, c_int=8_000), Feeder(2, c_ext=4_000, c_int=6_000))


def _posted(offer_id: int, feeder: int, kind: int, energy: int, start: int, end: int) -> dict:
    poster = "0x" + "ab" * 20
    return {
        "offerId": offer_id,
        "feeder": feeder,
        "kind": kind,
        "energy": energy,
        "start": start,
        "end": end,
        "price": 100,
        "poster": poster,
    }


def _final(interval: int, seller: int, buyer: int, energy: int) -> dict:
    return {"interval": interval, "seller": seller, "buyer": buyer, "energy": energy, "price": 100}


def test_events_decode_to_offers_and_trades() -> None:
    assert offer_from_event(_posted(7, 2, 1, 900, 3, 5)) == Offer(7, 2, Kind.BUY, 900, 3, 5, 100)
    assert trade_from_event(_final(4, 1, 7, 250)) == Trade(1, 7, 4, 250, 100)


def test_problem_keeps_original_energy_fixes_finalized_and_prunes_dead_offers() -> None:
    book = OrderBook()
    book.add_offers(
        offer_from_event(e)
        for e in (
            _posted(1, 1, 0, 3_000, 1, 4),  # battery-like sell, still alive at 3
            _posted(2, 2, 1, 1_000, 1, 1),  # bought from 1 in interval 1, now dead
            _posted(3, 1, 1, 500, 2, 2),  # dead, bought from 1 in interval 2
            _posted(4, 2, 1, 800, 3, 3),  # alive
            _posted(5, 1, 0, 700, 2, 2),  # dead, but traded in interval 2 where 1 traded
            _posted(6, 2, 1, 400, 2, 2),
            _posted(7, 2, 0, 600, 1, 1),  # dead, traded in interval 1 ...
            _posted(8, 1, 1, 600, 1, 1),
            _posted(9, 2, 0, 300, 2, 2),  # dead, never traded: dropped
        )
    )
    book.add_finalized(
        trade_from_event(e)
        for e in (
            _final(1, 1, 2, 1_000),
            _final(2, 5, 6, 400),
            _final(2, 1, 3, 500),
            _final(1, 7, 8, 600),
        )
    )
    problem = book.problem(FEEDERS, free_from=3)
    assert problem == Problem(
        feeders=FEEDERS,
        offers=(
            Offer(1, 1, Kind.SELL, 3_000, 1, 4, 100),  # original energy, not 1_500 left
            Offer(2, 2, Kind.BUY, 1_000, 1, 1, 100),  # named by a trade of alive offer 1
            Offer(3, 1, Kind.BUY, 500, 2, 2, 100),
            Offer(4, 2, Kind.BUY, 800, 3, 3, 100),
            # whole intervals 1 and 2 stay fixed: their feeder sums must stay exact
            Offer(5, 1, Kind.SELL, 700, 2, 2, 100),
            Offer(6, 2, Kind.BUY, 400, 2, 2, 100),
            Offer(7, 2, Kind.SELL, 600, 1, 1, 100),
            Offer(8, 1, Kind.BUY, 600, 1, 1, 100),
        ),
        fixed=(
            Trade(1, 2, 1, 1_000, 100),
            Trade(1, 3, 2, 500, 100),
            Trade(5, 6, 2, 400, 100),
            Trade(7, 8, 1, 600, 100),
        ),
        free_from=3,
    )
    # nothing alive trades in a finalized interval any more: nothing fixed is needed
    assert book.problem(FEEDERS, free_from=5).offers == ()
    assert book.problem(FEEDERS, free_from=5).fixed == ()


def test_reading_the_same_events_twice_changes_nothing() -> None:
    book = OrderBook()
    offers = [offer_from_event(_posted(i, 1, i % 2, 100, 1, 2)) for i in (1, 2)]
    assert book.add_offers(offers) == 2
    assert book.add_offers(offers) == 0
    assert book.add_finalized([Trade(1, 2, 1, 50, 100)]) == 1
    assert book.add_finalized([Trade(1, 2, 1, 50, 100)]) == 0
    assert book.finalized_energy == 50
    assert len(book.offers) == 2


def test_finalized_trade_of_unknown_offer_is_an_error() -> None:
    offers = [Offer(1, 1, Kind.SELL, 100, 1, 5, 1)]
    with pytest.raises(BookError):
        extended_problem(FEEDERS, offers, [Trade(1, 99, 2, 10, 1)], free_from=3)


def _content(offer: Offer) -> tuple[int, int, int, int, int, int]:
    return (offer.feeder, int(offer.kind), offer.energy, offer.start, offer.end, offer.price)


def _by_content(trades: Sequence[Trade], offers: dict[int, Offer]) -> Counter[tuple]:
    return Counter(
        (_content(offers[t.seller]), _content(offers[t.buyer]), t.interval, t.energy, t.price)
        for t in trades
    )


def _stream_with_book(
    feeders: Sequence[Feeder],
    offers: Sequence[Offer],
    first: int,
    last: int,
    window: int,
    t_clear: int,
    engine: str,
) -> tuple[list[Trade], dict[int, Offer]]:
    """A lockstep run without chain: prosumers post (fresh ids in posting order,
    like the contract), the solver solves its OrderBook problem, a minimal
    contract model keeps the best candidate and finalizes t + t_clear."""
    pending = sorted(offers, key=lambda o: (-o.start, o.feeder, -o.id))  # any order
    chain_offers: dict[int, Offer] = {}
    book, behaviour = OrderBook(), Honest()
    candidate: list[Trade] = []
    for clock in range(first - t_clear, last - t_clear + 1):
        free_from = clock + t_clear
        due = [o for o in pending if o.start <= clock + window - 1]
        pending = [o for o in pending if o not in due]
        for o in due:
            if o.end < free_from:  # prosumers skip offers that can no longer trade
                continue
            posted = Offer(
                len(chain_offers) + 1, o.feeder, o.kind, o.energy, o.start, o.end, o.price
            )
            chain_offers[posted.id] = posted
            book.add_offers([posted])
        problem = book.problem(feeders, free_from)
        result = solve(problem, engine, last_interval=last)
        decision = behaviour.decide(problem, result, sum(t.energy for t in candidate))
        if decision.solution is not None:
            candidate = list(decision.solution.trades)
        book.add_finalized(t for t in candidate if t.interval == free_from)
        candidate = [t for t in candidate if t.interval != free_from]
    return list(book.finalized), chain_offers


def _random_market(seed: int) -> list[Offer]:
    rng = random.Random(seed)
    offers = []
    for i in range(1, 61):
        start = rng.randint(1, 10)
        end = min(12, start + (rng.randint(1, 5) if rng.random() < 0.25 else 0))
        kind = Kind.SELL if rng.random() < 0.4 else Kind.BUY
        energy = rng.choice([300, 500, 800, 1_200, 2_500]) * (end - start + 1)
        offers.append(Offer(1000 + i, rng.choice([1, 2]), kind, energy, start, end, 100))
    return offers


@pytest.mark.parametrize("engine", ["highs", "glpk"])
@pytest.mark.parametrize(("window", "t_clear"), [(2, 1), (5, 2)])
def test_orderbook_stream_finalizes_what_replay_finalizes(
    engine: str, window: int, t_clear: int
) -> None:
    offers = _random_market(seed=window * 10 + t_clear)
    expected = replay(
        FEEDERS,
        offers,
        first_interval=1 + t_clear,
        last_interval=12,
        prediction_window=window,
        t_clear=t_clear,
        engine=engine,
    )
    trades, chain_offers = _stream_with_book(
        FEEDERS, offers, 1 + t_clear, 12, window, t_clear, engine
    )
    assert expected.total_wh > 0
    assert sum(t.energy for t in trades) == expected.total_wh
    assert _by_content(trades, chain_offers) == _by_content(
        expected.trades, {o.id: o for o in offers}
    )


def _transax_offers(folder: Path) -> list[Offer]:
    offers = []
    for path in sorted(folder.glob("prosumer_*.csv")):
        pid = int(path.stem.split("_")[1])
        with path.open() as fh:
            for n, row in enumerate(csv.DictReader(fh)):
                wh = round(float(row["energy"]) * 1000)
                if wh == 0:
                    continue
                kind = Kind.SELL if wh > 0 else Kind.BUY
                start, end = int(row["startTime"]), int(row["endTime"])
                offers.append(Offer(pid * 1000 + n, pid // 100, kind, abs(wh), start, end, 100))
    return offers


def test_orderbook_stream_equals_replay_on_transax_battery_window(transax_dir: Path) -> None:
    feeders = [Feeder(f, c_ext=20_000, c_int=25_000) for f in range(1, 12)]
    first, last = 50, 58
    offers = [o for o in _transax_offers(transax_dir / "withBattery") if first <= o.start <= last]
    expected = replay(
        feeders, offers, first_interval=first, last_interval=last, prediction_window=5, t_clear=1
    )
    trades, chain_offers = _stream_with_book(feeders, offers, first, last, 5, 1, "highs")
    assert expected.total_wh > 0
    assert _by_content(trades, chain_offers) == _by_content(
        expected.trades, {o.id: o for o in offers}
    )
