"""`testbed metrics BUNDLE`: a Prometheus on a bundle's TSDB snapshot.

The snapshot is copied into a temporary directory (Prometheus writes next
to its blocks: lock, WAL), served with an empty scrape config and unlimited
retention, and removed when the server stops. Queries run over the run's
time span (metrics/prometheus.json): after a run every series is stale, so
"now" holds nothing.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.backends.local import HOST, free_ports
from orchestrator.errors import TestbedError
from orchestrator.observability import dashboard as dash
from orchestrator.observability.collect import INFO_FILE, METRICS_DIR
from orchestrator.observability.server import (
    PrometheusApi,
    PrometheusError,
    Series,
    prometheus_argv,
    require_binary,
)
from orchestrator.results.bundle import read_json
from orchestrator.scrapetargets import empty_config

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class RunWindow:
    """When the run's Prometheus scraped, and how often."""

    start: float
    end: float
    scrape_interval: float
    run_id: str

    @property
    def step(self) -> float:
        return self.scrape_interval

    def builtins(self) -> dict[str, str]:
        """Grafana's built-in variables for a panel showing the whole run at
        one point per scrape: $__rate_interval = max($__interval + scrape,
        4 x scrape), as Grafana computes it."""
        rate = max(self.step + self.scrape_interval, 4 * self.scrape_interval)
        return {
            "__interval": f"{math.ceil(self.step * 1000)}ms",
            "__rate_interval": f"{math.ceil(rate * 1000)}ms",
            "__range": f"{math.ceil(self.end - self.start)}s",
        }


def bundle_metrics(bundle: Path) -> tuple[Path, dict[str, Any]]:
    """(snapshot dir, prometheus.json) of a bundle; TestbedError if it has none."""
    info = read_json(bundle / METRICS_DIR / INFO_FILE) or {}
    snapshot = bundle / METRICS_DIR / str(info.get("snapshot", "tsdb"))
    if not info or not snapshot.is_dir():
        raise TestbedError(
            f"{bundle}: no metrics snapshot (metrics/{INFO_FILE}); was the run made with "
            "metrics.prometheus.enabled and prometheus installed?"
        )
    return snapshot, info


def run_window(info: Mapping[str, Any]) -> RunWindow:
    """The run's span, its end rounded up to a whole number of steps: a range
    query's last point is then at or after the end, so it sees the agents'
    final scrape (the one they wait for before exiting)."""
    start, end = float(info["start"]), float(info["end"])
    step = float(info.get("scrape_interval_seconds", 5))
    steps = math.ceil(max(0.0, end - start) / step) if step > 0 else 0
    return RunWindow(start, start + steps * step, step, str(info.get("run_id", "")))


@dataclass
class SnapshotServer:
    """A foreground Prometheus serving a bundle's snapshot."""

    bundle: Path
    port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)
    api: PrometheusApi | None = None

    def start(self) -> PrometheusApi:
        snapshot, self.info = bundle_metrics(self.bundle)
        binary = require_binary()
        self.workdir = Path(tempfile.mkdtemp(prefix="testbed-metrics-"))
        data = self.workdir / "data"
        shutil.copytree(snapshot, data)
        config = self.workdir / "prometheus.yml"
        config.write_text(empty_config())
        port = self.port or free_ports(1, HOST)[0]
        listen = f"{HOST}:{port}"
        argv = prometheus_argv(
            binary, config=str(config), tsdb=str(data), listen=listen, admin_api=False
        )
        with open(self.workdir / "prometheus.log", "wb") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.api = PrometheusApi(f"http://{listen}")
        try:
            self.api.wait_ready(START_TIMEOUT_SECONDS, self._alive)
        except BaseException:
            self.stop()
            raise
        return self.api

    def _alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            assert self.workdir is not None
            tail = (self.workdir / "prometheus.log").read_text(errors="replace")[-1500:]
            raise PrometheusError(f"prometheus exited with {self.process.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def wait(self) -> None:
        """Until the server exits (or Ctrl-C)."""
        while self.process is not None and self.process.poll() is None:
            time.sleep(0.5)
        self._alive()


@contextlib.contextmanager
def serve_snapshot(bundle: Path, port: int | None = None) -> Iterator[SnapshotServer]:
    server = SnapshotServer(bundle, port)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- dashboard check -------------------------------------------------------------


@dataclass(frozen=True)
class QueryResult:
    query: dash.PanelQuery
    expr: str  # with variables substituted
    series: list[Series]
    error: str | None = None

    @property
    def values(self) -> int:
        """Finite samples in the result (NaN from 0/0 rates does not count)."""
        return sum(len(s.finite) for s in self.series)

    @property
    def ok(self) -> bool:
        return self.error is None and self.values > 0


def variable_values(
    api: PrometheusApi, window: RunWindow, dashboard: Mapping[str, Any]
) -> dict[str, str]:
    """Every dashboard variable resolved as Grafana would for this run: query
    variables by their label_values() query against the server (the run's
    own id must be among them), custom variables at their default."""
    values = window.builtins()
    for var in dashboard.get("templating", {}).get("list", ()):
        name = var["name"]
        if var["type"] == "query":
            found = _label_values(api, str(var["definition"]), window)
            if not found:
                raise TestbedError(f"dashboard variable ${name}: {var['definition']} found nothing")
            values[name] = window.run_id if window.run_id in found else found[0]
        elif var["type"] == "custom":
            values[name] = str(var["current"]["value"])
        elif var["type"] == "datasource":
            values[name] = dash.DATASOURCE_UID
    return values


def _label_values(api: PrometheusApi, definition: str, window: RunWindow) -> list[str]:
    inner = definition.strip()
    if not (inner.startswith("label_values(") and inner.endswith(")")):
        raise TestbedError(f"unsupported variable query {definition!r}")
    metric, _, label = inner[len("label_values(") : -1].rpartition(",")
    return api.label_values(label.strip(), [metric.strip()], window.start, window.end)


def check_dashboard(
    api: PrometheusApi, window: RunWindow, dashboard: Mapping[str, Any] | None = None
) -> list[QueryResult]:
    """Run every panel query of the dashboard over the run's span."""
    board = dashboard if dashboard is not None else dash.load()
    values = variable_values(api, window, board)
    results = []
    for q in dash.queries(board):
        expr = dash.substitute(q.expr, values)
        try:
            series = api.query_range(expr, window.start, window.end, window.step)
            results.append(QueryResult(q, expr, series))
        except PrometheusError as exc:
            results.append(QueryResult(q, expr, [], str(exc)))
    return results
