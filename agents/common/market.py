"""Market timing, defined once.

`MarketConfig` is the spec's `market:` section (the spec loads it, field names are
the spec's keys); `MarketParams` is what every agent, the contract's constructor,
the DSO's bootstrap answer and the compose deploy step are told: the same fields
plus the chain's time base, fixed when the contract is deployed.

A new market setting is one field of MarketConfig (plus its entry in the spec's
schema, orchestrator/spec/schema.py): the planner copies every field into
MarketParams, the renderer writes it into each agent's config and the agents parse
it back with these classes (agents.common.typed).

Intervals: delivery intervals first_interval .. last_interval are traded; clock
interval t runs first_interval - t_clear .. last_interval - t_clear, and at its end
finalize() fixes delivery interval t + t_clear.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from agents.common.errors import ConfigError

if TYPE_CHECKING:
    from fractions import Fraction

MINUTES_PER_DAY = 1440
# Lockstep chain time: one interval per virtual hour of chain time is plenty; only
# the ordering of timestamps matters (run-interfaces.md "Time").
LOCKSTEP_INTERVAL_SECONDS = 3600

ClockMode = Literal["lockstep", "wallclock"]
# Which of the equally large optima a solver picks (market.tiebreak.TIE_BREAKS;
# a test keeps them equal).
TieBreak = Literal["expiring-first", "storage-last", "none"]


def wh_per_interval(kw: float, interval_minutes: int) -> Fraction:
    """Energy of `kw` sustained over one interval, in Wh (exact; the decimal
    value of `kw` as written, so 0.1 kW is exactly 1/10)."""
    from fractions import Fraction  # with decimal: the spec's checks, not an agent's start

    return Fraction(str(kw)) * interval_minutes * 1000 / 60


@dataclass(frozen=True)
class MarketConfig:
    """The market's settings: interval length Δ, traded intervals, prediction window L,
    T_clear, simulated interval length Δ̂, solver period Δs, clock mode, tie-break."""

    interval_minutes: int = 15
    first_interval: int = 1
    last_interval: int = 96
    prediction_window: int = 2
    t_clear: int = 1
    simulated_interval_seconds: float = 120
    solver_period_seconds: float = 5
    clock: ClockMode = "lockstep"
    tie_break: TieBreak = "expiring-first"
    # The contract's liveness bounds (contracts/README.md): smaller offers revert
    # OfferTooSmall; offers one address may have open; trades one finalize() settles.
    min_offer_energy_wh: int = 1
    max_open_offers: int = 256
    settle_chunk: int = 400
    # Wh by which a solution must beat the candidate; checked before the verification, so
    # a copied or inferior solution reverts NotBetter cheaply (1: strictly better)
    min_improvement_wh: int = 1

    @property
    def intervals_per_day(self) -> int:
        return MINUTES_PER_DAY // self.interval_minutes

    def wh(self, kw: float) -> int:
        """`kw` as whole Wh per interval (spec validation guarantees it is whole)."""
        energy = wh_per_interval(kw, self.interval_minutes)
        if energy.denominator != 1:
            raise ValueError(f"{kw} kW is not a whole number of Wh per interval")
        return int(energy)

    @property
    def chain_interval_seconds(self) -> int:
        """Chain seconds per interval: virtual hours in lockstep, Δ̂ in wallclock."""
        if self.clock == "lockstep":
            return LOCKSTEP_INTERVAL_SECONDS
        return max(1, round(self.simulated_interval_seconds))

    @property
    def first_clock_interval(self) -> int:
        return self.first_interval - self.t_clear

    @property
    def last_clock_interval(self) -> int:
        return self.last_interval - self.t_clear

    def clock_intervals(self) -> range:
        """Clock intervals t; at the end of t, delivery interval t + t_clear is fixed."""
        return range(self.first_clock_interval, self.last_clock_interval + 1)

    def settings(self) -> dict[str, Any]:
        """The MarketConfig fields only (without a MarketParams' chain time base)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(MarketConfig)}


@dataclass(frozen=True)
class MarketParams(MarketConfig):
    """The market as a run's agents and contract see it: the settings plus the chain's
    time base. Clock interval t starts at epoch + (t - first_clock_interval) *
    interval_seconds (chain time). `epoch` is 0 until the contract is deployed."""

    interval_seconds: int = LOCKSTEP_INTERVAL_SECONDS
    epoch: int = 0

    def __post_init__(self) -> None:
        if self.prediction_window < 1 or self.t_clear < 1:
            raise ConfigError("prediction_window and t_clear must be >= 1")
        if self.last_interval < self.first_interval:
            raise ConfigError("last_interval is before first_interval")
        if self.interval_seconds < 1:
            raise ConfigError("interval_seconds must be >= 1")

    @classmethod
    def of(cls, config: MarketConfig, epoch: int = 0) -> MarketParams:
        """The run's market from the spec's settings (chain seconds by clock mode)."""
        return cls(**config.settings(), interval_seconds=config.chain_interval_seconds, epoch=epoch)

    def at_epoch(self, epoch: int) -> MarketParams:
        return dataclasses.replace(self, epoch=epoch)

    def interval_start(self, t: int) -> int:
        """Chain timestamp at which clock interval t starts (end = start of t+1)."""
        return self.epoch + (t - self.first_clock_interval) * self.interval_seconds

    def interval_at(self, timestamp: float) -> int:
        """Clock interval running at chain time `timestamp`."""
        return self.first_clock_interval + int((timestamp - self.epoch) // self.interval_seconds)

    def clock_end(self, clock_interval: int) -> int:
        """Chain time at which clock interval `clock_interval` ends."""
        return self.interval_start(clock_interval + 1)

    def finalizable_at(self, delivery_interval: int) -> int:
        """Chain time from which `delivery_interval` can be finalized."""
        return self.clock_end(delivery_interval - self.t_clear)
