"""A day of power flows: every interval of the window, with the market's finalized
schedule and without a local market (orchestrator/grid/schedule.py), on one net
built once. The result is a `grid` block (summary.json, `replay --json`) and a
CSV with one row per interval and case (the bundle's grid/grid.csv).
"""

from __future__ import annotations

import csv
import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from market.types import Trade
from orchestrator.grid.model import NetworkDescription, describe_network
from orchestrator.grid.network import FlowResult, PowerFlowNetwork
from orchestrator.grid.schedule import Injections, injections
from orchestrator.scenario import Scenario

CASES = ("market", "no_market")
CSV_NAME = "grid.csv"
CSV_COLUMNS = ("interval", "case", *(f.name for f in dataclasses.fields(FlowResult)))
DIGITS = 6
"""Floats in the block and the CSV are rounded to this many decimals."""


@dataclass(frozen=True)
class IntervalFlows:
    interval: int
    market: FlowResult
    no_market: FlowResult

    def case(self, name: str) -> FlowResult:
        return self.market if name == "market" else self.no_market


@dataclass(frozen=True)
class GridResult:
    network: NetworkDescription
    flows: tuple[IntervalFlows, ...]
    interval_minutes: int
    seconds: float
    """Wall time of the power flows (building the net included)."""

    def block(self) -> dict[str, Any]:
        """The `grid` block: network, band, and per case the extremes over the
        window, energy lost, violations and intervals that did not converge."""
        return {
            "enabled": True,
            "network": self.network.summary(),
            "intervals": len(self.flows),
            **{case: self._case_block(case) for case in CASES},
            "seconds": round(self.seconds, 3),
        }

    def _case_block(self, case: str) -> dict[str, Any]:
        results = [(f.interval, f.case(case)) for f in self.flows]
        ok = [r for _, r in results if r.converged]
        hours = self.interval_minutes / 60

        def extreme(name: str, pick: Any) -> float | None:
            values = [getattr(r, name) for r in ok]
            return _round(pick(values)) if values else None

        return {
            "vm_min_pu": extreme("vm_min_pu", min),
            "vm_max_pu": extreme("vm_max_pu", max),
            "line_loading_max_percent": extreme("line_loading_max_percent", max),
            "trafo_loading_max_percent": extreme("trafo_loading_max_percent", max),
            "losses_kwh": _round(sum(float(r.losses_kw or 0) for r in ok) * hours),
            "intervals_with_violations": sum(1 for r in ok if r.violations),
            "intervals_undervoltage": sum(1 for r in ok if r.buses_undervoltage),
            "intervals_overvoltage": sum(1 for r in ok if r.buses_overvoltage),
            "intervals_line_overload": sum(1 for r in ok if r.lines_overloaded),
            "intervals_trafo_overload": sum(1 for r in ok if r.trafos_overloaded),
            "not_converged": [
                {"interval": t, "reason": r.reason} for t, r in results if not r.converged
            ],
        }

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"interval": f.interval, "case": case, **_plain(f.case(case))}
            for f in self.flows
            for case in CASES
        ]

    def write_csv(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows())
        return path


def power_flows(
    network: PowerFlowNetwork, injected: Injections, interval_minutes: int
) -> list[IntervalFlows]:
    """One power flow per interval and case; Wh per interval become MW."""
    return [
        solve_interval(network, t, injected.market[i], injected.no_market[i], interval_minutes)
        for i, t in enumerate(injected.intervals)
    ]


def solve_interval(
    network: PowerFlowNetwork,
    interval: int,
    market_wh: np.ndarray,
    no_market_wh: np.ndarray,
    interval_minutes: int,
) -> IntervalFlows:
    """Both cases of one interval. Where they inject the same (no flexible energy
    traded or stored: most of a day) the no-market case is the same power flow."""
    to_mw = 60 / interval_minutes / 1e6
    market = network.solve(market_wh * to_mw)
    if np.array_equal(market_wh, no_market_wh):
        return IntervalFlows(interval, market, market)
    return IntervalFlows(interval, market, network.solve(no_market_wh * to_mw))


def grid_of_trades(scenario: Scenario, trades: Iterable[Trade]) -> GridResult:
    """Build the scenario's network and run both cases of every interval."""
    start = time.perf_counter()
    spec = scenario.spec
    description = describe_network(spec.microgrid.grid, scenario.dataset, spec.source)
    network = PowerFlowNetwork(description)
    injected = injections(scenario, trades, description.prosumers)
    flows = power_flows(network, injected, spec.market.interval_minutes)
    return GridResult(
        description, tuple(flows), spec.market.interval_minutes, time.perf_counter() - start
    )


def comparable(block: Mapping[str, Any]) -> dict[str, Any]:
    """The block without its timing and the bundle's CSV path: what replay and a
    lockstep run agree on."""
    return {k: v for k, v in block.items() if k not in ("seconds", "csv")}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), DIGITS)


def _plain(result: FlowResult) -> dict[str, Any]:
    return {
        k: _round(v) if isinstance(v, float) else v for k, v in dataclasses.asdict(result).items()
    }


def disabled_block() -> dict[str, Any]:
    return {"enabled": False}


def summary_lines(block: Mapping[str, Any], cases: Sequence[str] = CASES) -> list[str]:
    """A few lines for the terminal (`testbed replay`)."""
    if not block.get("enabled"):
        return ["grid: power flow disabled (microgrid.grid.enabled: false)"]
    if "error" in block:
        return [f"grid: power flow failed: {block['error']}"]
    net, band = block["network"], block["network"]["band"]
    lines = [
        f"grid: {net['feeders']} feeders, {net['buses']} buses, {block['intervals']} intervals "
        f"in {block['seconds']:.2f} s; band {band['vm_min_pu']}-{band['vm_max_pu']} p.u., "
        f"{band['max_loading_percent']:g} % loading"
    ]
    for case in cases:
        c = block[case]
        if c["vm_min_pu"] is None:
            lines.append(f"  {case:9s}: no power flow converged")
            continue
        lines.append(
            f"  {case:9s}: V {c['vm_min_pu']:.4f}-{c['vm_max_pu']:.4f} p.u., max loading "
            f"line {c['line_loading_max_percent']:.1f} % / transformer "
            f"{c['trafo_loading_max_percent']:.1f} %, losses {c['losses_kwh']:.2f} kWh, "
            f"{c['intervals_with_violations']} intervals with violations, "
            f"{len(c['not_converged'])} not converged"
        )
    return lines
