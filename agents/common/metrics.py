"""Every Prometheus metric named in run-interfaces.md, defined once.

Agents import the objects they update; all live in the default registry, served
by `start_metrics(host, port)`. Labels are bounded (function, result); which
agent a series comes from is the scrape target's label (plus `testbed_agent_info`).
Owner (the only role that updates it, so sums across agents do not double count):

- recorder: OFFER_TO_TRADE_SECONDS, OFFER_TO_FINALIZATION_SECONDS, BLOCK_TRANSACTIONS
- solver:   SOLVER_SOLVE_SECONDS, SOLVER_OBJECTIVE_WH, SOLUTIONS_TOTAL{result,reason},
            ADVERSARIAL_ACTIONS_TOTAL{behaviour}
- clock:    ENERGY_FINALIZED_WH_TOTAL, INTERVAL_LAG, CURRENT_INTERVAL
- dso:      FAILED_WITHDRAWALS_TOTAL, WITHDRAWALS_TOTAL
- prosumer: OFFERS_POSTED_TOTAL, OFFERS_REFUSED_TOTAL{reason}
- every agent: TRANSACTIONS_TOTAL{function}, GAS_USED_TOTAL{function} for the
  transactions it sends (use `record_transaction`), AGENT_READY, AGENT_INFO.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info, make_wsgi_app

# Seconds; covers wallclock runs (Δ̂ of a few seconds up to the paper's 120 s)
# and lockstep runs measured in virtual chain time (hours).
LATENCY_BUCKETS = (
    0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600,
    900, 1800, 3600, 7200, 14400, 28800, 86400,
)  # fmt: skip
SOLVE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)

OFFER_TO_TRADE_SECONDS = Histogram(
    "testbed_offer_to_trade_seconds",
    "Offer transaction to the first accepted solution that trades it",
    buckets=LATENCY_BUCKETS,
)
OFFER_TO_FINALIZATION_SECONDS = Histogram(
    "testbed_offer_to_finalization_seconds",
    "Offer transaction to the finalization of its first trade",
    buckets=LATENCY_BUCKETS,
)
SOLVER_SOLVE_SECONDS = Histogram(
    "testbed_solver_solve_seconds", "Wall seconds of one solve", buckets=SOLVE_BUCKETS
)
BLOCK_TRANSACTIONS = Histogram(
    "testbed_block_transactions",
    "Transactions per mined block (recorder)",
    buckets=(0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
SOLVER_OBJECTIVE_WH = Gauge("testbed_solver_objective_wh", "Objective of the latest solve (Wh)")
# reason: "" unless rejected, then the contract's custom error name (a bounded set, from the
# ABI; "Unknown" otherwise). Dashboards sum by result.
SOLUTIONS_TOTAL = Counter(
    "testbed_solutions_total",
    "Solutions by outcome (accepted|rejected|skipped|scheduled) and revert reason",
    ["result", "reason"],
)
ADVERSARIAL_ACTIONS_TOTAL = Counter(
    "testbed_adversarial_actions_total",
    "Submissions or offers made under an adversarial behaviour (issue 8)",
    ["behaviour"],
)
TRANSACTIONS_TOTAL = Counter(
    "testbed_transactions_total", "Transactions sent, by contract function", ["function"]
)
GAS_USED_TOTAL = Counter("testbed_gas_used_total", "Gas used, by contract function", ["function"])
ENERGY_FINALIZED_WH_TOTAL = Counter(
    "testbed_energy_finalized_wh_total", "Energy in finalized trades (Wh)"
)
FAILED_WITHDRAWALS_TOTAL = Counter(
    "testbed_failed_withdrawals_total", "withdrawAssets requests refused by the DSO"
)
WITHDRAWALS_TOTAL = Counter("testbed_withdrawals_total", "withdrawAssets requests granted")
OFFERS_POSTED_TOTAL = Counter("testbed_offers_posted_total", "Offers posted by prosumers")
# reason: the contract's custom error (InsufficientEnergyAsset, RangeFinalized, NotLinked, ...),
# "failedWithdrawal" (the DSO refused the assets) or "reverted" (no reason known).
OFFERS_REFUSED_TOTAL = Counter(
    "testbed_offers_refused_total", "Offers not posted, by reason", ["reason"]
)
INTERVAL_LAG = Gauge("testbed_interval_lag", "Clock interval minus last finalized interval")
CURRENT_INTERVAL = Gauge("testbed_current_interval", "Current clock interval")
AGENT_READY = Gauge("testbed_agent_ready", "1 once the agent is connected and ready")
AGENT_INFO = Info("testbed_agent", "Identity of this agent process")


# After its work an agent waits for Prometheus' next scrape (so the run's metrics hold
# its last counters), at most this many observed scrape periods, and never longer than
# FINAL_SCRAPE_MAX_SECONDS; an agent Prometheus never scraped does not wait.
FINAL_SCRAPE_PERIODS = 3
FINAL_SCRAPE_MAX_SECONDS = 30.0


class ScrapeLog:
    """When Prometheus' scrapes of /metrics began, counted once their response
    was sent (a process that exits mid-response fails the scrape). Prometheus is
    told apart from the orchestrator's readiness and progress reads by its
    User-Agent."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.times: list[float] = []  # monotonic start times of the last few sent scrapes

    @staticmethod
    def is_prometheus(user_agent: str) -> bool:
        return user_agent.startswith("Prometheus/")

    def sent(self, began: float) -> None:
        """A scrape that began at `began` (monotonic) has had its response sent."""
        with self._cond:
            self.times = sorted([*self.times, began])[-4:]
            self._cond.notify_all()

    def period(self) -> float | None:
        """The last observed time between two scrapes (None: fewer than two)."""
        with self._cond:
            return self.times[-1] - self.times[-2] if len(self.times) >= 2 else None

    def wait_after(self, since: float, timeout: float, stop: Callable[[], bool]) -> bool:
        """Until a scrape that began after `since` (monotonic), `timeout` or `stop()`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (self.times and self.times[-1] > since):
                left = deadline - time.monotonic()
                if left <= 0 or stop():
                    return False
                self._cond.wait(min(left, 0.2))
            return True


SCRAPES = ScrapeLog()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _counting_app(scrapes: ScrapeLog) -> Callable[..., Iterable[bytes]]:
    app = make_wsgi_app()

    def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        began = time.monotonic()
        body = app(environ, start_response)
        if not scrapes.is_prometheus(str(environ.get("HTTP_USER_AGENT", ""))):
            return body
        return _Sent(body, lambda: scrapes.sent(began))

    return counted


class _Sent:
    """A WSGI response body that reports when the server has written it
    (wsgiref calls close() after the last write)."""

    def __init__(self, body: Iterable[bytes], done: Callable[[], None]) -> None:
        self.body = body
        self.done = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        close = getattr(self.body, "close", None)
        if close is not None:
            close()
        self.done()


# How long a /metrics client may take to send its request: the server answers one
# request at a time (readers are Prometheus and the orchestrator's readiness polls).
CLIENT_TIMEOUT_SECONDS = 2.0


class _Handler(_QuietHandler):
    timeout = CLIENT_TIMEOUT_SECONDS


class MetricsServer(WSGIServer):
    """Answers in its one thread (a thread per request, as ThreadingWSGIServer does,
    doubled a scrape's CPU: 1.3 vs 0.6 ms) and waits for requests without waking
    up every 0.5 s (serve_forever's default poll): `shutdown()` connects to wake it."""

    def serve_forever(self, poll_interval: float | None = None) -> None:
        super().serve_forever(poll_interval)  # type: ignore[arg-type]

    def shutdown(self) -> None:
        address = (str(self.server_address[0]), int(self.server_address[1]))
        stopping = threading.Thread(target=super().shutdown, daemon=True)
        stopping.start()
        while stopping.is_alive():
            with contextlib.suppress(OSError):
                socket.create_connection(address, timeout=1).close()
            stopping.join(0.05)


def serve_metrics(host: str, port: int, scrapes: ScrapeLog = SCRAPES) -> WSGIServer:
    """/metrics of the default registry on host:port, in a daemon thread."""

    class Server(MetricsServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    httpd = make_server(host, port, _counting_app(scrapes), Server, handler_class=_Handler)
    threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True).start()
    return httpd


# Histograms only their owner updates, exported by that role only: in any other agent
# they are 83 of a prosumer host's 112 samples, always zero, and every scrape (Prometheus',
# down to every 0.5 s in short runs, and the orchestrator's readiness polls) renders them:
# 0.62 vs 0.23 ms of the host's CPU per rendering.
OWNED_HISTOGRAMS: Mapping[str, tuple[Histogram, ...]] = {
    "recorder": (OFFER_TO_TRADE_SECONDS, OFFER_TO_FINALIZATION_SECONDS, BLOCK_TRANSACTIONS),
    "solver": (SOLVER_SOLVE_SECONDS,),
}


def export_owned(role: str) -> None:
    """Register the owned histograms of `role` in the default registry, drop the others'."""
    for owner, histograms in OWNED_HISTOGRAMS.items():
        for histogram in histograms:
            try:
                if owner == role:
                    REGISTRY.register(histogram)
                else:
                    REGISTRY.unregister(histogram)
            except (KeyError, ValueError):  # already as wanted
                pass


def start_metrics(host: str, port: int, role: str, name: str) -> None:
    """Serve /metrics on host:port (port 0 = do not serve) with ready = 0.
    A solver's accepted-solutions series exists from the start (at 0), so an
    increase() over a short run counts its first solutions too."""
    export_owned(role)
    AGENT_INFO.info({"role": role, "agent": name})
    AGENT_READY.set(0)
    if role == "solver":
        SOLUTIONS_TOTAL.labels(result="accepted", reason="")
    if port:
        serve_metrics(host, port)


def await_final_scrape(stop: Callable[[], bool], scrapes: ScrapeLog = SCRAPES) -> bool:
    """Call when the agent's work is done: wait for Prometheus to scrape the
    final values once more (bounded; `stop()` True ends the wait, e.g. SIGTERM).
    True when that scrape happened; False at once if Prometheus never scraped."""
    period = scrapes.period()
    if not scrapes.times:
        return False
    timeout = min(FINAL_SCRAPE_MAX_SECONDS, FINAL_SCRAPE_PERIODS * (period or 10.0))
    return scrapes.wait_after(time.monotonic(), timeout, stop)


def mark_ready() -> None:
    AGENT_READY.set(1)


def record_transaction(function: str, receipt: Mapping[str, Any]) -> None:
    """Count one mined transaction of contract `function` and its gas
    (`gasUsed` as an int, or hex string as in a raw JSON-RPC receipt)."""
    gas = receipt.get("gasUsed", 0)
    TRANSACTIONS_TOTAL.labels(function=function).inc()
    GAS_USED_TOTAL.labels(function=function).inc(int(gas, 16) if isinstance(gas, str) else int(gas))
