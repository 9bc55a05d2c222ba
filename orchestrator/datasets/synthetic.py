"""A seeded synthetic microgrid with the structure of the paper's (section 7.1).

11 feeders with 9, 17, 5, 13, 8, 1, 10, 17, 5, 13, 4 prosumers; 5 producers
(ids 101, 102, 701, 801, 1001) with solar-shaped production; 97 consumers, 90
with residential load shapes (night base, morning and evening peaks) and 7
large ones with a daytime plateau, at the same ids as in the public traces, so
that total consumption exceeds production except just after noon (Figure 6).
One buying offer per consumer and interval, one selling offer per producer and
sunny interval, energies in steps of 0.1 kWh like the public traces.

`scale` repeats the 11-feeder block: scale 10 gives 110 feeders and 1,020
prosumers (block b holds feeders 11b + 1 .. 11b + 11).

With `battery`, producers store midday production and offer it until interval
95 (see orchestrator.datasets.battery), like the public `withBattery` traces.
"""

from __future__ import annotations

import numpy as np

from orchestrator.datasets.battery import (
    DEFAULT_BATTERY_CAPACITY_KWH,
    DEFAULT_BATTERY_RATE_KWH,
    DEFAULT_BATTERY_UNTIL,
    add_battery,
)
from orchestrator.datasets.model import INTERVALS_PER_DAY, Dataset, ProsumerTrace, TraceOffer
from orchestrator.errors import DatasetError

FEEDER_SIZES = (9, 17, 5, 13, 8, 1, 10, 17, 5, 13, 4)
PRODUCER_PEAK_KWH = {101: 9.5, 102: 80.0, 701: 30.0, 801: 9.5, 1001: 14.5}
"""Peak production per 15-minute interval, keyed by id within an 11-feeder block."""
LARGE_CONSUMERS = frozenset({104, 217, 305, 405, 601, 708, 817})
RESIDENTIAL_DAILY_KWH = 48.0
LARGE_DAILY_KWH = 540.0
STEP_WH = 100
"""Energies are rounded to 0.1 kWh, the resolution of the public traces."""

_T = np.arange(1, INTERVALS_PER_DAY + 1, dtype=float)


def synthesize(
    seed: int,
    battery: bool = False,
    scale: int = 1,
    *,
    battery_capacity_kwh: float = DEFAULT_BATTERY_CAPACITY_KWH,
    battery_rate_kwh: float = DEFAULT_BATTERY_RATE_KWH,
    battery_until: int = DEFAULT_BATTERY_UNTIL,
) -> Dataset:
    """The synthetic microgrid for `seed`: same arguments, same dataset."""
    _check_arguments(seed, scale, battery_capacity_kwh, battery_rate_kwh, battery_until)
    rng = np.random.default_rng(seed)
    production: dict[int, np.ndarray] = {}
    consumption: dict[int, np.ndarray] = {}
    for block in range(scale):
        for index, size in enumerate(FEEDER_SIZES):
            feeder = block * len(FEEDER_SIZES) + index + 1
            for n in range(1, size + 1):
                pattern = (index + 1) * 100 + n
                prosumer_id = feeder * 100 + n
                if pattern in PRODUCER_PEAK_KWH:
                    production[prosumer_id] = _solar_wh(rng, PRODUCER_PEAK_KWH[pattern])
                elif pattern in LARGE_CONSUMERS:
                    consumption[prosumer_id] = _large_load_wh(rng)
                else:
                    consumption[prosumer_id] = _residential_load_wh(rng)
    traces = []
    for prosumer_id in sorted(production.keys() | consumption.keys()):
        if prosumer_id in production:
            offers = _single_offers(production[prosumer_id], sign=1)
        else:
            offers = _single_offers(consumption[prosumer_id], sign=-1)
        traces.append(ProsumerTrace(prosumer_id, prosumer_id // 100, offers))
    dataset = Dataset(tuple(traces))
    if not battery:
        return dataset
    return add_battery(
        dataset,
        capacity_wh=round(battery_capacity_kwh * 1000),
        rate_wh=round(battery_rate_kwh * 1000),
        until=battery_until,
    )


def synthetic_prosumer_ids(scale: int) -> list[int]:
    """The prosumer ids `synthesize(..., scale=scale)` makes, without making it."""
    return [
        (block * len(FEEDER_SIZES) + index + 1) * 100 + n
        for block in range(scale)
        for index, size in enumerate(FEEDER_SIZES)
        for n in range(1, size + 1)
    ]


def _check_arguments(seed: int, scale: int, capacity: float, rate: float, until: int) -> None:
    problems = []
    if seed < 0:
        problems.append(f"seed must be >= 0, got {seed}")
    if scale < 1:
        problems.append(f"scale must be >= 1, got {scale}")
    if capacity < 0:
        problems.append(f"battery capacity must be >= 0 kWh, got {capacity}")
    if rate <= 0:
        problems.append(f"battery charge rate must be > 0 kWh per interval, got {rate}")
    if not 1 <= until <= INTERVALS_PER_DAY:
        problems.append(f"battery_until must be an interval 1..{INTERVALS_PER_DAY}, got {until}")
    if problems:
        raise DatasetError("synthetic dataset: " + "; ".join(problems))


def _to_steps(kwh: np.ndarray, minimum_wh: int = 0) -> np.ndarray:
    wh = np.rint(kwh * 1000 / STEP_WH).astype(np.int64) * STEP_WH
    return np.maximum(wh, minimum_wh)


def _smooth_noise(rng: np.random.Generator, width: int = 4) -> np.ndarray:
    """Noise with a correlation length of a few intervals (passing clouds,
    appliances), zero mean, unit-ish amplitude."""
    raw = rng.normal(0.0, 1.0, INTERVALS_PER_DAY + width)
    kernel = np.ones(width) / np.sqrt(width)
    return np.convolve(raw, kernel, mode="valid")[:INTERVALS_PER_DAY]


def _solar_wh(rng: np.random.Generator, peak_kwh: float) -> np.ndarray:
    """sin² between sunrise (~7:00) and sunset (~21:45), peak near 14:00
    (summer time), dented by clouds: the shape of the public traces."""
    peak = peak_kwh * rng.uniform(0.9, 1.1)
    sunrise = 27.0 + rng.uniform(-1.0, 1.0)
    sunset = 87.0 + rng.uniform(-1.0, 1.0)
    x = (_T - sunrise) / (sunset - sunrise)
    shape = np.where((x > 0) & (x < 1), np.sin(np.pi * np.clip(x, 0, 1)) ** 2, 0.0)
    clouds = 1.0 - 0.06 * np.abs(_smooth_noise(rng))
    return _to_steps(peak * shape * np.clip(clouds, 0.5, 1.0))


def _bump(center: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((_T - center) / width) ** 2)


def _residential_load_wh(rng: np.random.Generator) -> np.ndarray:
    """Night base load, a morning peak (~7:30), a midday shoulder and an
    evening peak (~19:45), scaled to a household's daily energy."""
    shape = (
        0.8
        + rng.uniform(1.0, 1.6) * _bump(30.0 + rng.normal(0.0, 1.5), 4.0)
        + rng.uniform(0.8, 1.2) * _bump(52.0, 14.0)
        + rng.uniform(1.6, 2.4) * _bump(79.0 + rng.normal(0.0, 2.0), 6.0)
    )
    shape = shape * (1.0 + 0.05 * _smooth_noise(rng))
    daily_kwh = RESIDENTIAL_DAILY_KWH * rng.lognormal(0.0, 0.2)
    return _to_steps(shape * daily_kwh / shape.sum(), minimum_wh=STEP_WH)


def _large_load_wh(rng: np.random.Generator) -> np.ndarray:
    """A large consumer (shop, workshop): base load with a plateau from
    ~7:45 to ~18:30, like the seven large consumers of the public traces."""
    opens = 31.0 + rng.uniform(-1.5, 1.5)
    closes = 74.0 + rng.uniform(-1.5, 1.5)
    plateau = 1.0 / (1.0 + np.exp(-(_T - opens) / 2.0)) / (1.0 + np.exp(-(closes - _T) / 2.0))
    shape = (0.35 + 0.65 * plateau) * (1.0 + 0.03 * _smooth_noise(rng))
    daily_kwh = LARGE_DAILY_KWH * rng.uniform(0.85, 1.15)
    return _to_steps(shape * daily_kwh / shape.sum(), minimum_wh=STEP_WH)


def _single_offers(profile: np.ndarray, sign: int) -> tuple[TraceOffer, ...]:
    return tuple(
        TraceOffer(t, t, sign * int(wh)) for t, wh in enumerate(profile.tolist(), start=1) if wh > 0
    )
