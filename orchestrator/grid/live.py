"""The power flow of each interval as soon as the recorder finalized it, for the
orchestrator's exporter (dashboards): the same network and injections as the
post-run step (orchestrator/grid/bundle.py), fed from the growing event CSVs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from market.types import Trade
from orchestrator.grid.bundle import scenario_offer_ids
from orchestrator.grid.flow import IntervalFlows, solve_interval
from orchestrator.grid.model import describe_network
from orchestrator.grid.network import PowerFlowNetwork
from orchestrator.grid.schedule import flexible_offers, injections
from orchestrator.progress import CsvTail
from orchestrator.scenario import Scenario


class LiveGrid:
    """Follows a bundle's events/ and solves every newly finalized interval."""

    def __init__(self, scenario: Scenario, events: Path) -> None:
        spec = scenario.spec
        self.scenario = scenario
        description = describe_network(spec.microgrid.grid, scenario.dataset, spec.source)
        self.network = PowerFlowNetwork(description)
        self._base = injections(scenario, (), description.prosumers)
        self._row = {t: i for i, t in enumerate(self._base.intervals)}
        self._col = {p: j for j, p in enumerate(description.prosumers)}
        self._flexible = flexible_offers(scenario)
        self._offers = CsvTail(events / "offers.csv")
        self._trades = CsvTail(events / "trades.csv")
        self._offer_rows: list[dict[str, str]] = []
        self._trade_rows: list[dict[str, str]] = []
        self._minutes = spec.market.interval_minutes
        self.next_interval = spec.market.first_interval

    @classmethod
    def of_bundle(cls, bundle: Path) -> LiveGrid | None:
        """A follower of the run whose bundle is `bundle`, or None when its spec
        disables the grid."""
        from orchestrator.scenario import build_scenario
        from orchestrator.spec import load_spec

        spec = load_spec(bundle / "spec.yaml", env={})
        if not spec.microgrid.grid.enabled:
            return None
        return cls(build_scenario(spec), bundle / "events")

    def advance(self, finalized: int) -> list[IntervalFlows]:
        """Power flows of every interval up to `finalized` not yet solved."""
        last = min(finalized, self._base.intervals[-1])
        if self.next_interval > last:
            return []
        self._offer_rows += self._offers.read_new()
        self._trade_rows += self._trades.read_new()
        ids = scenario_offer_ids(self.scenario, self._offer_rows)
        flows = []
        while self.next_interval <= last:
            t = self.next_interval
            i = self._row[t]
            market = self._base.market[i] + self._flexible_part(t, ids)
            no_market = self._base.no_market[i]
            flows.append(solve_interval(self.network, t, market, no_market, self._minutes))
            self.next_interval += 1
        return flows

    def _flexible_part(self, interval: int, ids: dict[int, int]) -> np.ndarray:
        part = np.zeros(len(self._col))
        for r in self._trade_rows:
            if int(r["interval"]) != interval:
                continue
            trade = Trade(
                ids.get(int(r["seller"]), 0),
                ids.get(int(r["buyer"]), 0),
                interval,
                int(r["energy_wh"]),
                0,
            )
            for offer_id in (trade.seller, trade.buyer):
                if offer_id in self._flexible:
                    prosumer, sign = self._flexible[offer_id]
                    part[self._col[prosumer]] += sign * trade.energy
        return part
