"""An agent's /metrics endpoint tells Prometheus' scrapes from other reads and
counts them once sent; a finished agent waits (bounded) for one more scrape of
its final values."""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.request
from collections.abc import Callable

from prometheus_client import REGISTRY, generate_latest

from agents.common.metrics import (
    OWNED_HISTOGRAMS,
    ScrapeLog,
    await_final_scrape,
    export_owned,
    serve_metrics,
)

PROMETHEUS = "Prometheus/2.42.0+ds"


def fetch(port: int, user_agent: str) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"User-Agent": user_agent}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(response.read().decode())


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_only_prometheus_reads_count_as_scrapes() -> None:
    log = ScrapeLog()
    server = serve_metrics("127.0.0.1", 0, log)
    try:
        port = server.server_address[1]
        assert "testbed_agent_ready" in fetch(port, "Python-urllib/3.11")  # the readiness probe
        assert log.times == [] and log.period() is None
        fetch(port, PROMETHEUS)
        fetch(port, PROMETHEUS)
        wait_for(lambda: len(log.times) == 2)  # counted once the server has sent them
        assert log.period() is not None
    finally:
        server.shutdown()
        server.server_close()


def test_a_finished_agent_waits_for_the_next_scrape() -> None:
    log = ScrapeLog()
    server = serve_metrics("127.0.0.1", 0, log)
    port = server.server_address[1]
    try:
        fetch(port, PROMETHEUS)
        fetch(port, PROMETHEUS)  # a period observed: the wait is bounded by a few of them
        wait_for(lambda: len(log.times) == 2)
        scraped_after: list[float] = []

        def prometheus() -> None:  # the next scrape, once the agent waits
            deadline = time.monotonic() + 30
            while not waiting.is_set() and time.monotonic() < deadline:
                waiting.wait(0.05)
            scraped_after.append(time.monotonic())
            fetch(port, PROMETHEUS)

        waiting = threading.Event()
        thread = threading.Thread(target=prometheus)
        thread.start()
        started = time.monotonic()
        log.period = lambda: 30.0  # type: ignore[method-assign]  # a generous bound
        stop_calls = 0

        def stop() -> bool:
            nonlocal stop_calls
            stop_calls += 1
            waiting.set()
            return False

        assert await_final_scrape(stop, log) is True
        thread.join(30)
        assert scraped_after and scraped_after[0] >= started
        assert stop_calls >= 1
    finally:
        server.shutdown()
        server.server_close()


def test_no_wait_when_never_scraped_or_when_stopped() -> None:
    assert await_final_scrape(lambda: False, ScrapeLog()) is False  # Prometheus disabled
    log = ScrapeLog()
    log.sent(time.monotonic())
    started = time.monotonic()
    assert await_final_scrape(lambda: True, log) is False  # SIGTERM: no waiting
    assert time.monotonic() - started < 25  # not the 30 s bound


def test_each_role_exports_only_the_histograms_it_owns() -> None:
    owned = {
        "recorder": ("testbed_offer_to_trade_seconds", "testbed_block_transactions"),
        "solver": ("testbed_solver_solve_seconds",),
    }
    try:
        for role in ("prosumer", "recorder", "solver", "prosumer"):
            export_owned(role)
            text = generate_latest(REGISTRY).decode()
            for owner, names in owned.items():
                for name in names:
                    assert (f"{name}_count " in text) == (owner == role), (role, name)
            assert "testbed_offers_posted_total" in text  # counters stay for every role
    finally:  # every histogram back in the registry, as other tests of this process expect
        for histogram in (h for hs in OWNED_HISTOGRAMS.values() for h in hs):
            with contextlib.suppress(ValueError):
                REGISTRY.register(histogram)
