"""The streaming market of section 4.3 without chain or agents: what the smart contract
and one solver do, interval by interval. A lockstep testbed run (same offers, same
parameters, same engine, tie-break policy and price rule) finalizes exactly the trades
`replay` does.

Semantics, for delivery intervals first..last, prediction window L, T_clear:
- The clock runs t = first - T_clear .. last - T_clear. At clock interval t the
  interval t + T_clear is finalized, so the first step finalizes `first`.
- Visible at t: every offer with start <= t + L - 1 (the paper counts the current
  interval in L: offers are posted L - 1 intervals ahead of their start).
- The solver solves the extended problem: visible offers, fixed = trades finalized so
  far, free_from = t + T_clear, free intervals limited to <= last. Offers that can no
  longer trade (end < t + T_clear) are left out, and so are fixed trades of intervals
  that no live offer traded in (see `extended_problem`); the LP is the same either way.
- Contract rule: the candidate (initially empty) is replaced by the new solution only
  if the new objective beats the candidate's remaining objective (its trades in
  intervals >= t + T_clear) by the market's minimum improvement (1 Wh by default:
  strictly greater; market.rules.beats_candidate). The old candidate stays feasible, since
  offers only grow and fixed trades came from it.
- Then the candidate's trades of interval t + T_clear are finalized: removed from the
  candidate and appended to the fixed trades.
Same inputs give a byte-identical `to_json()` (timings are kept out of it).

`offer_wait`: per offer that some accepted candidate traded, the clock intervals
from the one it became visible in to the one whose candidate first traded it. It is
the market's own share of offer-to-trade latency (a run's recorder counts the same
thing as `offer_to_trade_intervals`): an optimum may leave an offer out until later
offers change it, however fast the testbed is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from market.errors import MarketError
from market.rules import beats_candidate
from market.solve import PriceRule, midpoint_price, solve, sorted_trades
from market.tiebreak import DEFAULT_TIE_BREAK
from market.types import Feeder, Offer, Problem, Trade


@dataclass(frozen=True, slots=True)
class ReplayStep:
    """One clock interval: what was visible, solved, kept and finalized (Wh)."""

    clock: int
    finalized_interval: int
    visible_offers: int
    solution_wh: int
    candidate_wh: int
    replaced: bool
    finalized_wh: int


@dataclass(frozen=True)
class ReplayResult:
    engine: str
    per_interval_wh: dict[int, int]
    trades: tuple[Trade, ...]
    steps: tuple[ReplayStep, ...]
    solve_seconds_total: float
    offer_wait: Mapping[int, int] = field(default_factory=dict)
    tie_break: str = DEFAULT_TIE_BREAK

    @property
    def total_wh(self) -> int:
        return sum(self.per_interval_wh.values())

    @property
    def solves(self) -> int:
        return len(self.steps)

    @property
    def replacements(self) -> int:
        return sum(step.replaced for step in self.steps)

    def to_json(self) -> str:
        """Deterministic JSON of everything but timings (sorted keys, no spaces)."""
        doc = {
            "engine": self.engine,
            "per_interval_wh": {str(t): wh for t, wh in sorted(self.per_interval_wh.items())},
            "total_wh": self.total_wh,
            "trades": [[t.seller, t.buyer, t.interval, t.energy, t.price] for t in self.trades],
            "solves": self.solves,
            "replacements": self.replacements,
            "steps": [
                [
                    s.clock,
                    s.finalized_interval,
                    s.visible_offers,
                    s.solution_wh,
                    s.candidate_wh,
                    int(s.replaced),
                    s.finalized_wh,
                ]
                for s in self.steps
            ],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    def summary(self, engine: str | None = None) -> dict[str, Any]:
        """What `testbed replay --json` prints (energies in kWh)."""
        return {
            "engine": engine or self.engine,
            "tie_break": self.tie_break,
            "total_energy_traded_kwh": self.total_wh / 1000,
            "per_interval_kwh": {
                str(t): wh / 1000 for t, wh in sorted(self.per_interval_wh.items())
            },
            "trades": len(self.trades),
            "solves": self.solves,
            "replacements": self.replacements,
            "solve_seconds_total": self.solve_seconds_total,
            "offer_to_trade_intervals": wait_summary(self.offer_wait.values()),
        }


def wait_summary(waits: Iterable[int]) -> dict[str, float | int | None]:
    """p50/p95/p99 (linear interpolation, as the recorder's), max, count."""
    values = np.fromiter(waits, dtype=np.float64)
    if not len(values):
        return {"p50": None, "p95": None, "p99": None, "max": None, "count": 0}
    p50, p95, p99 = (float(v) for v in np.percentile(values, [50, 95, 99]))
    return {"p50": p50, "p95": p95, "p99": p99, "max": float(values.max()), "count": len(values)}


def replay(
    feeders: Iterable[Feeder],
    offers: Iterable[Offer],
    *,
    first_interval: int,
    last_interval: int,
    prediction_window: int,
    t_clear: int = 1,
    engine: str = "highs",
    price_rule: PriceRule = midpoint_price,
    tie_break: str = DEFAULT_TIE_BREAK,
    min_improvement: int = 1,
) -> ReplayResult:
    """Run the streaming market (see the module docstring); `min_improvement`: the
    market's min_improvement_wh (market.rules.beats_candidate)."""
    if prediction_window < 1 or t_clear < 1 or first_interval > last_interval:
        raise MarketError(
            "replay needs prediction_window >= 1, t_clear >= 1 and first <= last interval"
        )
    feeder_tuple = tuple(feeders)
    by_start = sorted(offers, key=lambda o: (o.start, o.id))
    by_id = {o.id: o for o in by_start}
    if len(by_id) != len(by_start):
        raise MarketError("duplicate offer ids")
    fixed: list[Trade] = []
    candidate: list[Trade] = []
    steps: list[ReplayStep] = []
    visible_since: dict[int, int] = {}
    first_traded: dict[int, int] = {}
    seconds = 0.0
    for clock in range(first_interval - t_clear, last_interval - t_clear + 1):
        free_from = clock + t_clear
        visible = [o for o in by_start if o.start <= clock + prediction_window - 1]
        for offer in visible:
            visible_since.setdefault(offer.id, clock)
        problem = extended_problem(feeder_tuple, visible, fixed, free_from)
        result = solve(
            problem,
            engine,
            price_rule=price_rule,
            last_interval=last_interval,
            tie_break=tie_break,
        )
        seconds += result.build_seconds + result.solve_seconds
        new_wh = result.solution.objective
        replaced = beats_candidate(new_wh, sum(t.energy for t in candidate), min_improvement)
        if replaced:
            candidate = list(result.solution.trades)
            for trade in candidate:
                first_traded.setdefault(trade.seller, clock)
                first_traded.setdefault(trade.buyer, clock)
        done = [t for t in candidate if t.interval == free_from]
        candidate = [t for t in candidate if t.interval != free_from]
        fixed.extend(done)
        steps.append(
            ReplayStep(
                clock=clock,
                finalized_interval=free_from,
                visible_offers=len(visible),
                solution_wh=new_wh,
                candidate_wh=sum(t.energy for t in done) + sum(t.energy for t in candidate),
                replaced=replaced,
                finalized_wh=sum(t.energy for t in done),
            )
        )
    per_interval = {t: 0 for t in range(first_interval, last_interval + 1)}
    for trade in fixed:
        per_interval[trade.interval] += trade.energy
    wait = {i: clock - visible_since[i] for i, clock in sorted(first_traded.items())}
    return ReplayResult(
        engine, per_interval, sorted_trades(fixed), tuple(steps), seconds, wait, tie_break
    )


def extended_problem(
    feeders: Iterable[Feeder],
    offers: Iterable[Offer],
    fixed: Iterable[Trade],
    free_from: int,
) -> Problem:
    """The extended problem (section 4.3) at `free_from`, without what cannot matter.

    `offers` are the offers posted so far with their ORIGINAL energy; `fixed` the trades
    finalized so far. Kept: offers that can still trade (end >= free_from); the fixed
    trades of every interval in which one of them has a fixed trade (whole intervals, so
    that each kept interval's feeder sums stay exact and every live offer's used energy
    is complete); and the offers those trades name. What is dropped has no free LP cell,
    so the LP is unchanged. Shared by `replay` and the solver agent, so that a lockstep
    run builds exactly replay's problems. Canonical order: feeders, offers and trades
    sorted by id."""
    by_id = {o.id: o for o in offers}
    fixed_list = list(fixed)
    alive = {i for i, o in by_id.items() if o.end >= free_from}
    busy = {t.interval for t in fixed_list if t.seller in alive or t.buyer in alive}
    relevant = [t for t in fixed_list if t.interval in busy]
    needed = alive | {t.seller for t in relevant} | {t.buyer for t in relevant}
    missing = needed - by_id.keys()
    if missing:
        raise MarketError(f"finalized trades name offers never posted: {sorted(missing)[:5]}")
    return Problem(
        feeders=tuple(sorted(feeders, key=lambda f: f.id)),
        offers=tuple(by_id[i] for i in sorted(needed)),
        fixed=tuple(sorted(relevant)),
        free_from=free_from,
    )


def all_at_once(
    feeders: Iterable[Feeder],
    offers: Iterable[Offer],
    *,
    first_interval: int,
    last_interval: int,
    engine: str = "highs",
) -> float:
    """The all-offers-at-once optimum in Wh: one LP over every offer of the day, with
    intervals first..last free and nothing fixed. An upper bound on what `replay`
    finalizes with any prediction window and any tie-break policy (its finalized trades
    are a feasible solution of this problem), reached when the market is not myopic."""
    problem = Problem(
        feeders=tuple(sorted(feeders, key=lambda f: f.id)),
        offers=tuple(sorted((o for o in offers if o.end >= first_interval), key=lambda o: o.id)),
        free_from=first_interval,
    )
    result = solve(problem, engine, last_interval=last_interval, tie_break="none")
    return result.lp_objective
