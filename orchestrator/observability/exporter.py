"""The orchestrator's own Prometheus endpoint: what the dataset says about
the intervals the market has finalized so far.

Agents know offers and trades but not the microgrid's totals, so a dashboard
could not put energy traded next to production and demand (paper Figure 6).
This exporter follows the recorder's finalizations.csv and, for every
delivery interval finalized, adds the dataset's production (energy offered for
sale starting in it; battery offers count where the energy was produced) and
consumption (energy wanted) to two counters. `increase()` over the same
window then compares them with `testbed_energy_finalized_wh_total`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, start_http_server

from orchestrator.plan import Plan
from orchestrator.progress import CsvTail

POLL_SECONDS = 0.2


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
        self.advance(int(row["interval"]) for row in self._tail.read_new() if row.get("interval"))

    def start(self) -> str:
        """Serve and follow; returns host:port."""
        self._server, _ = start_http_server(self.port, addr=self.host, registry=self.registry)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._run, name="dataset-exporter", daemon=True)
        self._thread.start()
        return f"{self.host}:{self.port}"

    def _run(self) -> None:
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
