"""The grid step of a run: from a results bundle (its resolved spec and the
recorder's finalized trades) to the `grid` block of summary.json and grid/grid.csv.

It runs after the run, from the bundle alone (orchestrator.results.summary calls
it), so it works for any backend and for a bundle read back later. A failure of
the step is reported in the block, never raised: the run's summary is written
whatever the power flow does.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from market.types import Kind, Trade
from orchestrator.grid.flow import CSV_NAME, disabled_block, grid_of_trades
from orchestrator.scenario import Scenario

GRID_DIR = "grid"
_log = logging.getLogger(__name__)

OfferKey = tuple[int, str, int, int, int]  # feeder, kind, energy_wh, start, end


def bundle_grid(bundle: Path) -> dict[str, Any]:
    """The bundle's `grid` block; writes <bundle>/grid/grid.csv."""
    from orchestrator.scenario import build_scenario
    from orchestrator.spec import load_spec

    try:
        spec = load_spec(bundle / "spec.yaml", env={})
        if not spec.microgrid.grid.enabled:
            return disabled_block()
        scenario = build_scenario(spec)
        trades = bundle_trades(scenario, bundle / "events")
        result = grid_of_trades(scenario, trades)
        result.write_csv(bundle / GRID_DIR / CSV_NAME)
    except Exception as exc:  # the summary goes on without the grid
        _log.exception("grid power flow of %s failed", bundle)
        first = str(exc).strip().splitlines()
        return {"enabled": True, "error": f"{type(exc).__name__}: {first[0] if first else ''}"}
    return {**result.block(), "csv": f"{GRID_DIR}/{CSV_NAME}"}


def bundle_trades(scenario: Scenario, events: Path) -> list[Trade]:
    """The recorder's finalized trades with the scenario's offer ids (the chain's
    ids mapped by offer content, see `scenario_offer_ids`)."""
    ids = scenario_offer_ids(scenario, _rows(events / "offers.csv"))
    trades = []
    for r in _rows(events / "trades.csv"):
        seller, buyer = ids.get(int(r["seller"])), ids.get(int(r["buyer"]))
        if seller is None or buyer is None:
            _log.warning("trade of unknown offers %s -> %s left out", r["seller"], r["buyer"])
            continue
        trades.append(
            Trade(seller, buyer, int(r["interval"]), int(r["energy_wh"]), int(r["price"]))
        )
    return trades


def scenario_offer_ids(scenario: Scenario, offers_csv: Iterable[dict[str, str]]) -> dict[int, int]:
    """Chain offer id -> the scenario's offer id, by content (feeder, kind, energy,
    interval range as posted): offers come from anonymous addresses. Identical
    offers are assigned in the scenario's order (prosumer id order)."""
    by_key: dict[OfferKey, list[int]] = defaultdict(list)
    for owned in scenario.owned:
        o = owned.offer
        kind = "sell" if o.kind is Kind.SELL else "buy"
        by_key[(o.feeder, kind, o.energy, o.start, o.end)].append(o.id)
    taken: Counter[OfferKey] = Counter()
    result: dict[int, int] = {}
    for r in offers_csv:
        key = (int(r["feeder"]), r["kind"], int(r["energy_wh"]), int(r["start"]), int(r["end"]))
        candidates = by_key.get(key, [])
        if taken[key] < len(candidates):
            result[int(r["offer_id"])] = candidates[taken[key]]
            taken[key] += 1
    return result


def _rows(path: Path) -> Iterator[dict[str, str]]:
    if not path.exists():
        return
    with path.open(newline="") as fh:
        yield from csv.DictReader(fh)
