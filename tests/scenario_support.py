"""Scenarios built in memory (no dataset file, no I/O) for planner tests."""

from __future__ import annotations

from collections.abc import Sequence

from agents.common.market import MarketConfig
from market.types import Feeder
from orchestrator.datasets import Dataset, ProsumerTrace, owned_offers
from orchestrator.scenario import Scenario
from orchestrator.spec import (
    DatasetConfig,
    DeploymentConfig,
    MicrogridConfig,
    PricesConfig,
    SolverConfig,
    Spec,
)


def memory_scenario(
    traces: Sequence[ProsumerTrace],
    market: MarketConfig,
    solvers: Sequence[SolverConfig],
    *,
    per_host: int | None = None,
    feeders: Sequence[int] = (1,),
    prices: tuple[int, int] = (1, 2),
    seed: int = 3,
) -> Scenario:
    """A scenario of `traces` on `feeders` (limits 20 / 25 kWh per interval)."""
    spec = Spec(
        name="t",
        seed=seed,
        microgrid=MicrogridConfig(DatasetConfig("synthetic"), prices=PricesConfig(*prices)),
        market=market,
        solvers=tuple(solvers),
        deployment=DeploymentConfig(prosumers_per_host=per_host),
    )
    dataset = Dataset(tuple(traces))
    owned = owned_offers(dataset, *prices, market.first_interval, market.last_interval)
    return Scenario(spec, dataset, tuple(Feeder(f, 20_000, 25_000) for f in feeders), tuple(owned))
