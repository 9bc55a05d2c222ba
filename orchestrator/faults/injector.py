"""The fault injector: applies a FaultPlan's steps during a run's `watch`.

It follows the market through the clock's own broadcast (a SUB socket on the
clock's PUB endpoint: tick(t), finalized(i)) and talks to the clock's PULL
endpoint: before the market starts it sends hold(t) for every interval with a
step (lockstep), and when the clock has finished interval t - 1 it applies the
steps of t, tells the clock which prosumer hosts / solvers it can no longer
expect (or can expect again), then release(t). The fault thus takes effect
exactly at the start of interval t, before tick(t). A wallclock clock does not
hold: the steps of t are applied when tick(t) is seen. Steps `at_seconds` count
from the first tick seen.

Every step is recorded (planned and as it took effect: unix time, clock
interval, ok/error) in `records`; `down` is the set of units a fault killed,
which the run does not count as crashed.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from agents.common.protocol import Expect, Finalized, Hold, Release, Tick
from agents.common.transport import Reporter, Subscriber
from orchestrator.backends.base import Backend, Placement
from orchestrator.faults.timeline import PRESENCE, FaultPlan, Step
from orchestrator.plan import Plan
from orchestrator.spec.faults import NODE_ACTIONS

log = logging.getLogger("testbed.faults")

SETTLE_SECONDS = 0.05  # let queued control messages leave before release
VITAL = ("chain", "clock")  # a node fault that takes them ends the run (not exempt)


def orchestrator_endpoint(endpoint: str, clock_metrics_url: str) -> str:
    """The clock's `endpoint` (tcp://host:port, as agents see it) as the
    orchestrator reaches it: an IP address as it is (local: loopback; ssh: the
    bind address, where the clock listens while its metrics stay on loopback),
    a name (docker: the container's) at the host it scrapes the clock's metrics
    at (the published ports)."""
    named, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    try:
        ipaddress.ip_address(named)
        return endpoint
    except ValueError:
        host = urlsplit(clock_metrics_url).hostname or "127.0.0.1"
        return f"tcp://{host}:{port}"


class Injector:
    def __init__(
        self,
        faults: FaultPlan,
        plan: Plan,
        backend: Backend,
        placement: Placement,
        say: Callable[[str], None] = log.info,
    ) -> None:
        self.faults = faults
        self.backend = backend
        self.lockstep = plan.market.clock == "lockstep"
        self.t_clear = plan.market.t_clear
        self.watched = {a.name for a in plan.agents if a.role in ("prosumer", "solver")}
        self.say = say
        clock = placement.agents["clock"].metrics_url
        self.sub = Subscriber(orchestrator_endpoint(placement.clock_pub_endpoint, clock))
        self.control = Reporter(orchestrator_endpoint(placement.clock_pull_endpoint, clock))
        self.pending = faults.interval_steps
        self.pending_seconds = faults.seconds_steps
        self.current: int | None = None  # the clock interval the market is in (or about to)
        self.started: float | None = None  # unix time of the first tick seen
        self.down: set[str] = set()  # killed by a fault, not (yet) restarted
        self.paused: set[str] = set()
        self.cut: set[str] = set()
        self.shaped: set[str] = set()
        self.records: list[dict[str, Any]] = []
        self.closed = False

    def start(self) -> None:
        """Before the market starts: hold the clock at every interval with a step."""
        if self.lockstep:
            for t in self.faults.hold_intervals:
                self.control.send(Hold(t))

    # -- following the market --------------------------------------------------------
    def poll(self, timeout: float) -> None:
        """Receive the clock's messages for up to `timeout` s, applying what is due."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.sub.recv(max(0.0, min(0.1, deadline - time.monotonic())))
            if isinstance(msg, Tick):
                self._at(msg.interval, ticked=True)
            elif isinstance(msg, Finalized):
                self._at(msg.interval - self.t_clear + 1, ticked=False)
            self._apply_seconds()
            now = time.monotonic()
            if (now >= deadline and msg is None) or now >= deadline + 1.0:
                return

    def _at(self, t: int, ticked: bool) -> None:
        if ticked and self.started is None:
            self.started = time.time()
        if self.current is None or t > self.current:
            self.current = t
        due = [s for s in self.pending if s.at_interval is not None and s.at_interval <= t]
        if not due:
            return
        self.pending = [s for s in self.pending if s not in due]
        for step in due:
            self.apply(step)
        if self.lockstep:
            time.sleep(SETTLE_SECONDS)
            for s in {s.at_interval for s in due if s.at_interval is not None}:
                self.control.send(Release(s))

    def _apply_seconds(self) -> None:
        if self.started is None or not self.pending_seconds:
            return
        elapsed = time.time() - self.started
        due = [s for s in self.pending_seconds if (s.at_seconds or 0) <= elapsed]
        self.pending_seconds = [s for s in self.pending_seconds if s not in due]
        for step in due:
            self.apply(step)

    # -- applying ----------------------------------------------------------------------
    def apply(self, step: Step, why: str = "planned") -> None:
        if step.action in NODE_ACTIONS:
            self.apply_node(step)
            return
        for unit in step.units:
            record: dict[str, Any] = {
                **step.describe(),
                "unit": unit,
                "why": why,
                "time": time.time(),
                "clock_interval": self.current,
            }
            presence = PRESENCE.get(step.action)
            try:
                if presence is False and unit in self.watched:
                    self.control.send(Expect(unit, False))
                detail = self._do(step, unit)
                if detail:
                    record["detail"] = detail
                if presence is True and unit in self.watched:
                    self.control.send(Expect(unit, True))
                record["ok"] = True
            except Exception as exc:  # recorded; the run goes on
                record["ok"] = False
                record["error"] = f"{type(exc).__name__}: {exc}"
            state = self._record(record)
            self.say(f"fault: {step.action} {unit} at interval {self.current} ({state})")

    def apply_node(self, step: Step) -> None:
        """Drain or stop cluster node `step.target`: the units that ran on it are
        lost to the run as if killed (the clock stops expecting them), except
        the chain and the clock (the market cannot go on without them: their
        loss ends the run as a failure)."""
        record: dict[str, Any] = {
            **step.describe(),
            "node": step.target,
            "unit": None,
            "why": "planned",
            "time": time.time(),
            "clock_interval": self.current,
        }
        try:
            if step.action == "drain":
                lost = self.backend.drain_node(step.target)
            else:
                lost = self.backend.stop_node(step.target)
            record["lost"] = sorted(lost)
            for unit in sorted(set(lost) - set(VITAL)):
                self.down.add(unit)
                if unit in self.watched:
                    self.control.send(Expect(unit, False))
            record["ok"] = True
        except Exception as exc:  # recorded; the run goes on
            record["ok"] = False
            record["error"] = f"{type(exc).__name__}: {exc}"
        state = self._record(record)
        units = ", ".join(record.get("lost") or []) or "no units of the run"
        self.say(
            f"fault: {step.action} node {step.target} at interval {self.current} "
            f"(lost: {units}; {state})"
        )

    def _record(self, record: dict[str, Any]) -> str:
        """Keep an applied fault's record (with how long applying took); its state
        for the log line: "ok" or "failed: why"."""
        record["applied_seconds"] = round(time.time() - record["time"], 3)
        self.records.append(record)
        return "ok" if record["ok"] else f"failed: {record['error']}"

    def _do(self, step: Step, unit: str) -> str | None:
        """Apply `step` to `unit`; what the backend says about it (netem: how)."""
        b = self.backend
        action = step.action
        if action == "kill":
            self.down.add(unit)
            b.kill(unit)
        elif action == "restart":
            b.restart(unit)
            self.down.discard(unit)
            self.paused.discard(unit)
        elif action == "pause":
            b.pause(unit)
            self.paused.add(unit)
        elif action == "resume":
            b.resume(unit)
            self.paused.discard(unit)
        elif action == "partition":
            b.partition(unit, True)
            self.cut.add(unit)
        elif action == "heal":
            b.partition(unit, False)
            self.cut.discard(unit)
        elif action == "netem":
            n = step.netem
            if n is None:
                self.shaped.discard(unit)
                return b.netem(unit)
            self.shaped.add(unit)
            return b.netem(unit, n.latency_ms, n.jitter_ms, n.loss_percent)
        else:
            raise ValueError(f"unknown fault action {action!r}")
        return None

    def restore(self) -> None:
        """The market is over: resume, heal and unshape what faults left so, so
        that every agent can finish and be stopped normally."""
        for action, units in (("resume", self.paused), ("heal", self.cut), ("netem", self.shaped)):
            for unit in sorted(units):
                self.apply(Step(-1, action, unit, (unit,), span_end=True), why="end of run")

    def unheard(self) -> list[dict[str, Any]]:
        """Records of the steps never applied because the clock's broadcast never
        reached the orchestrator (no tick, no finalization seen): an unreachable
        clock must not look like a run without faults."""
        if self.current is not None or self.started is not None:
            return []
        why = f"not applied: nothing received from the clock at {self.sub.endpoint}"
        return [
            {**step.describe(), "unit": None, "why": "planned", "time": None, "ok": False}
            | {"clock_interval": None, "error": why}
            for step in [*self.pending, *self.pending_seconds]
        ]

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sub.close()
            self.control.close()
