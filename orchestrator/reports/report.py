"""A bundle's report: the figures (figures/*.png) and the key numbers of
summary.json, as report.md and report.html (report.md rendered, its figures
embedded: the page stands alone). Neither names the bundle's absolute path.
`testbed report BUNDLE` and the end of every run call `write_report`.
"""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from orchestrator.reports import data as rd
from orchestrator.reports import figures
from orchestrator.reports.gridfig import grid_figure, grid_series

FIGURES_DIR = "figures"
FIG6 = "fig6-energy-per-interval.png"
FIG10 = "fig10-producer-sales.png"
FIG11 = "fig11-offer-to-trade-latency.png"
FIG_GRID = "grid-voltage-loading.png"
GRID_CSV = "grid/grid.csv"


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    path: str  # relative to the bundle
    caption: str


@dataclass
class Section:
    title: str
    blocks: list[str | Table | Image] = field(default_factory=list)


@dataclass
class ReportFiles:
    markdown: Path
    html: Path
    figures: dict[str, Path]
    notes: list[str]


def write_figures(
    data: rd.BundleData, producer: int | None = None
) -> tuple[dict[str, Path], list[str]]:
    """Figures 6, 10 and 11 of a bundle into <bundle>/figures/; (paths, notes)."""
    out = data.path / FIGURES_DIR
    notes = list(data.notes)
    paths = {"fig6": figures.figure6(rd.energy_series(data), out / FIG6)}
    sales = rd.producer_sales(data, producer)
    if sales is not None:
        paths["fig10"] = figures.figure10(sales, out / FIG10)
    else:
        notes.append("Figure 10 left out: no dataset or no producer")
    paths["fig11"] = figures.figure11(rd.latencies(data), out / FIG11)
    grid = data.summary.get("grid") or {}
    if grid.get("network") and (data.path / GRID_CSV).exists():
        rows = rd.rows(data.path / GRID_CSV)
        series = grid_series(rows, data.window, grid["network"]["band"], rd.title(data))
        paths["grid"] = grid_figure(series, out / FIG_GRID)
    elif grid.get("error"):
        notes.append(f"Grid figure left out: the power flow failed ({grid['error']})")
    return paths, notes


def write_report(bundle: Path, producer: int | None = None) -> ReportFiles:
    data = rd.load_bundle(Path(bundle))
    if producer is not None:
        rd.check_producer(data, producer)  # before anything is written
    paths, notes = write_figures(data, producer)
    sections = build_sections(data, paths, notes)
    title = f"Run report: {_name(data)}"
    md = data.path / "report.md"
    md.write_text(to_markdown(title, sections))
    page = data.path / "report.html"
    page.write_text(to_html(title, md.read_text(), data.path))
    return ReportFiles(md, page, paths, notes)


def _name(data: rd.BundleData) -> str:
    spec = data.manifest.get("spec_name") or (data.spec.name if data.spec else "?")
    return f"{spec} / {data.manifest.get('run_id', data.path.name)}"


def _rerun_row(manifest: dict[str, Any]) -> list[list[str]]:
    """The run a `testbed rerun` repeated (none for a first run); its run id and
    spec, not its path (the report names no absolute path)."""
    of = manifest.get("rerun_of") or {}
    return [["Rerun of", f"{of.get('spec')} / {of.get('run_id')}"]] if of else []


def _dropped_row(dropped: dict[str, Any]) -> list[list[str]]:
    """Offers the hosts could not post (summary.json dropped_offers), by host and reason."""
    from orchestrator.results.dropped import describe

    return [["Offers dropped (not posted)", describe(dropped)]] if dropped.get("total") else []


def _kwh(wh: float) -> str:
    return f"{wh / 1000:,.1f} kWh"


def _lat(stats: dict[str, Any] | None, form: str = "{:.3f} s") -> str:
    """p50/p95/p99/max of a summary's per-offer statistics (seconds by default;
    intervals waited with form "{:g}", as summary.json has them)."""
    if not stats or not stats.get("count"):
        return "-"
    parts = [
        f"{k} {form.format(stats[k])}"
        for k in ("p50", "p95", "p99", "max")
        if stats.get(k) is not None
    ]
    return ", ".join(parts) + f" ({stats['count']} offers)"


def key_numbers(data: rd.BundleData, energy: rd.EnergySeries) -> list[list[str]]:
    """(label, value) rows: outcome, window, energy, offers, latency, solutions, memory."""
    s = data.summary
    outcome = data.manifest.get("outcome") or s.get("outcome") or {}
    message = str(outcome.get("message") or "").splitlines()
    w = data.window
    span = (
        f"{len(w.intervals)} x {w.interval_minutes} min, {w.clock(w.first)}-{w.clock(w.last + 1)}"
    )
    status = f"{outcome.get('status', '?')} (exit {outcome.get('exit_code', '?')})"
    wall = s.get("wall_seconds") or outcome.get("wall_seconds") or 0
    rows = [
        ["Outcome", status + (f": {message[0]}" if message else "")],
        ["Wall time", f"{wall:.1f} s"],
        *_rerun_row(data.manifest),
        ["Intervals", f"{w.first}..{w.last} ({span})"],
        ["Energy traded", _kwh(sum(energy.traded.values()))],
    ]
    if energy.production is not None and energy.consumption is not None:
        produced, consumed = sum(energy.production.values()), sum(energy.consumption.values())
        rows.append(["Production / consumption (dataset)", f"{_kwh(produced)} / {_kwh(consumed)}"])
    if data.spec is not None:
        mk = data.spec.market
        market = f"L = {mk.prediction_window}, T_clear = {mk.t_clear}, {mk.clock} clock"
        rows.append(["Market", f"{market}, Δ̂ = {mk.simulated_interval_seconds:g} s"])
    sol = s.get("solutions") or {}
    counts = [s.get(k, "-") for k in ("offers", "offers_traded", "offers_finalized")]
    rows += [
        ["Offers posted / traded / finalized", " / ".join(map(str, counts))],
        *_dropped_row(s.get("dropped_offers") or {}),
        ["Offer to trade", _lat(s.get("offer_to_trade_seconds"))],
        [
            "Offer to trade, offers matched without waiting",
            _lat(s.get("offer_to_trade_seconds_no_wait")),
        ],
        [
            "Intervals an offer waited for a match",
            _lat(s.get("offer_to_trade_intervals"), "{:g}"),
        ],
        ["Offer to finalization", _lat(s.get("offer_to_finalization_seconds"))],
        ["Solutions accepted / rejected", f"{sol.get('accepted', 0)} / {sol.get('rejected', 0)}"],
    ]
    per_prosumer = [
        p["peak_rss_mb_per_prosumer"]
        for p in (s.get("processes") or {}).values()
        if "peak_rss_mb_per_prosumer" in p
    ]
    if per_prosumer:
        rows.append(["Peak RSS per prosumer", f"{max(per_prosumer):.1f} MB (worst host)"])
    return rows


def build_sections(
    data: rd.BundleData, paths: dict[str, Path], notes: Sequence[str]
) -> list[Section]:
    energy = rd.energy_series(data)
    rows = key_numbers(data, energy)
    sections = [Section("Key numbers", [Table(["", "this run"], rows)])]
    figs = Section("Figures")
    captions = {
        "fig6": "Figure 6: energy traded per interval against the microgrid's total "
        "production and consumption.",
        "fig10": "Figure 10: energy one producer sold per interval, stacked by buyer, "
        "and its generation.",
        "fig11": "Figure 11: offer-to-trade latency (offer transaction to the first "
        "accepted solution trading it).",
        "grid": "Grid: AC power flow of every interval, bus voltage band and highest cable "
        "and transformer loading, with the finalized trades and without a local market.",
    }
    for key, path in paths.items():
        figs.blocks.append(Image(str(path.relative_to(data.path)), captions[key]))
    figs.blocks += list(notes)
    sections.append(figs)
    if data.summary.get("grid"):
        sections.append(grid_section(data.summary["grid"]))
    sections.append(_gas_section(data.summary.get("gas") or {}))
    sections.append(_metrics_section(data))
    sections.append(_interval_section(energy))
    return sections


def grid_section(grid: dict[str, Any]) -> Section:
    """The summary's `grid` block as a table, market vs no market."""
    if not grid.get("enabled"):
        return Section("Grid", ["Power flow disabled (microgrid.grid.enabled: false)."])
    if "error" in grid:
        return Section("Grid", [f"The power flow failed: {grid['error']}"])
    net, band = grid["network"], grid["network"]["band"]
    intro = (
        f"{net['feeders']} feeders, {net['buses']} buses ({', '.join(net['line_std_types'])}; "
        f"{', '.join(net['transformer_std_types'])}); band {band['vm_min_pu']}-"
        f"{band['vm_max_pu']} p.u., {band['max_loading_percent']:g} % loading; "
        f"{grid['intervals']} intervals in {grid['seconds']:.2f} s. Per interval: `{GRID_CSV}`."
    )
    labels = [
        ("Lowest bus voltage (p.u.)", "vm_min_pu", "{:.4f}"),
        ("Highest bus voltage (p.u.)", "vm_max_pu", "{:.4f}"),
        ("Highest cable loading (%)", "line_loading_max_percent", "{:.1f}"),
        ("Highest transformer loading (%)", "trafo_loading_max_percent", "{:.1f}"),
        ("Losses (kWh)", "losses_kwh", "{:.2f}"),
        ("Intervals with violations", "intervals_with_violations", "{}"),
        ("Intervals under / over voltage", None, ""),
        ("Intervals with overloaded cable / transformer", None, ""),
    ]
    rows = []
    for label, key, form in labels:
        row = [label]
        for case in ("market", "no_market"):
            c = grid[case]
            if key is None and "voltage" in label:
                row.append(f"{c['intervals_undervoltage']} / {c['intervals_overvoltage']}")
            elif key is None:
                row.append(f"{c['intervals_line_overload']} / {c['intervals_trafo_overload']}")
            else:
                row.append("-" if c[key] is None else form.format(c[key]))
        rows.append(row)
    rows.append(
        ["Not converged", *(str(len(grid[c]["not_converged"])) for c in ("market", "no_market"))]
    )
    return Section("Grid", [intro, Table(["", "market", "no market"], rows)])


def _gas_section(gas: dict[str, Any]) -> Section:
    rows = [
        [
            f,
            str(g.get("count", 0)),
            f"{g.get('mean', 0):,.0f}",
            f"{g.get('total', 0):,}",
            str(g.get("reverted", 0)),
        ]
        for f, g in sorted(gas.items())
    ]
    if not rows:
        return Section(
            "Gas by function", ["No gas recorded (the chain was not reachable at the end)."]
        )
    return Section(
        "Gas by function",
        [Table(["function", "transactions", "mean gas", "total gas", "reverted"], rows)],
    )


def _metrics_section(data: rd.BundleData) -> Section:
    info = rd.read_json(data.path / "metrics" / "prometheus.json")
    if not info:
        return Section(
            "Metrics", ["No Prometheus snapshot in this bundle (metrics disabled or unavailable)."]
        )
    targets, blocks = len(info.get("targets", [])), len(info.get("blocks", []))
    span = " to ".join(
        time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(info[k])))
        for k in ("start", "end")
    )
    return Section(
        "Metrics",
        [
            f"Prometheus {info.get('prometheus_version') or ''} {_scraped(info, targets)} "
            f"every {info.get('scrape_interval_seconds')} s from {span}; the TSDB snapshot is "
            f"in `metrics/{info.get('snapshot', 'tsdb')}` ({blocks} blocks).",
            "Explore it: `testbed metrics BUNDLE`, BUNDLE being this report's folder "
            "(Prometheus on the snapshot), or with Grafana: see dashboards/README.md.",
        ],
    )


def _scraped(info: dict[str, Any], targets: int) -> str:
    """What prometheus.json says was scraped, never more than the snapshot holds."""
    series, scraped = info.get("series"), info.get("targets_scraped")
    if series is None or scraped is None:  # older bundles, or Prometheus could not say
        return f"was set to scrape {targets} targets"
    if not series:
        return f"was set to scrape {targets} targets, but the snapshot holds no series"
    return f"scraped {scraped} of {targets} targets ({series} series)"


def _interval_section(energy: rd.EnergySeries) -> Section:
    w = energy.window
    header = ["interval", "start", "traded kWh"]
    have = energy.production is not None and energy.consumption is not None
    if have:
        header += ["production kWh", "consumption kWh"]
    rows = []
    for t in w.intervals:
        row = [str(t), w.clock(t), f"{energy.traded.get(t, 0) / 1000:.1f}"]
        if have:
            assert energy.production is not None and energy.consumption is not None
            row += [
                f"{energy.production.get(t, 0) / 1000:.1f}",
                f"{energy.consumption.get(t, 0) / 1000:.1f}",
            ]
        rows.append(row)
    return Section("Energy per interval", [Table(header, rows)])


# -- rendering ----------------------------------------------------------------


def to_markdown(title: str, sections: Sequence[Section]) -> str:
    out = [f"# {title}", ""]
    for section in sections:
        out += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                out.append("| " + " | ".join(block.header) + " |")
                out.append("|" + "---|" * len(block.header))
                out += [
                    "| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in block.rows
                ]
            elif isinstance(block, Image):
                out.append(f"![{block.caption}]({block.path})")
                out += ["", f"*{block.caption}*"]
            else:
                out.append(block)
            out.append("")
    return "\n".join(out)


STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;"
    "text-align:left}img{max-width:100%}code{background:#f3f3f3;padding:0 3px}"
)
IMAGE_TYPES = {".png": "image/png", ".svg": "image/svg+xml"}


def to_html(title: str, markdown: str, bundle: Path) -> str:
    """report.md rendered (markdown-it, tables on), the figures inlined as data:
    URIs so the page stands alone wherever it is copied."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(markdown)
    for token in tokens:
        for child in token.children or ():
            if child.type == "image":
                child.attrSet("src", _data_uri(bundle, str(child.attrGet("src") or "")))
    body = md.renderer.render(tokens, md.options, {})
    return (
        "<!doctype html>\n"
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>\n{body}</body></html>\n"
    )


def _data_uri(bundle: Path, src: str) -> str:
    """A figure of the bundle as a data: URI (the link as it was if it is not one)."""
    path = bundle / src
    kind = IMAGE_TYPES.get(path.suffix.lower())
    if kind is None or not path.is_file() or Path(src).is_absolute() or ".." in Path(src).parts:
        return src
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
