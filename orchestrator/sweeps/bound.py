"""The all-offers-at-once optimum of a sweep point's dataset: Figure 9's upper bound.

One LP over every offer of the day (`market.replay.all_at_once`): what a market that
saw the whole day at once could trade. No prediction window and no tie-break policy
can finalize more. Points that differ only in L or in the policy share the bound, so it
is computed once per dataset and market window.
"""

from __future__ import annotations

from orchestrator.errors import TestbedError
from orchestrator.spec import Spec


class Bounds:
    """Cache of all-at-once optima (kWh) by what they depend on."""

    def __init__(self) -> None:
        self._kwh: dict[str, float] = {}

    def kwh(self, spec: Spec) -> float:
        m = spec.market
        window = (m.first_interval, m.last_interval, m.interval_minutes)
        key = repr((spec.microgrid, spec.seed, window))
        if key not in self._kwh:
            self._kwh[key] = _solve(spec)
        return self._kwh[key]


def _solve(spec: Spec) -> float:
    from market.errors import MarketError
    from market.replay import all_at_once
    from orchestrator.scenario import build_scenario

    scenario = build_scenario(spec)
    m = spec.market
    try:
        wh = all_at_once(
            scenario.feeders,
            scenario.offers,
            first_interval=m.first_interval,
            last_interval=m.last_interval,
        )
    except MarketError as exc:
        raise TestbedError(f"all-at-once optimum of {spec.name}: {exc}") from exc
    return round(wh / 1000, 4)
