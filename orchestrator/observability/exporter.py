"""The orchestrator's own Prometheus endpoint: what the dataset says about
the intervals the market has finalized so far.

Agents know offers and trades but not the microgrid's totals, so a dashboard
could not put energy traded next to production and demand (paper Figure 6).
This exporter follows the recorder's finalizations.csv and, for every
delivery interval finalized, adds the dataset's production (energy offered for
sale starting in it; battery offers count where the energy was produced) and
consumption (energy wanted) to two counters. `increase()` over the same
window then compares them with `testbed_energy_finalized_wh_total`.

With `microgrid.grid` enabled it also runs the AC power flow of every finalized
interval (orchestrator.grid.live: the finalized trades so far, and the same
interval without a local market) and serves its results as gauges labelled
`case` = market | no_market: voltage min/max (p.u.), max cable and transformer
loading (%), losses (kW), and counters of intervals with violations and of
power flows that did not converge. The grid gauges of an interval are set
before `testbed_finalized_interval` moves to it, so a scrape that sees the
interval finalized also sees its power flow.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, start_http_server

from orchestrator.plan import Plan
from orchestrator.progress import CsvTail

POLL_SECONDS = 0.2
CASES = ("market", "no_market")
_log = logging.getLogger(__name__)


def dataset_energy(plan: Plan) -> tuple[dict[int, int], dict[int, int]]:
    """(production, consumption) in Wh per interval from the plan's offer
    traces (the DSO's copy holds every prosumer): each offer counts in its
    start interval."""
    production: dict[int, int] = {}
    consumption: dict[int, int] = {}
    for agent in plan.by_role("dso"):
        for prosumer in agent.prosumers:
            for offer in prosumer.offers:
                energy, start = offer.energy_wh, offer.start
                side = production if energy > 0 else consumption
                side[start] = side.get(start, 0) + abs(energy)
    return production, consumption


class GridGauges:
    """The power flow of the last finalized interval, per case."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, text: str) -> Gauge:
            return Gauge(name, text, ["case"], registry=registry)

        self.vm_min = gauge("testbed_grid_vm_min_pu", "Lowest LV bus voltage (p.u.)")
        self.vm_max = gauge("testbed_grid_vm_max_pu", "Highest LV bus voltage (p.u.)")
        self.line = gauge("testbed_grid_line_loading_max_percent", "Highest cable loading (%)")
        self.trafo = gauge(
            "testbed_grid_trafo_loading_max_percent", "Highest transformer loading (%)"
        )
        self.losses = gauge("testbed_grid_losses_kw", "Cable and transformer losses (kW)")
        self.interval = Gauge(
            "testbed_grid_interval", "Last interval whose power flow was run", registry=registry
        )
        self.violations = Counter(
            "testbed_grid_violation_intervals",
            "Intervals with a bus outside the voltage band or an overloaded cable/transformer",
            ["case"],
            registry=registry,
        )
        self.failed = Counter(
            "testbed_grid_not_converged_intervals",
            "Intervals whose power flow did not converge",
            ["case"],
            registry=registry,
        )
        for case in CASES:  # every series exists from the first scrape
            self.violations.labels(case)
            self.failed.labels(case)

    def record(self, flows: Iterable[Any]) -> None:
        for flow in flows:
            for case in CASES:
                r = flow.case(case)
                if not r.converged:
                    self.failed.labels(case).inc()
                    continue
                self.vm_min.labels(case).set(r.vm_min_pu)
                self.vm_max.labels(case).set(r.vm_max_pu)
                self.line.labels(case).set(r.line_loading_max_percent)
                self.trafo.labels(case).set(r.trafo_loading_max_percent)
                self.losses.labels(case).set(r.losses_kw)
                if r.violations:
                    self.violations.labels(case).inc()
            self.interval.set(flow.interval)


class DatasetExporter:
    """Serves the counters on host:port (0 = any free port) from a thread."""

    def __init__(
        self,
        events_dir: Path,
        production: Mapping[int, int],
        consumption: Mapping[int, int],
        first_interval: int,
        info: Mapping[str, str],
        host: str = "127.0.0.1",
        port: int = 0,
        grid: bool = True,
    ) -> None:
        self.registry = CollectorRegistry()
        self._production = dict(production)
        self._consumption = dict(consumption)
        self._next = first_interval  # next delivery interval to count
        self.produced = Counter(
            "testbed_dataset_production_wh",
            "Dataset production (energy offered for sale) of the finalized intervals (Wh)",
            registry=self.registry,
        )
        self.consumed = Counter(
            "testbed_dataset_consumption_wh",
            "Dataset consumption (energy wanted) of the finalized intervals (Wh)",
            registry=self.registry,
        )
        self.finalized = Gauge(
            "testbed_finalized_interval",
            "Last delivery interval finalized (from the recorder's finalizations.csv)",
            registry=self.registry,
        )
        self.finalized.set(first_interval - 1)
        Info("testbed_run", "The run this orchestrator drives", registry=self.registry).info(
            dict(info)
        )
        self._tail = CsvTail(events_dir / "finalizations.csv")
        # the power flow follows the run when its bundle (events_dir's parent) has a spec
        self._grid_bundle = events_dir.parent if grid else None
        self._grid: Any = None
        self.grid_gauges = GridGauges(self.registry)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.host, self.port = host, port

    @property
    def last_interval(self) -> int:
        return self._next - 1

    def advance(self, finalized: Iterable[int]) -> None:
        """Count every interval up to the highest of `finalized`."""
        top = max(finalized, default=self._next - 1)
        while self._next <= top:
            self.produced.inc(self._production.get(self._next, 0))
            self.consumed.inc(self._consumption.get(self._next, 0))
            self._next += 1
        self.finalized.set(self._next - 1)

    def poll(self) -> None:
        with self._lock:
            finalized = [int(r["interval"]) for r in self._tail.read_new() if r.get("interval")]
            if finalized:
                self._advance_grid(max(finalized))
            self.advance(finalized)

    def _advance_grid(self, finalized: int) -> None:
        """Power flows up to `finalized`; a failure switches the grid feed off
        (logged): the dashboards never stop the run."""
        try:
            if self._prepare_grid():
                self.grid_gauges.record(self._grid.advance(finalized))
        except Exception:
            _log.exception("grid power flow feed stopped")
            self._grid_bundle = None

    def _prepare_grid(self) -> bool:
        """Build the net once (pandapower's import and the build take seconds:
        done by the thread before the first interval is finalized)."""
        if self._grid is None and self._grid_bundle is not None:
            from orchestrator.grid.live import LiveGrid

            if (self._grid_bundle / "spec.yaml").exists():
                self._grid = LiveGrid.of_bundle(self._grid_bundle)
            if self._grid is None:  # no spec, or the grid disabled in it
                self._grid_bundle = None
        return self._grid is not None

    def start(self) -> str:
        """Serve and follow; returns host:port."""
        self._server, _ = start_http_server(self.port, addr=self.host, registry=self.registry)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._run, name="dataset-exporter", daemon=True)
        self._thread.start()
        return f"{self.host}:{self.port}"

    def _run(self) -> None:
        with self._lock:
            try:
                self._prepare_grid()
            except Exception:
                _log.exception("grid power flow feed not started")
                self._grid_bundle = None
        while not self._stop.wait(POLL_SECONDS):
            self.poll()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
