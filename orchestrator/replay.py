"""`testbed replay`: the streaming market of a spec, without chain or agents."""

from __future__ import annotations

from typing import Any

from market.errors import MarketError
from market.replay import replay
from orchestrator.errors import TestbedError
from orchestrator.scenario import Scenario


def run_replay(scenario: Scenario, engine: str) -> dict[str, Any]:
    """Replay `scenario` with `engine`; the summary that `testbed replay --json`
    prints: market.ReplayResult.summary() plus what was replayed."""
    spec, market = scenario.spec, scenario.spec.market
    try:
        result = replay(
            scenario.feeders,
            scenario.offers,
            first_interval=market.first_interval,
            last_interval=market.last_interval,
            prediction_window=market.prediction_window,
            t_clear=market.t_clear,
            engine=engine,
            tie_break=market.tie_break,
        )
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
    }
