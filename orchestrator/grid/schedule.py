"""What each prosumer injects into the grid per interval (Wh, > 0 = production),
with the market's finalized schedule and without a local market.

A trace row of one interval is physical: the prosumer produces or consumes it
then, whether the market traded it (delivered to a local buyer) or not (sent to /
drawn from the main grid through the feeder's transformer), so both cases count
it. A row spanning several intervals is flexible energy (a producer's battery,
orchestrator.datasets.battery): without a market it flows when it was produced
(its start interval, where the dataset puts production); with the market it
flows when and as much as it was traded, and the rest stays in the battery.
Without multi-interval offers both cases are the same power flow: the market
changes who pays whom, not where the power goes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from market.types import Kind, Trade
from orchestrator.scenario import Scenario


@dataclass(frozen=True)
class Injections:
    """Wh per (interval, prosumer); rows follow `intervals`, columns `prosumers`."""

    intervals: tuple[int, ...]
    prosumers: tuple[int, ...]
    market: np.ndarray
    no_market: np.ndarray


def flexible_offers(scenario: Scenario) -> dict[int, tuple[int, int]]:
    """Market offer id -> (prosumer, sign) of every offer from a multi-interval row.

    Walks the rows as orchestrator.datasets.offers numbers them (prosumers by id,
    rows in file order, non-zero rows meeting the window)."""
    m = scenario.spec.market
    rows = [
        (prosumer.id, row)
        for prosumer in sorted(scenario.dataset.prosumers, key=lambda p: p.id)
        for row in prosumer.offers
        if row.energy_wh != 0 and row.intersects(m.first_interval, m.last_interval)
    ]
    result: dict[int, tuple[int, int]] = {}
    for (prosumer, row), owned in zip(rows, scenario.owned, strict=True):
        assert owned.prosumer == prosumer and owned.offer.energy == abs(row.energy_wh)
        if row.start != row.end:
            sign = 1 if owned.offer.kind is Kind.SELL else -1
            result[owned.offer.id] = (prosumer, sign)
    return result


def injections(
    scenario: Scenario, trades: Iterable[Trade], prosumers: tuple[int, ...]
) -> Injections:
    """Both cases for the spec's window; `trades` name market offer ids (1..n of
    the scenario), `prosumers` is the column order (the network's)."""
    m = scenario.spec.market
    intervals = tuple(range(m.first_interval, m.last_interval + 1))
    row_of = {t: i for i, t in enumerate(intervals)}
    col_of = {p: j for j, p in enumerate(prosumers)}
    market = np.zeros((len(intervals), len(prosumers)))
    no_market = np.zeros_like(market)
    for prosumer in scenario.dataset.prosumers:
        col = col_of[prosumer.id]
        for row in prosumer.offers:
            i = row_of.get(row.start)
            if i is None:
                continue
            no_market[i, col] += row.energy_wh
            if row.start == row.end:
                market[i, col] += row.energy_wh
    flexible = flexible_offers(scenario)
    for trade in trades:
        i = row_of.get(trade.interval)
        if i is None:
            continue
        for offer_id in (trade.seller, trade.buyer):
            if offer_id in flexible:
                prosumer_id, sign = flexible[offer_id]
                market[i, col_of[prosumer_id]] += sign * trade.energy
    return Injections(intervals, prosumers, market, no_market)
