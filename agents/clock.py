"""The clock agent: drives the market's intervals and calls finalize().

For each clock interval t = first - T_clear .. last - T_clear it publishes
`tick(t)`, `solve(t)` and, after finalize() at the end of t, `finalized(t + T_clear)`.

- lockstep: chain time is virtual. After `tick` it waits for `posted` from every
  prosumer host, after `solve` for `solved` from every solver, then jumps chain
  time to the end of t (anvil `evm_setNextBlockTimestamp`) and finalizes. A
  missing report fails the run after `lockstep_timeout_seconds` in which the
  chain made no new block either, naming who (while blocks come, the hosts and
  the DSO are still at work: at 10x the paper on a loaded machine the first
  tick's assets alone took over two minutes).
  Ticks are re-published every REPUBLISH_SECONDS while waiting, because PUB/SUB
  drops messages sent before a subscriber's connection is up; agents ignore
  repeats.
- wallclock: chain time is real time; tick at the start of t (re-published
  during t for late subscribers), solve half-way, finalize at the end, without
  waiting for anyone.

After the last interval: wait (bounded) for `settled` from every prosumer host
(they deposit their unspent assets), then publish `done` and exit 0.

Fault injection (orchestrator/faults/) talks to the clock's PULL endpoint too:
`expect(peer, present)` removes a prosumer host or solver that a fault took down
from (or returns it to) the peers waited for; `hold(t)` makes a lockstep clock
stop before tick(t) until `release(t)` (re-publishing the last `finalized`
meanwhile), so that a fault takes effect exactly at the start of interval t.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from agents.chain.client import MarketClient
from agents.common import metrics
from agents.common.config import ClockConfig
from agents.common.errors import AgentError, LockstepTimeout
from agents.common.protocol import (
    Done,
    Expect,
    Finalized,
    Hold,
    Message,
    Posted,
    Release,
    Settled,
    Solve,
    Solved,
    Tick,
)
from agents.common.shutdown import Shutdown
from agents.common.transport import Collector, Publisher
from agents.miner import Miner, start_if_automining

log = logging.getLogger("agents.clock")

REPUBLISH_SECONDS = 1.0
POLL_SECONDS = 0.2
SETTLE_TIMEOUT_SECONDS = 60.0
DONE_REPEATS = 3
# wallclock: how long finalize() is retried after an interval's end before the clock
# gives up - one interval, at least FINALIZE_MIN_GRACE_SECONDS. A loaded node's chain
# time can lag ours (IntervalNotEnded), and a solution mined just before finalize
# changes the candidate it must name (CandidateMismatch); both pass with a retry.
FINALIZE_MIN_GRACE_SECONDS = 30.0
FINALIZE_RETRY_SECONDS = 0.5


class Reports:
    """Which expected peers reported what, per (message type, interval). Pure."""

    def __init__(self, hosts: Iterable[str], solvers: Iterable[str]) -> None:
        self.all_hosts = frozenset(hosts)
        self.all_solvers = frozenset(solvers)
        self.hosts = self.all_hosts
        self.solvers = self.all_solvers
        self._seen: dict[tuple[str, int], set[str]] = {}
        self.offers_posted: dict[int, int] = {}

    def expect(self, peer: str, present: bool) -> bool:
        """Wait for `peer`'s reports again (present) or no longer; False if unknown."""
        for group in ("hosts", "solvers"):
            members: frozenset[str] = getattr(self, group)
            if peer in getattr(self, f"all_{group}"):
                setattr(self, group, members | {peer} if present else members - {peer})
                return True
        return False

    def add(self, msg: Message) -> None:
        if isinstance(msg, Posted) and msg.host in self.hosts:
            seen = self._seen.setdefault(("posted", msg.interval), set())
            if msg.host not in seen:
                seen.add(msg.host)
                self.offers_posted[msg.interval] = (
                    self.offers_posted.get(msg.interval, 0) + msg.offers
                )
        elif isinstance(msg, Solved) and msg.solver in self.solvers:
            self._seen.setdefault(("solved", msg.interval), set()).add(msg.solver)
        elif isinstance(msg, Settled) and msg.host in self.hosts:
            self._seen.setdefault(("settled", 0), set()).add(msg.host)
        else:
            log.warning("ignoring report %s from an unexpected sender", msg)

    def missing(self, kind: str, interval: int = 0) -> list[str]:
        expected = self.solvers if kind == "solved" else self.hosts
        return sorted(expected - self._seen.get((kind, interval), set()))


class Clock:
    def __init__(
        self,
        config: ClockConfig,
        chain: MarketClient,
        publisher: Publisher,
        collector: Collector,
        shutdown: Shutdown,
    ) -> None:
        self.config = config
        self.market = config.market
        self.chain = chain
        self.pub = publisher
        self.pull = collector
        self.shutdown = shutdown
        self.reports = Reports(config.prosumer_hosts, config.solvers)
        self.last_finalized = self.market.first_interval - 1
        self.holds: set[int] = set()
        self.released: set[int] = set()

    # --- helpers ---------------------------------------------------------------
    def _drain(self, timeout: float) -> None:
        msg = self.pull.recv(timeout)
        while msg is not None:
            if isinstance(msg, Expect):
                known = self.reports.expect(msg.peer, msg.present)
                log.info("expect %s: %s%s", msg.peer, msg.present, "" if known else " (unknown)")
            elif isinstance(msg, Hold):
                self.holds.add(msg.interval)
            elif isinstance(msg, Release):
                self.released.add(msg.interval)
            else:
                self.reports.add(msg)
            msg = self.pull.recv(0)

    def _hold(self, t: int, timeout: float) -> bool:
        """Before interval t: wait for release(t) if it is held. False on shutdown."""
        self._drain(0)
        if t not in self.holds:
            return True
        log.info("interval %d held for fault injection", t)
        deadline = time.monotonic() + timeout
        next_publish = time.monotonic()
        while t not in self.released:
            if self.shutdown:
                return False
            now = time.monotonic()
            if now > deadline:
                raise LockstepTimeout(f"interval {t}: held, no release within {timeout:.0f} s")
            if now >= next_publish:  # tells the injector (a late subscriber) where we are
                self.pub.send(Finalized(self.last_finalized))
                next_publish = now + REPUBLISH_SECONDS
            self._drain(POLL_SECONDS)
        return True

    def _wait_for(self, kind: str, interval: int, republish: Message, timeout: float) -> bool:
        """Collect reports until nobody is missing; re-publish `republish` meanwhile.

        Returns False if shutdown was requested; raises LockstepTimeout.
        """
        deadline = time.monotonic() + timeout
        next_publish = time.monotonic() + REPUBLISH_SECONDS
        head = self._head()
        while self.reports.missing(kind, interval):
            if self.shutdown:
                return False
            now = time.monotonic()
            if now > deadline:
                if (moved := self._head()) > head:  # still at work: another `timeout`
                    head, deadline = moved, now + timeout
                    continue
                who = ", ".join(self.reports.missing(kind, interval))
                raise LockstepTimeout(
                    f"interval {interval}: no {kind!r} report from {who} within {timeout:.0f} s"
                    " (and no new block)"
                )
            if now >= next_publish:
                self.pub.send(republish)
                next_publish = now + REPUBLISH_SECONDS
            self._drain(POLL_SECONDS)
        return True

    def _head(self) -> int:
        """The chain's block number (-1 when the node does not answer)."""
        try:
            return self.chain.block_number()
        except AgentError as exc:
            log.warning("reading the block number failed: %s", exc)
            return -1

    def _finalize(self, t: int, set_time: bool) -> None:
        end = self.market.interval_start(t + 1)
        if set_time:
            result = self.chain.finalize(timestamp=end)
        else:  # wallclock: the node's clock may lag ours by a moment
            grace = max(FINALIZE_MIN_GRACE_SECONDS, float(self.market.interval_seconds))
            deadline = time.monotonic() + grace
            while True:
                try:
                    result = self.chain.finalize(timestamp=None)
                    break
                except AgentError as exc:
                    if time.monotonic() >= deadline:
                        raise
                    log.warning("finalize at the end of %d failed (%s); retrying", t, exc)
                    if self.shutdown.wait(FINALIZE_RETRY_SECONDS):
                        return
        self.last_finalized = t + self.market.t_clear
        metrics.ENERGY_FINALIZED_WH_TOTAL.inc(result.energy_wh)
        expected = self.market.interval_at(result.block_time) - 1 + self.market.t_clear
        metrics.INTERVAL_LAG.set(max(0, expected - self.last_finalized))
        self.pub.send(Finalized(self.last_finalized))
        log.info(
            "finalized interval %d: %d trades, %d Wh (gas %d)",
            self.last_finalized,
            result.trades,
            result.energy_wh,
            result.gas_used,
        )

    # --- modes ---------------------------------------------------------------
    def lockstep_interval(self, t: int) -> bool:
        timeout = self.config.lockstep_timeout_seconds
        if not self._hold(t, timeout):
            return False
        self.pub.send(Tick(t))
        if not self._wait_for("posted", t, Tick(t), timeout):
            return False
        self.pub.send(Solve(t))
        if not self._wait_for("solved", t, Solve(t), timeout):
            return False
        self._finalize(t, set_time=True)
        return True

    def wallclock_interval(self, t: int) -> bool:
        start = self.market.interval_start(t)
        end = self.market.interval_start(t + 1)
        steps: list[tuple[float, Callable[[], None]]] = [
            (start, lambda: self.pub.send(Tick(t))),
            ((start + end) / 2, lambda: self.pub.send(Solve(t))),
            (end, lambda: self._finalize(t, set_time=False)),
        ]
        next_publish = time.monotonic() + REPUBLISH_SECONDS
        for at, action in steps:
            while (delay := at - time.time()) > 0:
                if self.shutdown:
                    return False
                if time.monotonic() >= next_publish and time.time() > start:
                    self.pub.send(Tick(t))  # for subscribers that joined late
                    next_publish = time.monotonic() + REPUBLISH_SECONDS
                self._drain(min(delay, POLL_SECONDS))
            action()
        return True

    def run(self) -> int:
        step = (
            self.lockstep_interval if self.market.clock == "lockstep" else self.wallclock_interval
        )
        for t in self.market.clock_intervals():
            metrics.CURRENT_INTERVAL.set(t)
            if not step(t):
                return 0
            self._drain(0)
            log.info("interval %d done (%d offers posted)", t, self.reports.offers_posted.get(t, 0))
        self._settle()
        for _ in range(DONE_REPEATS):
            self.pub.send(Done())
            if self.shutdown.wait(0.2):
                break
        return 0

    def _settle(self) -> None:
        deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
        next_publish = time.monotonic() + REPUBLISH_SECONDS
        while self.reports.missing("settled") and time.monotonic() < deadline:
            if self.shutdown:
                return
            if time.monotonic() >= next_publish:
                self.pub.send(Finalized(self.last_finalized))
                next_publish = time.monotonic() + REPUBLISH_SECONDS
            self._drain(POLL_SECONDS)
        if missing := self.reports.missing("settled"):
            log.warning("no 'settled' report from %s; ending anyway", ", ".join(missing))


def run(config: ClockConfig, shutdown: Shutdown) -> int:
    chain = MarketClient.connect(config, config.private_key)
    publisher = Publisher(config.clock_pub_endpoint)
    collector = Collector(config.clock_pull_endpoint)
    miner: Miner | None = None
    try:
        if config.market.clock == "lockstep":  # chain time is ours: blocks on demand
            miner = start_if_automining(config.rpc_url)
        metrics.mark_ready()
        log.info(
            "%s clock: intervals %d..%d, hosts %s, solvers %s",
            config.market.clock,
            config.market.first_clock_interval,
            config.market.last_clock_interval,
            list(config.prosumer_hosts),
            list(config.solvers),
        )
        return Clock(config, chain, publisher, collector, shutdown).run()
    finally:
        if miner is not None:
            miner.stop()
        publisher.close()
        collector.close()
        chain.close()
