"""What the figures plot, from a results bundle (events CSVs, spec.yaml and
its dataset) or from a replay. Pure data, no matplotlib.

Production and consumption per interval come from the dataset: every offer
counts in its start interval (a battery offer t..95 holds energy produced in
t, as in orchestrator.datasets.battery), over the market's window.
"""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.recorder.records import load_latency_inputs
from agents.recorder.stats import offer_to_trade_seconds
from market.types import Kind
from orchestrator.errors import TestbedError
from orchestrator.scenario import Scenario, build_scenario
from orchestrator.spec import Spec, load_spec

OfferKey = tuple[int, str, int, int, int]  # feeder, kind, energy_wh, start, end (clipped)


@dataclass(frozen=True)
class Window:
    """The market's traded intervals and their length."""

    first: int
    last: int
    interval_minutes: int = 15

    @property
    def intervals(self) -> range:
        return range(self.first, self.last + 1)

    def clock(self, interval: int) -> str:
        """Start time of an interval, HH:MM (interval 1 starts at 00:00)."""
        minutes = (interval - 1) * self.interval_minutes
        return f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class EnergySeries:
    """Figure 6: Wh per interval traded, produced and consumed."""

    window: Window
    traded: dict[int, int]
    production: dict[int, int] | None = None  # None: the dataset is not available
    consumption: dict[int, int] | None = None
    title: str = ""


@dataclass(frozen=True)
class ProducerSales:
    """Figure 10: one producer's generation and its sales per interval, by buyer."""

    window: Window
    producer: int
    generation: dict[int, int]
    sold: dict[int, dict[int, int]]  # interval -> buyer prosumer -> Wh
    title: str = ""


@dataclass(frozen=True)
class Latencies:
    """Figure 11: offer-to-trade seconds of every traded offer."""

    seconds: list[float]
    offers: int
    clock: str = "lockstep"
    interval_seconds: float | None = None  # Δ̂, the paper's bound (wallclock runs)
    title: str = ""


@dataclass(frozen=True)
class BundleData:
    path: Path
    spec: Spec | None
    scenario: Scenario | None
    summary: dict[str, Any]
    manifest: dict[str, Any]
    window: Window
    notes: list[str] = field(default_factory=list)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def rows(path: Path) -> Iterator[dict[str, str]]:
    if not path.exists():
        return
    with path.open(newline="") as fh:
        yield from csv.DictReader(fh)


def load_bundle(path: Path) -> BundleData:
    """A bundle's spec, dataset, summary and manifest. The dataset is rebuilt
    from the resolved spec (synthetic: regenerated; transax: read again); if
    that fails the figures that need it say so instead."""
    if not (path / "manifest.json").exists() and not (path / "spec.yaml").exists():
        raise TestbedError(f"{path}: not a results bundle (no manifest.json or spec.yaml)")
    notes: list[str] = []
    spec: Spec | None = None
    scenario: Scenario | None = None
    try:
        spec = load_spec(path / "spec.yaml", env={})
        scenario = build_scenario(spec)
    except TestbedError as exc:
        notes.append(f"dataset unavailable ({str(exc).splitlines()[0]}): no production/demand")
    summary = read_json(path / "summary.json")
    if spec is not None:
        m = spec.market
        window = Window(m.first_interval, m.last_interval, m.interval_minutes)
    else:
        per = [int(t) for t in summary.get("per_interval_kwh", {})] or [1]
        window = Window(min(per), max(per))
    return BundleData(
        path, spec, scenario, summary, read_json(path / "manifest.json"), window, notes
    )


def dataset_energy(scenario: Scenario, window: Window) -> tuple[dict[int, int], dict[int, int]]:
    """(production, consumption) Wh per interval of the window, from the
    dataset's offers (each in its start interval)."""
    production = dict.fromkeys(window.intervals, 0)
    consumption = dict.fromkeys(window.intervals, 0)
    for prosumer in scenario.dataset.prosumers:
        for offer in prosumer.offers:
            if offer.start not in production:
                continue
            side = production if offer.energy_wh > 0 else consumption
            side[offer.start] += abs(offer.energy_wh)
    return production, consumption


def traded_per_interval(events: Path, window: Window) -> dict[int, int]:
    traded = dict.fromkeys(window.intervals, 0)
    for r in rows(events / "trades.csv"):
        t = int(r["interval"])
        traded[t] = traded.get(t, 0) + int(r["energy_wh"])
    return traded


def energy_series(data: BundleData) -> EnergySeries:
    traded = traded_per_interval(data.path / "events", data.window)
    production = consumption = None
    if data.scenario is not None:
        production, consumption = dataset_energy(data.scenario, data.window)
    return EnergySeries(data.window, traded, production, consumption, _title(data))


def replay_energy_series(scenario: Scenario, per_interval_kwh: dict[str, float]) -> EnergySeries:
    m = scenario.spec.market
    window = Window(m.first_interval, m.last_interval, m.interval_minutes)
    traded = dict.fromkeys(window.intervals, 0)
    traded.update({int(t): round(kwh * 1000) for t, kwh in per_interval_kwh.items()})
    production, consumption = dataset_energy(scenario, window)
    title = f"{scenario.spec.name} (replay, L = {m.prediction_window})"
    return EnergySeries(window, traded, production, consumption, title)


def default_producer(scenario: Scenario) -> int | None:
    """The first prosumer of the first feeder (the paper's Figure 10) when it
    produces, else the first producer; None without producers."""
    prosumers = sorted(scenario.dataset.prosumers, key=lambda p: (p.feeder, p.id))
    if prosumers and prosumers[0].is_producer:
        return prosumers[0].id
    producers = [p for p in prosumers if p.is_producer]
    return producers[0].id if producers else None


def offer_owners(scenario: Scenario, offers_csv: Iterable[dict[str, str]]) -> dict[int, int]:
    """Chain offer id -> prosumer id, by offer content (feeder, kind, energy,
    interval range clipped to the window, as the prosumers post them). Offers
    from anonymous addresses carry no owner on chain; identical offers of two
    prosumers are assigned in prosumer order (their energy is the same)."""
    m = scenario.spec.market
    owners: dict[OfferKey, list[int]] = defaultdict(list)
    for owned in scenario.owned:
        o = owned.offer
        kind = "sell" if o.kind is Kind.SELL else "buy"
        key = (
            o.feeder,
            kind,
            o.energy,
            max(o.start, m.first_interval),
            min(o.end, m.last_interval),
        )
        owners[key].append(owned.prosumer)
    taken: Counter[OfferKey] = Counter()
    result: dict[int, int] = {}
    for r in offers_csv:
        key = (int(r["feeder"]), r["kind"], int(r["energy_wh"]), int(r["start"]), int(r["end"]))
        candidates = owners.get(key, [])
        if taken[key] < len(candidates):
            result[int(r["offer_id"])] = candidates[taken[key]]
            taken[key] += 1
    return result


class ProducerError(TestbedError):
    """`--producer` names no producer of the run (a command-line error: exit 2)."""

    exit_code = 2


def check_producer(data: BundleData, producer: int) -> None:
    """Raise ProducerError unless `producer` sells in this run's dataset."""
    if data.scenario is None:
        raise ProducerError(
            f"--producer {producer}: this bundle's dataset cannot be rebuilt, so Figure 10 "
            "cannot be drawn"
        )
    prosumers = {p.id: p for p in data.scenario.dataset.prosumers}
    producers = ", ".join(str(p.id) for p in data.scenario.dataset.producers) or "none"
    if producer not in prosumers:
        raise ProducerError(
            f"--producer {producer}: no prosumer {producer} in this run (producers: {producers})"
        )
    if not prosumers[producer].is_producer:
        raise ProducerError(
            f"--producer {producer}: prosumer {producer} is a consumer, it sells nothing "
            f"(producers: {producers})"
        )


def producer_sales(data: BundleData, producer: int | None = None) -> ProducerSales | None:
    """Figure 10 data, or None without dataset or producer."""
    if data.scenario is None:
        return None
    producer = producer if producer is not None else default_producer(data.scenario)
    if producer is None:
        return None
    events = data.path / "events"
    owner = offer_owners(data.scenario, rows(events / "offers.csv"))
    sold: dict[int, dict[int, int]] = {t: {} for t in data.window.intervals}
    for r in rows(events / "trades.csv"):
        if owner.get(int(r["seller"])) != producer:
            continue
        t, buyer = int(r["interval"]), owner.get(int(r["buyer"]), 0)
        per = sold.setdefault(t, {})
        per[buyer] = per.get(buyer, 0) + int(r["energy_wh"])
    generation = dict.fromkeys(data.window.intervals, 0)
    for offer in data.scenario.dataset.prosumer(producer).offers:
        if offer.energy_wh > 0 and offer.start in generation:
            generation[offer.start] += offer.energy_wh
    return ProducerSales(data.window, producer, generation, sold, _title(data))


def latencies(data: BundleData) -> Latencies:
    offers, accepted, _ = load_latency_inputs(data.path / "events")
    seconds = sorted(offer_to_trade_seconds(offers, accepted).values())
    clock, interval = "lockstep", None
    if data.spec is not None:
        clock = data.spec.market.clock
        if clock == "wallclock":
            interval = float(data.spec.market.simulated_interval_seconds)
    return Latencies(seconds, len(offers), clock, interval, _title(data))


def title(data: BundleData) -> str:
    """The figures' second title line: spec, L, clock, battery."""
    return _title(data)


def _title(data: BundleData) -> str:
    if data.spec is None:
        return data.path.name
    m = data.spec.market
    battery = data.spec.microgrid.dataset.battery
    kind = data.spec.microgrid.dataset.kind
    extra = (", battery" if battery else "") if kind == "synthetic" else ""
    return f"{data.spec.name} (L = {m.prediction_window}, {m.clock}{extra})"
