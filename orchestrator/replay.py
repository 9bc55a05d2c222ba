"""`testbed replay`: the streaming market of a spec, without chain or agents, and
the AC power flow of its finalized trades (the `grid` block, orchestrator/grid/)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from market.errors import MarketError
from market.replay import ReplayResult, replay
from market.types import Offer, Trade
from orchestrator.errors import TestbedError
from orchestrator.grid.flow import disabled_block, grid_of_trades, summary_lines
from orchestrator.scenario import Scenario


def replay_scenario(
    scenario: Scenario, engine: str | None = None, offers: Sequence[Offer] | None = None
) -> ReplayResult:
    """market.replay of `scenario` under every market setting of its spec (window,
    T_clear, tie-break, minimum improvement): what a lockstep run of it finalizes.
    `engine`: the first solver's by default; `offers`: the scenario's by default."""
    spec, market = scenario.spec, scenario.spec.market
    return replay(
        scenario.feeders,
        list(scenario.offers if offers is None else offers),
        first_interval=market.first_interval,
        last_interval=market.last_interval,
        prediction_window=market.prediction_window,
        t_clear=market.t_clear,
        engine=engine or spec.solvers[0].engine,
        tie_break=market.tie_break,
        min_improvement=market.min_improvement_wh,
    )


def run_replay(scenario: Scenario, engine: str) -> dict[str, Any]:
    """Replay `scenario` with `engine`; the summary that `testbed replay --json`
    prints: market.ReplayResult.summary() plus what was replayed."""
    spec, market = scenario.spec, scenario.spec.market
    try:
        result = replay_scenario(scenario, engine)
    except MarketError as exc:
        raise TestbedError(f"replay of {spec.name}: {exc}") from exc
    dataset = spec.microgrid.dataset
    return {
        "spec": spec.name,
        "dataset": {
            "kind": dataset.kind,
            **({"path": dataset.path} if dataset.path else {}),
            **(
                {"seed": dataset.seed, "battery": dataset.battery, "scale": dataset.scale}
                if dataset.kind == "synthetic"
                else {}
            ),
            "prosumers": len(scenario.dataset.prosumers),
            "feeders": len(scenario.feeders),
            "offers": len(scenario.offers),
        },
        "market": {
            "first_interval": market.first_interval,
            "last_interval": market.last_interval,
            "prediction_window": market.prediction_window,
            "t_clear": market.t_clear,
            "interval_minutes": market.interval_minutes,
            "tie_break": market.tie_break,
        },
        **result.summary(engine),
        "grid": replay_grid(scenario, result.trades),
    }


def replay_grid(scenario: Scenario, trades: Iterable[Trade]) -> dict[str, Any]:
    """The `grid` block of replayed trades: what a run's summary.json holds for
    the same trades (orchestrator.grid.bundle)."""
    if not scenario.spec.microgrid.grid.enabled:
        return disabled_block()
    return grid_of_trades(scenario, trades).block()


def grid_text(summary: dict[str, Any]) -> str:
    """The short text summary of a replay's grid block."""
    return "\n".join(summary_lines(summary.get("grid") or disabled_block()))
