"""The Grafana dashboard of a run, as code: `build()` returns the JSON model
committed as dashboards/testbed-run.json (regenerate it with
`python -m orchestrator.observability.dashboard`; a test checks they agree).

Every panel reads the testbed's Prometheus through the `datasource`
variable; `run` picks a run (label `run_id` of every target), `delta` is the
window of one market interval (the paper's Δ̂ = 120 s by default) for the
per-interval energy panel. `queries()` and `substitute()` let the tests (and
`testbed metrics --check`) run every panel's query against a real Prometheus.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DASHBOARD_FILE = Path(__file__).resolve().parents[2] / "dashboards" / "testbed-run.json"
UID = "testbed-run"
DATASOURCE_UID = "testbed-prometheus"  # the provisioned datasource (dashboards/provisioning)
DS = {"type": "prometheus", "uid": "${datasource}"}
RUN = 'run_id=~"$run"'
# Every agent exports every testbed metric (one shared definition); each is
# updated by one role only (agents/common/metrics.py), so panels select it.
CLOCK, DSO, SOLVER = f'{RUN}, role="clock"', f'{RUN}, role="dso"', f'{RUN}, role="solver"'
RECORDER, PROSUMER = f'{RUN}, role="recorder"', f'{RUN}, role="prosumer"'
DELTA_OPTIONS = ("5s", "10s", "30s", "1m", "2m", "5m", "15m")
DELTA_DEFAULT = "2m"
BUILTIN = ("__rate_interval", "__interval", "__range")

Target = tuple[str, str]  # expr, legend
RATE, RANGE = "$__rate_interval", "$__range"


def sel(metric: str, selector: str = RUN) -> str:
    return f"{metric}{{{selector}}}"


def over(fn: str, metric: str, selector: str, window: str) -> str:
    """e.g. increase(metric{selector}[window])."""
    return f"{fn}({sel(metric, selector)}[{window}])"


def quantiles(metric: str, selector: str, by: str = "le") -> list[Target]:
    rate = over("rate", f"{metric}_bucket", selector, RATE)
    legend = " {{agent}}" if "agent" in by else ""
    return [
        (f"histogram_quantile({q}, sum by ({by}) ({rate}))", f"p{round(q * 100)}{legend}")
        for q in (0.5, 0.95, 0.99)
    ]


@dataclass(frozen=True)
class PanelSpec:
    kind: str  # stat | timeseries | heatmap | bargauge
    size: tuple[int, int]  # width (of 24), height
    title: str
    unit: str
    description: str
    targets: list[Target]
    fmt: str = "time_series"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def model(self) -> dict[str, Any]:
        panel: dict[str, Any] = {
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": DS,
            "targets": [
                {
                    "datasource": DS,
                    "expr": expr,
                    "legendFormat": legend,
                    "refId": chr(65 + i),
                    "range": True,
                    "instant": False,
                    "format": self.fmt,
                }
                for i, (expr, legend) in enumerate(self.targets)
            ],
            "fieldConfig": {"defaults": {"unit": self.unit}, "overrides": []},
            "options": {},
        }
        if self.kind in ("stat", "bargauge"):
            reduce = {"calcs": ["lastNotNull"], "fields": "", "values": False}
            panel["options"] = {"reduceOptions": reduce}
        panel.update(self.extra)
        return panel


def _stat(title: str, expr: str, unit: str, description: str) -> PanelSpec:
    return PanelSpec("stat", (4, 4), title, unit, description, [(expr, title)])


def _series(title: str, unit: str, description: str, targets: list[Target], **kw: Any) -> PanelSpec:
    return PanelSpec("timeseries", (12, 8), title, unit, description, targets, **kw)


def _energy(metric: str, window: str | None = None) -> str:
    inner = f"increase({sel(metric)}[{window}])" if window else sel(metric)
    return f"sum({inner}) / 1000"


FINALIZED, PRODUCED = "testbed_energy_finalized_wh_total", "testbed_dataset_production_wh_total"
CONSUMED = "testbed_dataset_consumption_wh_total"
LATENCY_BUCKET = "testbed_offer_to_trade_seconds_bucket"
HEATMAP_OPTIONS = {
    "calculate": False,
    "yAxis": {"unit": "s"},
    "cellGap": 1,
    "color": {"scheme": "Blues", "mode": "scheme"},
}


def panels() -> list[PanelSpec]:
    """The dashboard's panels in reading order; `build` lays them out."""
    up = f'job="testbed", {RUN}'
    return [
        _stat("Agents up", f"sum({sel('up', up)})", "none",
              "Scrape targets answering (agents and the orchestrator)."),
        _stat("Agents ready", f"sum({sel('testbed_agent_ready')})", "none",
              "Agents reporting testbed_agent_ready = 1."),
        _stat("Current interval", f"max({sel('testbed_current_interval', CLOCK)})", "none",
              "The clock's current interval."),
        _stat("Energy traded", _energy(FINALIZED), "kwatth", "Energy in finalized trades so far."),
        _stat("Interval lag", f"max({sel('testbed_interval_lag', CLOCK)})", "none",
              "Clock interval minus last finalized interval."),
        _stat("Failed withdrawals", f"sum({sel('testbed_failed_withdrawals_total', DSO)})", "none",
              "withdrawAssets requests the DSO refused (safety checks)."),
        _series("Energy per interval: traded vs. production and consumption", "kwatth",
                "Per window $delta (set it to the run's simulated interval Δ̂): energy finalized, "
                "and the dataset's production and demand of the intervals finalized (Figure 6).",
                [(_energy(FINALIZED, "$delta"), "traded"),
                 (_energy(PRODUCED, "$delta"), "production"),
                 (_energy(CONSUMED, "$delta"), "consumption")], extra={"interval": "$delta"}),
        _series("Energy so far: traded vs. production and consumption", "kwatth",
                "Cumulative over the finalized intervals.",
                [(_energy(FINALIZED), "traded"), (_energy(PRODUCED), "production"),
                 (_energy(CONSUMED), "consumption")]),
        _series("Offer-to-trade latency p50 / p95 / p99", "s",
                "Offer transaction to the first accepted solution trading it (Figure 11).",
                quantiles("testbed_offer_to_trade_seconds", RECORDER)),
        PanelSpec("heatmap", (12, 8), "Offer-to-trade latency (heatmap)", "s",
                  "Offers traded per latency bucket over time.",
                  [(f"sum by (le) ({over('increase', LATENCY_BUCKET, RECORDER, RATE)})", "{{le}}")],
                  fmt="heatmap", extra={"options": HEATMAP_OPTIONS}),
        PanelSpec("bargauge", (12, 8), "Offer-to-trade latency histogram (time range)", "none",
                  "Offers per latency bucket (le = upper bound) over the dashboard's time range.",
                  [(f"sum by (le) ({over('increase', LATENCY_BUCKET, RECORDER, RANGE)})",
                    "{{le}}")],
                  fmt="heatmap"),
        _series("Offer-to-finalization latency p50 / p95 / p99", "s",
                "Offer transaction to the finalization of its first trade.",
                quantiles("testbed_offer_to_finalization_seconds", RECORDER)),
        _series("Solver solve time p50 / p95 / p99", "s", "Wall seconds per solve, by solver.",
                quantiles("testbed_solver_solve_seconds", SOLVER, "le, agent")),
        _series("Solver objective", "kwatth", "Objective (energy) of each solver's latest solve.",
                [(f"{sel('testbed_solver_objective_wh', SOLVER)} / 1000", "{{agent}}")]),
        _series("Solutions by result", "none", "Solutions accepted, rejected or skipped.",
                [(f"sum by (result) ({over('increase', 'testbed_solutions_total', SOLVER, RATE)})",
                  "{{result}}")]),
        PanelSpec("bargauge", (12, 8), "Solutions by result (total)", "none", "Since the start.",
                  [(f"sum by (result) ({sel('testbed_solutions_total', SOLVER)})", "{{result}}")]),
        _series("Gas by function (per second)", "none", "Gas used by contract function.",
                [(f"sum by (function) ({over('rate', 'testbed_gas_used_total', RUN, RATE)})",
                  "{{function}}")]),
        PanelSpec("bargauge", (12, 8), "Gas by function (total)", "none", "Since the run started.",
                  [(f"sum by (function) ({sel('testbed_gas_used_total')})", "{{function}}")]),
        _series("Transactions by function (per second)", "reqps",
                "Transactions the agents sent, by contract function; offers posted.",
                [(f"sum by (function) ({over('rate', 'testbed_transactions_total', RUN, RATE)})",
                  "{{function}}"),
                 (f"sum({over('rate', 'testbed_offers_posted_total', PROSUMER, RATE)})",
                  "offers posted")]),
        _series("Transactions per block p50 / p95 / p99", "none",
                "Transactions in each mined block, as the recorder sees the chain.",
                quantiles("testbed_block_transactions", RECORDER)),
        _series("Agents up by role", "none", "Scrape targets up and agents ready, by role.",
                [(f"sum by (role) ({sel('up', up)})", "{{role}} up"),
                 (f"sum by (role) ({sel('testbed_agent_ready')})", "{{role}} ready")]),
        PanelSpec("timeseries", (24, 7), "Intervals: current, finalized and lag", "none",
                  "The clock's progress; a growing lag means finalization falls behind.",
                  [(f"max({sel('testbed_current_interval', CLOCK)})", "clock interval"),
                   (f"max({sel('testbed_finalized_interval')})", "last finalized"),
                   (f"max({sel('testbed_interval_lag', CLOCK)})", "lag")]),
        *grid_panels(),
    ]  # fmt: skip


GRID_MARKET = f'{RUN}, case="market"'
Steps = list[tuple[float | None, str]]
VOLTAGE_STEPS: Steps = [(None, "red"), (0.95, "green"), (1.05, "red")]
LOADING_STEPS: Steps = [(None, "green"), (80.0, "orange"), (100.0, "red")]


def _gauge(
    title: str,
    expr: str,
    unit: str,
    description: str,
    lo: float,
    hi: float,
    steps: list[tuple[float | None, str]],
) -> PanelSpec:
    thresholds = {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}
    defaults = {"unit": unit, "min": lo, "max": hi, "thresholds": thresholds}
    return PanelSpec(
        "gauge",
        (6, 5),
        title,
        unit,
        description,
        [(expr, title)],
        extra={
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
        },
    )


def grid_panels() -> list[PanelSpec]:
    """The AC power flow of each finalized interval (orchestrator's exporter,
    orchestrator/grid/live.py): gauges for the market case, then both cases over time.
    The default band 0.95-1.05 p.u. and 100 % loading colour the gauges."""
    return [
        _gauge("Grid: lowest voltage", f"min({sel('testbed_grid_vm_min_pu', GRID_MARKET)})",
               "none", "Lowest LV bus voltage (p.u.) of the last finalized interval, market.",
               0.9, 1.1, VOLTAGE_STEPS),
        _gauge("Grid: highest voltage", f"max({sel('testbed_grid_vm_max_pu', GRID_MARKET)})",
               "none", "Highest LV bus voltage (p.u.) of the last finalized interval, market.",
               0.9, 1.1, VOLTAGE_STEPS),
        _gauge("Grid: max cable loading",
               f"max({sel('testbed_grid_line_loading_max_percent', GRID_MARKET)})", "percent",
               "Most loaded feeder cable of the last finalized interval, market.", 0, 150,
               LOADING_STEPS),
        _gauge("Grid: max transformer loading",
               f"max({sel('testbed_grid_trafo_loading_max_percent', GRID_MARKET)})", "percent",
               "Most loaded feeder transformer of the last finalized interval, market.", 0, 150,
               LOADING_STEPS),
        _series("Grid voltage band: market vs. no market", "none",
                "Lowest and highest LV bus voltage (p.u.) per finalized interval.",
                [(f"min by (case) ({sel('testbed_grid_vm_min_pu')})", "min {{case}}"),
                 (f"max by (case) ({sel('testbed_grid_vm_max_pu')})", "max {{case}}")]),
        _series("Grid max loading: market vs. no market", "percent",
                "Most loaded cable and transformer per finalized interval; intervals with "
                "violations and power flows that did not converge (cumulative).",
                [(f"max by (case) ({sel('testbed_grid_line_loading_max_percent')})",
                  "cable {{case}}"),
                 (f"max by (case) ({sel('testbed_grid_trafo_loading_max_percent')})",
                  "transformer {{case}}"),
                 (f"sum by (case) ({sel('testbed_grid_violation_intervals_total')})",
                  "violations {{case}}"),
                 (f"sum by (case) ({sel('testbed_grid_not_converged_intervals_total')})",
                  "not converged {{case}}")]),
    ]  # fmt: skip


def templating() -> list[dict[str, Any]]:
    run_query = "label_values(testbed_agent_ready, run_id)"
    return [
        {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {"text": "Testbed Prometheus", "value": DATASOURCE_UID},
            "hide": 0,
        },
        {
            "name": "run",
            "label": "Run",
            "type": "query",
            "datasource": DS,
            "query": {"query": run_query, "refId": "run"},
            "definition": run_query,
            "refresh": 2,
            "sort": 2,
            "includeAll": True,
            "allValue": ".*",
            "multi": False,
            "current": {"text": "All", "value": "$__all"},
            "hide": 0,
        },
        {
            "name": "delta",
            "label": "Δ̂ (interval window)",
            "type": "custom",
            "query": ",".join(DELTA_OPTIONS),
            "options": [
                {"text": d, "value": d, "selected": d == DELTA_DEFAULT} for d in DELTA_OPTIONS
            ],
            "current": {"text": DELTA_DEFAULT, "value": DELTA_DEFAULT},
            "hide": 0,
        },
    ]


def build() -> dict[str, Any]:
    laid: list[dict[str, Any]] = []
    x = y = row_h = 0
    for pid, spec in enumerate(panels(), start=1):
        w, h = spec.size
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        laid.append({"id": pid, "gridPos": {"h": h, "w": w, "x": x, "y": y}, **spec.model()})
        x, row_h = x + w, max(row_h, h)
    return {
        "id": None,
        "uid": UID,
        "title": "Testbed run",
        "description": "One run of the transactive-energy testbed: market, latency, solver, chain.",
        "tags": ["testbed", "transactive-energy"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "5s",
        "time": {"from": "now-30m", "to": "now"},
        "annotations": {"list": []},
        "templating": {"list": templating()},
        "panels": laid,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


@dataclass(frozen=True, slots=True)
class PanelQuery:
    panel_id: int
    title: str
    ref: str
    expr: str


def queries(dashboard: Mapping[str, Any]) -> Iterator[PanelQuery]:
    for panel in dashboard.get("panels", ()):
        for target in panel.get("targets", ()):
            yield PanelQuery(panel["id"], panel["title"], target["refId"], target["expr"])


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def variables_in(expr: str) -> set[str]:
    return {m.group(1) or m.group(2) for m in _VARIABLE.finditer(expr)}


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """`expr` with every $var / ${var} replaced; KeyError naming an unknown one."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            raise KeyError(name)
        return values[name]

    return _VARIABLE.sub(one, expr)


def load(path: Path = DASHBOARD_FILE) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DASHBOARD_FILE
    target.write_text(render())
    print(f"wrote {target}")
