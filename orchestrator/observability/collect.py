"""Prometheus as part of a run: started right after the backend has placed
the agents (so it is scraping before the market starts), snapshotted into the
bundle when the run ends.

    RunMetricsHooks(...).attach(run_events)  # by orchestrator.extensions
    # started: start_run_metrics(...); market_starting: wait_discovered();
    # agents_stopped: finish() (final scrape, snapshot -> bundle/metrics/)

Bundle layout: metrics/prometheus.yml (the rendered config), metrics/tsdb/
(the snapshot: Prometheus blocks), metrics/prometheus.json (what `testbed
metrics` needs: time span, scrape interval, targets), logs/prometheus.log.

The Prometheus process is a backend unit like any agent (pidfile, run id),
so `testbed clean` stops it after a killed run. It is auxiliary: if it dies,
the experiment goes on without metrics.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from orchestrator.backends.base import Backend, Placement, PrometheusSite, Unit
from orchestrator.backends.local import HOST, free_ports
from orchestrator.hooks import Events
from orchestrator.lifecycle import interrupts_deferred, log_tail
from orchestrator.observability.exporter import DatasetExporter, dataset_energy
from orchestrator.observability.server import (
    PrometheusApi,
    PrometheusError,
    prometheus_argv,
    prometheus_binary,
)
from orchestrator.observability.swarmsd import refresh_seconds, render_swarm_config
from orchestrator.plan import Plan
from orchestrator.results.bundle import Bundle
from orchestrator.scrapetargets import (
    ScrapeTarget,
    agent_targets,
    orchestrator_target,
    render_config,
    run_scrape_interval,
)
from orchestrator.spec import Spec
from orchestrator.spec.backends import backend_entry

UNIT = "prometheus"
METRICS_DIR = "metrics"
SNAPSHOT_DIR = "tsdb"
INFO_FILE = "prometheus.json"
START_TIMEOUT_SECONDS = 30.0
DISCOVERY_TIMEOUT_SECONDS = 30.0
DISCOVERY_POLL_SECONDS = 0.4
DISCOVERY_TARGETS_PER_POLL_SECOND = 100  # 315 targets: asked every 3.2 s
# At the end: wait this many scrape intervals (at least FINAL_SCRAPE_MIN_SECONDS)
# for Prometheus to scrape the orchestrator's final counters.
FINAL_SCRAPES = 3
FINAL_SCRAPE_MIN_SECONDS = 2.0

Announce = Callable[[str], None]


class RunMetrics:
    """One run's Prometheus (a backend unit) and the orchestrator's exporter."""

    def __init__(
        self,
        *,
        plan: Plan,
        backend: Backend,
        bundle: Path,
        targets: Sequence[ScrapeTarget],
        config: str,
        exporter: DatasetExporter,
        interval_seconds: float,
        tsdb: Path,
        listen_host: str = "127.0.0.1",
        announce: Announce = lambda _message: None,
    ) -> None:
        self.plan = plan
        self.backend = backend
        self.dir = bundle / METRICS_DIR
        self.log_file = Bundle(bundle).log_file("prometheus")
        self.targets = list(targets)  # what it should scrape (swarm: discovers them itself)
        self.config = config  # prometheus.yml
        self.exporter = exporter
        self.interval_seconds = interval_seconds
        self.tsdb = tsdb
        self.listen_host = listen_host
        self.announce = announce
        self.unit = UNIT if UNIT not in {a.name for a in plan.agents} else f"{UNIT}-server"
        self.api: PrometheusApi | None = None
        self.started_at: float | None = None

    @property
    def url(self) -> str | None:
        return self.api.url if self.api is not None else None

    def start(self, binary: str, port: int) -> str:
        """Start Prometheus on `port`; returns its URL once it is ready."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tsdb.mkdir(parents=True, exist_ok=True)
        config = self.dir / "prometheus.yml"
        config.write_text(self.config)
        listen = f"{self.listen_host}:{port}"
        argv = prometheus_argv(binary, config=str(config), tsdb=str(self.tsdb), listen=listen)
        with interrupts_deferred():  # started and recorded, or neither (see stop)
            self.backend.start(Unit(self.unit, "prometheus", tuple(argv), self.log_file))
            self.started_at = time.time()
        self.api = PrometheusApi(f"http://{listen}")
        self.api.wait_ready(START_TIMEOUT_SECONDS, self._alive)
        return self.api.url

    def _alive(self) -> None:
        state = self.backend.status().get(self.unit)
        if state is not None and state.state == "exited":
            tail = log_tail(self.log_file, 5)
            raise PrometheusError(f"prometheus exited with {state.returncode}:\n{tail}")

    def wait_discovered(self) -> None:
        """Until Prometheus scrapes every target (call before the market
        starts). A failure is announced, not raised."""
        self.wait_targets(self.expected_targets())

    def expected_targets(self) -> int:
        """How many targets Prometheus can scrape now (0: none is running)."""
        if self.api is None:
            return 0
        expected = len(self.targets)
        if backend_entry(self.backend.name).prometheus == "swarm":
            # discovered from the swarm's tasks: a unit not started cannot be found
            # (the hosts' services are created meanwhile: this wait overlaps them)
            started = set(self.backend.status())
            expected -= sum(1 for a in self.plan.agents if a.name not in started)
        return expected

    def wait_targets(self, expected: int, *, moving: bool = False) -> None:
        """Until Prometheus scrapes `expected` targets (announced if it does not);
        `moving`: as long as more are found (server.py), asked less often the more
        there are (each answer lists every target)."""
        if self.api is None:
            return
        poll = max(DISCOVERY_POLL_SECONDS, expected / DISCOVERY_TARGETS_PER_POLL_SECOND)
        try:
            self.api.wait_targets(expected, DISCOVERY_TIMEOUT_SECONDS, moving=moving, poll=poll)
        except PrometheusError as exc:
            self.announce(f"metrics: {exc}")

    def finish(self) -> dict[str, Any]:
        """Final scrape, snapshot into the bundle, stop Prometheus and the
        exporter (always, whatever fails). Returns what prometheus.json holds."""
        try:
            return self._snapshot()
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop Prometheus and the exporter (no snapshot); its live data goes
        when the backend kept it in the bundle (the snapshot is what stays)."""
        try:
            if self.unit in self.backend.status():
                self.backend.stop([self.unit])
        finally:
            self.exporter.stop()
            if self.tsdb.is_relative_to(self.dir.parent):
                shutil.rmtree(self.tsdb, ignore_errors=True)

    def _snapshot(self) -> dict[str, Any]:
        assert self.api is not None
        self._alive()
        self.exporter.poll()
        self._wait_final_scrape()
        name = self.api.snapshot()
        end = time.time()
        target = self.dir / SNAPSHOT_DIR
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.tsdb / "snapshots" / name, target)
        blocks = sorted(p.name for p in target.iterdir() if (p / "meta.json").exists())
        info = {
            "run_id": self.plan.run_id,
            "spec": self.plan.spec_name,
            "prometheus_version": self._version(),
            "live_url": self.api.url,
            "scrape_interval_seconds": self.interval_seconds,
            "start": self.started_at,
            "end": end,
            "snapshot": SNAPSHOT_DIR,
            "blocks": blocks,
            "targets": [{"address": t.address, "labels": dict(t.labels)} for t in self.targets],
            **self._scraped(end),
        }
        (self.dir / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        return info

    def _scraped(self, end: float) -> dict[str, Any]:
        """What the snapshot really holds: the series and the targets scraped
        successfully at least once (None when Prometheus cannot say)."""
        assert self.api is not None
        span = max(1, int(end - (self.started_at or end)) + 1)
        run = f'run_id="{self.plan.run_id}"'
        try:
            series = self.api.query(f'count({{__name__=~".+", {run}}})', at=end)
            up = self.api.query(f"count(max_over_time(up{{{run}}}[{span}s]) == 1)", at=end)
        except PrometheusError as exc:
            self.announce(f"metrics: could not count the snapshot's series: {exc}")
            return {"series": None, "targets_scraped": None}
        return {"series": _count(series), "targets_scraped": _count(up)}

    def _wait_final_scrape(self) -> None:
        """Until Prometheus holds the exporter's last finalized interval (bounded)."""
        assert self.api is not None
        if self.exporter.last_interval < self.plan.market.first_interval:
            return  # nothing finalized (stopped while starting): no final counters to wait for
        expr = f'testbed_finalized_interval{{run_id="{self.plan.run_id}"}}'
        wanted = float(self.exporter.last_interval)
        timeout = max(FINAL_SCRAPE_MIN_SECONDS, FINAL_SCRAPES * self.interval_seconds)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [v for s in self.api.query(expr) for v in s.finite]
            if got and max(got) >= wanted:
                return
            time.sleep(min(0.2, self.interval_seconds / 2))

    def _version(self) -> str | None:
        try:
            return str(self.api.build_info().get("version")) if self.api else None
        except PrometheusError:
            return None


def _count(result: Sequence[Any]) -> int:
    values = [v for s in result for v in s.finite]
    return int(values[0]) if values else 0


def start_run_metrics(
    spec: Spec,
    plan: Plan,
    placement: Placement,
    backend: Backend,
    bundle: Path,
    announce: Announce = lambda _message: None,
) -> RunMetrics | None:
    """Prometheus for this run when the spec enables it and the backend
    supports it; None (with a note through `announce`) otherwise, also when
    Prometheus does not come up: observability never stops an experiment.

    Targets are each agent's metrics_host:metrics_port as placed by the
    backend (local: 127.0.0.1:port; docker: the container name on the run's
    network) and the orchestrator's exporter at `backend.orchestrator_host()`.
    Prometheus listens where `backend.prometheus_site` says (swarm: on the
    manager node), by default on 127.0.0.1 (a docker backend publishes it
    there) with its TSDB in the backend's run state."""
    config = spec.metrics.prometheus
    if not config.enabled:
        return None
    # "host": the Debian binary on this machine; "image": the backend runs the same
    # argv in a container (the image's binary; argv[0] is ignored)
    kind = backend_entry(backend.name).prometheus
    binary = prometheus_binary() if kind == "host" else "prometheus"
    if binary is None:
        announce(
            "metrics: prometheus not found (install the Debian package `prometheus` or "
            "set metrics.prometheus.enabled=false); running without metrics"
        )
        return None
    production, consumption = dataset_energy(plan)
    m = plan.market
    exporter = DatasetExporter(
        Bundle(bundle).events,
        production,
        consumption,
        m.first_interval,
        info={"spec": plan.spec_name, "run_id": plan.run_id, "clock": m.clock},
        host=backend.orchestrator_host(),  # where Prometheus (local or in a container) reaches it
    )
    exporter_address = exporter.start()
    agents = agent_targets(
        plan,
        lambda name: f"{placement.agents[name].metrics_host}:{placement.agents[name].metrics_port}",
    )
    static = [orchestrator_target(plan, exporter_address)]
    targets = [*agents, *static]
    interval = run_scrape_interval(config.scrape_interval_seconds, m, len(targets))
    site = backend.prometheus_site(bundle) or PrometheusSite(
        HOST, free_ports(1, HOST)[0], backend.state_dir / "prometheus"
    )
    metrics = RunMetrics(
        plan=plan,
        backend=backend,
        bundle=bundle,
        targets=targets,
        config=prometheus_config(kind, plan, agents, static, interval),
        exporter=exporter,
        interval_seconds=interval,
        tsdb=site.tsdb,
        listen_host=site.host,
        announce=announce,
    )
    try:
        url = metrics.start(binary, site.port)
    except PrometheusError as exc:
        metrics.stop()
        announce(f"metrics: {exc}; running without metrics")
        return None
    except BaseException:
        metrics.stop()
        raise
    announce(f"prometheus: {url} (scraping {len(targets)} targets every {interval:g} s)")
    return metrics


def prometheus_config(
    kind: str,
    plan: Plan,
    agents: Sequence[ScrapeTarget],
    static: Sequence[ScrapeTarget],
    interval_seconds: float,
) -> str:
    """prometheus.yml for a backend whose registry entry says `prometheus: kind`:
    "swarm" discovers the agents among the swarm's tasks (swarmsd.py), the
    others scrape the addresses the backend placed them at."""
    if kind == "swarm":
        # each refresh lists the run's tasks (and every service) on the manager: not
        # with the scrape interval, but less often the more tasks there are; the hosts
        # are found before the market starts all the same (RunMetricsHooks)
        refresh = refresh_seconds(len(agents) + len(static))
        return render_swarm_config(
            plan, static, interval_seconds=interval_seconds, refresh_seconds=refresh
        )
    return render_config([*agents, *static], interval_seconds=interval_seconds, run_id=plan.run_id)


class RunMetricsHooks:
    """A run's Prometheus as a listener of the run's events (orchestrator.hooks)."""

    def __init__(
        self, spec: Spec, plan: Plan, backend: Backend, bundle: Path, announce: Announce
    ) -> None:
        self.spec = spec
        self.plan = plan
        self.backend = backend
        self.bundle = bundle
        self.announce = announce
        self.metrics: RunMetrics | None = None
        self._discovery: threading.Thread | None = None

    def attach(self, events: Events) -> None:
        events.started.add_listener(self.start, name="metrics")
        events.market_starting.add_listener(self.wait_discovered, name="metrics")
        events.all_ready.add_listener(self.discovered, name="metrics")
        events.add_exempt(self.units)  # auxiliary: its exit does not end the run
        events.agents_stopped.add_listener(self.finish, name="metrics snapshot")

    def start(self, placement: Placement) -> None:
        self.metrics = start_run_metrics(
            self.spec, self.plan, placement, self.backend, self.bundle, self.announce
        )

    def wait_discovered(self) -> None:
        """Prometheus scrapes the started agents before the market starts. On a
        swarm, Prometheus finds them within one refresh of the swarm's tasks,
        and the last tier's hosts take seconds to start there: the wait goes on
        while they start (joined when all are ready), instead of before."""
        if self.metrics is None:
            return
        if backend_entry(self.backend.name).prometheus != "swarm":
            self.metrics.wait_discovered()
            return
        # every target, the hosts too: they are found as their tasks are made (the
        # tier starts now), so the wait goes on as long as more are found
        expected = len(self.metrics.targets)
        self._discovery = threading.Thread(
            target=self.metrics.wait_targets,
            args=(expected,),
            kwargs={"moving": True},
            name="metrics-discovery",
        )
        self._discovery.daemon = True
        self._discovery.start()

    def discovered(self) -> None:
        if self._discovery is not None:
            self._discovery.join()
            self._discovery = None

    def units(self) -> set[str]:
        return {self.metrics.unit} if self.metrics is not None else set()

    def finish(self, _outcome: object) -> None:
        if self.metrics is not None:
            self.metrics.finish()
