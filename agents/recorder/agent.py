"""The recorder agent: follows the chain and writes the run's event log.

Loop: every POLL_SECONDS read the new blocks (`ChainFollower`), append their rows to
the CSVs in out_dir (flushed per row), and feed the latency histograms. The clock's
`done` (or SIGTERM) ends it: it drains the chain up to the head once more, closes the
CSVs and writes `recorder.json` (summary), `latencies.csv` (per offer, Figure 11) and
`gas.json` (gas by contract function of the blocks it read, agents.recorder.gas).

Prometheus: testbed_offer_to_trade_seconds and testbed_offer_to_finalization_seconds
(observed once per offer, at its first accepted solution / first finalized trade).
testbed_energy_finalized_wh_total is owned by the clock (agents.common.metrics), so the
recorder does not count it again; its summary has the total instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

from agents.chain.artifact import abi
from agents.common import metrics
from agents.common.config import AgentConfig
from agents.common.errors import AgentError
from agents.common.protocol import Done, Message
from agents.common.rpc import JsonRpc
from agents.common.shutdown import Shutdown
from agents.common.transport import Subscriber
from agents.recorder.follower import ChainFollower
from agents.recorder.gas import GAS_FILE, GasCounter, function_selectors, write_gas
from agents.recorder.records import (
    EventLog,
    OfferRow,
    Row,
    SolutionRow,
    TradeRow,
    load_latency_inputs,
    summarize_events,
    write_json,
    write_latencies,
)
from agents.recorder.stats import offer_to_finalization_seconds, offer_to_trade_seconds

log = logging.getLogger("agents.recorder")

POLL_SECONDS = 0.15
DRAIN_SECONDS = 10.0
SUMMARY_FILE = "recorder.json"
LATENCIES_FILE = "latencies.csv"


class LatencyTracker:
    """Observes each offer's first inclusion in an accepted solution and in a
    finalized trade into the Prometheus histograms (the summary is recomputed
    from the CSVs at the end with `agents.recorder.stats`, to the same values)."""

    def __init__(self) -> None:
        self.posted_ms: dict[int, int] = {}
        self.traded: set[int] = set()
        self.finalized: set[int] = set()
        self.counts = {"offers": 0, "accepted": 0, "rejected": 0, "trades": 0}
        self.energy_wh = 0

    def add(self, row: Row) -> None:
        if isinstance(row, OfferRow):
            self.posted_ms[row.offer_id] = row.stamp.time_ms
            self.counts["offers"] += 1
        elif isinstance(row, SolutionRow):
            self.counts[row.result] = self.counts.get(row.result, 0) + 1
            if row.result == "accepted":
                self._first(
                    row.offers, row.stamp.time_ms, self.traded, metrics.OFFER_TO_TRADE_SECONDS
                )
        elif isinstance(row, TradeRow):
            self.counts["trades"] += 1
            self.energy_wh += row.energy_wh
            self._first(
                (row.seller, row.buyer),
                row.stamp.time_ms,
                self.finalized,
                metrics.OFFER_TO_FINALIZATION_SECONDS,
            )

    def _first(
        self, offers: Iterable[int], time_ms: int, seen: set[int], histogram: metrics.Histogram
    ) -> None:
        for oid in offers:
            posted = self.posted_ms.get(oid)
            if posted is None or oid in seen:
                continue
            seen.add(oid)
            histogram.observe((time_ms - posted) / 1000.0)


class Recorder:
    """Follower + event log + latency tracker; `step()` is one poll."""

    def __init__(self, follower: ChainFollower, out_dir: Path) -> None:
        self.follower = follower
        self.out_dir = out_dir
        self.events = EventLog(out_dir)
        self.tracker = LatencyTracker()

    def step(self) -> int:
        rows = self.follower.poll()
        for row in rows:
            self.events.write(row)
            self.tracker.add(row)
        return len(rows)

    def drain(self, timeout: float = DRAIN_SECONDS) -> None:
        """Read up to the chain head (bounded: the node may already be gone)."""
        deadline = time.monotonic() + timeout
        try:
            head = int(self.follower.rpc.call("eth_blockNumber"), 16)
            while self.follower.next_block <= head and time.monotonic() < deadline:
                self.step()
        except AgentError as exc:
            log.warning("final read of the chain failed: %s", exc)

    def finish(self, intervals: Iterable[int] = ()) -> dict[str, object]:
        """Close the CSVs and write the summary and per-offer latencies."""
        self.events.close()
        summary = summarize_events(self.out_dir, list(intervals))
        summary["blocks_read"] = self.follower.next_block
        write_json(self.out_dir / SUMMARY_FILE, summary)
        if self.follower.gas is not None:
            gas = self.follower.gas.tally
            write_gas(self.out_dir / GAS_FILE, self.follower.address, self.follower.next_block, gas)
        offers, accepted, finals = load_latency_inputs(self.out_dir)
        write_latencies(
            self.out_dir / LATENCIES_FILE,
            offer_to_trade_seconds(offers, accepted),
            offer_to_finalization_seconds(offers, finals),
            [o.offer_id for o in offers],
        )
        return summary


def _wait_for_done(sub: Subscriber | None, shutdown: Shutdown, timeout: float) -> bool:
    """Wait up to `timeout` for clock messages; True once `done` arrived."""
    if sub is None:
        shutdown.wait(timeout)
        return False
    msg: Message | None = sub.recv(timeout)
    while msg is not None:
        if isinstance(msg, Done):
            return True
        msg = sub.recv(0)
    return False


def run(config: AgentConfig, shutdown: Shutdown) -> int:
    """Record until the clock says `done` (or SIGTERM); exit code 0 either way."""
    rpc = JsonRpc(config.rpc_url)
    gas = GasCounter(rpc, function_selectors(abi()), config.contract_address)
    recorder = Recorder(ChainFollower(rpc, config.contract_address, gas=gas), config.out_dir)
    sub = Subscriber(config.clock_pub_endpoint) if config.clock_pub_endpoint else None
    market = config.market
    log.info("recording %s into %s", config.contract_address, config.out_dir)
    metrics.mark_ready()
    done = False
    try:
        while not shutdown and not done:
            try:
                recorder.step()
            except AgentError as exc:  # a transient RPC failure must not lose the log
                log.warning("reading the chain failed: %s", exc)
            done = _wait_for_done(sub, shutdown, POLL_SECONDS)
        recorder.drain()
    finally:
        summary = recorder.finish(range(market.first_interval, market.last_interval + 1))
        if sub is not None:
            sub.close()
        rpc.close()
    log.info(
        "recorded %d offers, %s solutions, %.3f kWh finalized; offer-to-trade p50 %s s",
        summary["offers"],
        summary["solutions"],
        summary["total_energy_traded_kwh"],
        summary["offer_to_trade_seconds"]["p50"],  # type: ignore[index]
    )
    return 0
