"""The paper's figures as PNG files (matplotlib, Agg canvas, no pyplot state).

- Figure 6: energy traded per interval against total production and consumption.
- Figure 9: total energy traded against the prediction window L, one line per
  series (e.g. without and with battery).
- Figure 10: one producer's generation and its sales per interval, stacked by buyer.
- Figure 11: histogram of offer-to-trade latency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.reports.data import EnergySeries, Latencies, ProducerSales, Window

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 110
WIDE = (10.0, 5.0)
MAX_TICKS = 16
MAX_LEGEND_BUYERS = 12
TRADED, PRODUCTION, CONSUMPTION = "#2b7bba", "#f0a030", "#c0392b"


def _figure(size: tuple[float, float] = WIDE) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    return fig


def _save(fig: Figure, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def _interval_axis(ax: Axes, window: Window) -> None:
    """x ticks at interval start times (HH:MM), at most MAX_TICKS of them."""
    intervals = list(window.intervals)
    step = max(1, -(-len(intervals) // MAX_TICKS))
    ticks = intervals[::step]
    ax.set_xticks(ticks)
    ax.set_xticklabels([window.clock(t) for t in ticks], rotation=45, ha="right")
    ax.set_xlim(window.first - 0.6, window.last + 0.6)
    ax.set_xlabel(f"Interval start time ({window.interval_minutes}-minute intervals)")


def _kwh(values: Mapping[int, int], window: Window) -> list[float]:
    return [values.get(t, 0) / 1000 for t in window.intervals]


def figure6(series: EnergySeries, path: Path) -> Path:
    """Bars: energy traded; lines: total production and consumption (kWh per interval)."""
    w = series.window
    x = list(w.intervals)
    fig = _figure()
    ax = fig.add_subplot()
    traded = _kwh(series.traded, w)
    ax.bar(x, traded, width=0.8, color=TRADED, label=f"traded ({sum(traded):,.1f} kWh)")
    if series.production is not None and series.consumption is not None:
        prod, cons = _kwh(series.production, w), _kwh(series.consumption, w)
        ax.plot(
            x, prod, color=PRODUCTION, lw=2, marker=".", label=f"production ({sum(prod):,.1f} kWh)"
        )
        ax.plot(
            x,
            cons,
            color=CONSUMPTION,
            lw=2,
            marker=".",
            label=f"consumption ({sum(cons):,.1f} kWh)",
        )
    _interval_axis(ax, w)
    ax.set_ylabel(f"Energy (kWh per {w.interval_minutes} min)")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title(f"Energy traded per interval vs. total production and consumption\n{series.title}")
    return _save(fig, path)


def figure10(sales: ProducerSales, path: Path) -> Path:
    """Stacked bars: energy the producer sold per interval, one colour per buyer;
    line: its generation."""
    from matplotlib import colormaps

    w = sales.window
    x = list(w.intervals)
    totals: dict[int, int] = {}
    for per in sales.sold.values():
        for buyer, wh in per.items():
            totals[buyer] = totals.get(buyer, 0) + wh
    buyers = sorted(totals, key=lambda b: (-totals[b], b))
    shown, rest = buyers[:MAX_LEGEND_BUYERS], buyers[MAX_LEGEND_BUYERS:]
    colours = colormaps["tab20"]
    fig = _figure()
    ax = fig.add_subplot()
    bottom = [0.0] * len(x)
    groups: list[tuple[str, list[int]]] = [(_buyer_label(b), [b]) for b in shown]
    if rest:
        groups.append((f"{len(rest)} other buyers", rest))
    for i, (label, members) in enumerate(groups):
        heights = [sum(sales.sold.get(t, {}).get(b, 0) for b in members) / 1000 for t in x]
        ax.bar(x, heights, bottom=bottom, width=0.8, color=colours(i % 20), label=label)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    gen = _kwh(sales.generation, w)
    ax.plot(x, gen, color="#1f3fbf", lw=2, marker=".", label=f"generation ({sum(gen):,.1f} kWh)")
    _interval_axis(ax, w)
    ax.set_ylabel(f"Energy (kWh per {w.interval_minutes} min)")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    sold = sum(totals.values()) / 1000
    ax.legend(loc="upper left", fontsize="small", ncols=2, title="sold to (buyer)")
    ax.set_title(
        f"Energy sold per interval by producer {sales.producer}, by buyer "
        f"({sold:,.1f} kWh to {len(buyers)} buyers)\n{sales.title}"
    )
    return _save(fig, path)


def _buyer_label(buyer: int) -> str:
    return f"prosumer {buyer}" if buyer else "unknown"


def figure11(lat: Latencies, path: Path, bins: int = 30) -> Path:
    """Histogram of offer-to-trade latency with its p50/p95/p99."""
    from matplotlib.ticker import MaxNLocator

    from agents.recorder.stats import percentile

    fig = _figure((8.0, 5.0))
    ax = fig.add_subplot()
    values = lat.seconds
    if values:
        ax.hist(values, bins=bins, color=TRADED, edgecolor="white")
        for name, q, style in (("p50", 50, "-"), ("p95", 95, "--"), ("p99", 99, ":")):
            v = percentile(values, q)
            ax.axvline(v, color="black", ls=style, lw=1, label=f"{name} = {_seconds(v)}")
        if lat.interval_seconds is not None:
            ax.axvline(
                lat.interval_seconds,
                color=CONSUMPTION,
                lw=1.5,
                label=f"Δ̂ = {lat.interval_seconds:g} s",
            )
        ax.legend(loc="upper right")
        ax.set_xlim(left=0)
    else:
        ax.text(0.5, 0.5, "no offer was traded", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("Offer transaction to first accepted solution trading it (wall-clock seconds)")
    ax.set_ylabel("Offers")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", alpha=0.3)
    mode = (
        "lockstep clock: intervals advance as soon as all agents are done"
        if (lat.clock == "lockstep")
        else "wallclock clock"
    )
    ax.set_title(
        f"Offer-to-trade latency: {len(values)} of {lat.offers} offers traded\n{lat.title}; {mode}",
        fontsize="medium",
    )
    return _save(fig, path)


def _seconds(v: float) -> str:
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"


def figure9(
    series: Mapping[str, Sequence[tuple[float, float]]],
    path: Path,
    *,
    x_label: str = "Prediction window L (intervals)",
    title: str = "",
    bounds: Mapping[str, float] | None = None,
) -> Path:
    """Total energy traded (kWh) against x (L), one line per series; `bounds` (label ->
    kWh, e.g. the all-offers-at-once optimum) as dashed horizontal lines."""
    fig = _figure((8.0, 5.0))
    ax = fig.add_subplot()
    for i, (label, kwh) in enumerate((bounds or {}).items()):
        ax.axhline(
            kwh, color="0.35", ls=("--", ":", "-.")[i % 3], lw=1.2, label=f"{label} ({kwh:,.1f})"
        )
    markers = "osD^v<>"
    xs: set[float] = set()
    labelled: set[tuple[float, str]] = set()  # equal points of several series: one label
    for i, (label, points) in enumerate(series.items()):
        pts = sorted(points)
        xs.update(p[0] for p in pts)
        (line,) = ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            marker=markers[i % len(markers)],
            lw=2,
            label=label,
        )
        for x, y in pts:
            if (x, f"{y:,.1f}") in labelled:
                continue
            labelled.add((x, f"{y:,.1f}"))
            ax.annotate(
                f"{y:,.1f}",
                (x, y),
                textcoords="offset points",
                xytext=(0, 7) if i % 2 else (0, -13),
                ha="center",
                fontsize="x-small",
                color=line.get_color(),
            )
    ax.margins(x=0.06, y=0.15)
    if xs and all(float(v).is_integer() for v in xs):
        ax.set_xticks(sorted(xs))
    ax.set_xlabel(x_label)
    ax.set_ylabel("Total energy traded (kWh)")
    ax.grid(alpha=0.3)
    if len(series) > 1 or any(series) or bounds:
        ax.legend(loc="best", fontsize="small")
    ax.set_title(f"Total energy traded vs. prediction window\n{title}".strip())
    return _save(fig, path)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; ValueError if not a PNG."""
    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path}: not a PNG file")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
