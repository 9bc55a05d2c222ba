"""The grid figure of a run: per interval, the band of bus voltages (min to max,
p.u.) and the highest cable and transformer loading (%), with the market's
finalized schedule and without a local market, against the configured limits.
Data: the bundle's grid/grid.csv (orchestrator/grid/flow.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.reports.data import Window
from orchestrator.reports.figures import _figure, _interval_axis, _save

CASE_STYLE = {
    "market": ("#2b7bba", "market (finalized trades)"),
    "no_market": ("#7f7f7f", "no market"),
}
LIMIT = "#c0392b"


@dataclass(frozen=True)
class CaseSeries:
    vm_min: dict[int, float] = field(default_factory=dict)
    vm_max: dict[int, float] = field(default_factory=dict)
    line: dict[int, float] = field(default_factory=dict)
    trafo: dict[int, float] = field(default_factory=dict)
    failed: tuple[int, ...] = ()


@dataclass(frozen=True)
class GridSeries:
    window: Window
    cases: dict[str, CaseSeries]
    vm_band: tuple[float, float]
    max_loading_percent: float
    title: str = ""


def grid_series(
    rows: Iterable[Mapping[str, str]], window: Window, band: Mapping[str, Any], title: str = ""
) -> GridSeries:
    """Series of grid.csv rows (`band`: the block's network.band)."""
    cases: dict[str, CaseSeries] = {}
    failed: dict[str, list[int]] = {}
    for r in rows:
        case = cases.setdefault(r["case"], CaseSeries())
        t = int(r["interval"])
        if r["converged"] != "True":
            failed.setdefault(r["case"], []).append(t)
            continue
        case.vm_min[t] = float(r["vm_min_pu"])
        case.vm_max[t] = float(r["vm_max_pu"])
        case.line[t] = float(r["line_loading_max_percent"])
        case.trafo[t] = float(r["trafo_loading_max_percent"])
    cases = {
        name: CaseSeries(c.vm_min, c.vm_max, c.line, c.trafo, tuple(failed.get(name, ())))
        for name, c in cases.items()
    }
    vm_band = (float(band["vm_min_pu"]), float(band["vm_max_pu"]))
    return GridSeries(window, cases, vm_band, float(band["max_loading_percent"]), title)


def _values(values: Mapping[int, float], window: Window) -> list[float]:
    return [values.get(t, math.nan) for t in window.intervals]


def grid_figure(series: GridSeries, path: Path) -> Path:
    """Top: voltage band per interval; bottom: max cable and transformer loading."""
    w = series.window
    x = list(w.intervals)
    fig = _figure((10.0, 7.0))
    top, bottom = fig.subplots(2, 1, sharex=True)
    for name, case in series.cases.items():
        color, label = CASE_STYLE.get(name, ("#333333", name))
        lo, hi = _values(case.vm_min, w), _values(case.vm_max, w)
        top.fill_between(x, lo, hi, color=color, alpha=0.25, step="mid", label=f"{label}: min-max")
        top.plot(x, lo, color=color, lw=1.2, drawstyle="steps-mid")
        top.plot(x, hi, color=color, lw=1.2, drawstyle="steps-mid")
        bottom.plot(
            x, _values(case.line, w), color=color, lw=1.8, marker=".", label=f"{label}: cable"
        )
        bottom.plot(
            x, _values(case.trafo, w), color=color, lw=1.2, ls="--", label=f"{label}: transformer"
        )
        for t in case.failed:
            bottom.axvspan(t - 0.5, t + 0.5, color=LIMIT, alpha=0.15)
    for limit in series.vm_band:
        top.axhline(limit, color=LIMIT, ls=":", lw=1.2)
    bottom.axhline(series.max_loading_percent, color=LIMIT, ls=":", lw=1.2, label="loading limit")
    top.set_ylabel("Bus voltage (p.u.)")
    top.legend(loc="best", fontsize="small")
    top.grid(alpha=0.3)
    bottom.set_ylabel("Max loading (%)")
    bottom.set_ylim(bottom=0)
    bottom.legend(loc="best", fontsize="small")
    bottom.grid(alpha=0.3)
    _interval_axis(bottom, w)
    failed = sorted({t for c in series.cases.values() for t in c.failed})
    note = f" (shaded: {len(failed)} intervals did not converge)" if failed else ""
    top.set_title(f"AC power flow per interval: market vs. no market{note}\n{series.title}")
    return _save(fig, path)
