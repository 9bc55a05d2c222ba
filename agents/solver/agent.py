"""The solver agent (paper section 5.2.2): solve the extended problem, submit if better.

One `Solver.step(free_from)`:
1. read the OfferPosted / TradeFinalized events of the blocks since the last read into
   the `OrderBook` (incremental, by block range);
2. build the extended problem exactly as `market.replay` does (book.extended_problem:
   original offer energy, finalized trades fixed, free from `free_from`) and solve it
   with `market.solve(problem, engine, last_interval=last)`;
3. ask the behaviour (a strategy; "honest": submit iff the integer objective beats the
   candidate's remaining objective read from the contract) and submit.

When: lockstep, on each `solve(t)` from the clock, with free_from = t + T_clear, then
PUSH `solved`; wallclock, every period_seconds on its own timer, with free_from = the
contract's nextFinalize (the first interval still open), reporting nothing. Either way
`done` from the clock (or SIGTERM) ends the agent with exit code 0.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

from agents.common import metrics
from agents.common.actionlog import ActionLog
from agents.common.config import SolverConfig
from agents.common.errors import AgentError, ConfigError
from agents.common.protocol import Done, Solve, Solved
from agents.common.shutdown import Shutdown
from agents.common.transport import Reporter, Subscriber
from agents.solver.behaviour import Active, Behaviour, Decision, Honest, Schedule
from agents.solver.book import OrderBook
from agents.solver.chainview import SolverChain
from agents.solver.trim import max_trades, trim
from market.solve import ENGINES, TIE_BREAKS, SolveResult, solve
from market.tiebreak import DEFAULT_TIE_BREAK
from market.types import Feeder, Problem, Solution

log = logging.getLogger("agents.solver")

RECV_SECONDS = 0.2


@dataclass(frozen=True)
class StepOutcome:
    """What one step did. `result`: accepted | rejected | skipped | closed | scheduled
    (a late submission, made later by `Solver.flush`); `results`: one per submission."""

    free_from: int
    objective: int
    candidate: int
    result: str
    offers: int
    solve_seconds: float
    results: tuple[str, ...] = ()

    @property
    def submitted(self) -> bool:
        return self.result in ("accepted", "rejected")


@dataclass(frozen=True)
class Pending:
    """A late submission waiting for `due` (time.monotonic())."""

    due: float
    decided: float  # time.time() of the decision
    interval: int | None
    free_from: int
    candidate: int
    behaviour: str
    decision: Decision


class Solver:
    """The solver's state (order book, feeders) and its one step. No timers, no sockets.

    `behaviour` is one strategy for every interval or a `Schedule` (per clock interval).
    Adversarial decisions are recorded in `actions` (behaviour.jsonl) and never stop the
    solver: a rejected or failed submission is logged, counted and the loop carries on.
    Late decisions are queued in `pending` and submitted by `flush` when due.
    """

    def __init__(
        self,
        chain: SolverChain,
        engine: str,
        behaviour: Behaviour | Schedule,
        last_interval: int,
        shutdown: Shutdown | None = None,
        actions: ActionLog | None = None,
        tie_break: str = DEFAULT_TIE_BREAK,
        min_improvement: int = 1,
    ) -> None:
        if engine not in ENGINES:
            raise ConfigError(f"engine: unknown engine {engine!r} (known: {', '.join(ENGINES)})")
        if tie_break not in TIE_BREAKS:
            raise ConfigError(
                f"market.tie_break: unknown policy {tie_break!r} (known: {', '.join(TIE_BREAKS)})"
            )
        self.chain = chain
        self.engine = engine
        self.tie_break = tie_break
        self.min_improvement = min_improvement  # the market's min_improvement_wh
        self.schedule = behaviour if isinstance(behaviour, Schedule) else Schedule.fixed(behaviour)
        self.last_interval = last_interval
        self.shutdown = shutdown
        self.actions = actions or ActionLog(None, "solver")
        self.book = OrderBook()
        self.feeders: tuple[Feeder, ...] = chain.feeders()
        self.pending: list[Pending] = []
        self._active: str | None = None

    @property
    def behaviour(self) -> Behaviour:
        """The default behaviour (outside every scheduled span)."""
        return self.schedule.default.behaviour

    def refresh(self) -> tuple[int, int]:
        """Read events up to the chain head; (new offers, new finalized trades)."""
        head = self.chain.block_number()
        if head < self.book.next_block:
            return 0, 0
        offers, trades = self.chain.read_events(self.book.next_block, head)
        self.book.next_block = head + 1
        return self.book.add_offers(offers), self.book.add_finalized(trades)

    def _switch(self, active: Active, interval: int | None) -> None:
        """Record a change of behaviour (the first step counts if it is not honest)."""
        if active.label == self._active or (self._active is None and active.label == "honest"):
            self._active = active.label
            return
        span = "default" if active.span is None else f"behaviour_schedule.{active.span}"
        self.actions.write(
            interval,
            active.behaviour.name,
            "switch",
            f"{self._active} -> {active.label} ({span})",
            "switched",
        )
        log.info("interval %s: behaviour %s (%s)", interval, active.label, span)
        self._active = active.label

    def step(self, free_from: int, interval: int | None = None) -> StepOutcome:
        """Solve free from `free_from` and act on the decision of the behaviour in effect
        at clock interval `interval` (None: the default behaviour)."""
        self.refresh()
        if free_from > self.last_interval:
            return StepOutcome(free_from, 0, 0, "closed", len(self.book.offers), 0.0)
        active = self.schedule.at(interval)
        self._switch(active, interval)
        problem = self.book.problem(self.feeders, free_from)
        started = time.perf_counter()
        result = solve(
            problem, self.engine, last_interval=self.last_interval, tie_break=self.tie_break
        )
        # what one submission can carry (unchanged below the limit, as in market.replay)
        result = replace(result, solution=trim(problem, result.solution, max_trades()))
        seconds = time.perf_counter() - started
        objective = result.solution.objective
        metrics.SOLVER_SOLVE_SECONDS.observe(seconds)
        metrics.SOLVER_OBJECTIVE_WH.set(objective)
        candidate = self.chain.candidate_remaining()
        decision = self._decide(active, problem, result, candidate)
        offers = len(problem.offers)
        name = active.behaviour.name
        if decision.solution is None:
            metrics.SOLUTIONS_TOTAL.labels(result="skipped", reason="").inc()
            log.debug("interval %d: skip (%s)", free_from, decision.reason)
            if decision.adversarial:
                self.actions.write(interval, name, "submit", decision.reason, "skipped")
            return StepOutcome(free_from, objective, candidate, "skipped", offers, seconds)
        if decision.delay_seconds > 0:
            due = time.monotonic() + decision.delay_seconds
            self.pending.append(
                Pending(due, time.time(), interval, free_from, candidate, name, decision)
            )
            metrics.SOLUTIONS_TOTAL.labels(result="scheduled", reason="").inc()
            log.info("free from %d: submission in %.1f s", free_from, decision.delay_seconds)
            return StepOutcome(free_from, objective, candidate, "scheduled", offers, seconds)
        results = self._submit_all(decision, name, interval, free_from, candidate)
        return StepOutcome(free_from, objective, candidate, results[0], offers, seconds, results)

    def _decide(
        self, active: Active, problem: Problem, result: SolveResult, candidate: int
    ) -> Decision:
        """The behaviour's decision; an adversarial behaviour that fails to build its
        solution skips the round (logged) instead of stopping the solver."""
        if isinstance(active.behaviour, Honest):
            return active.behaviour.decide(problem, result, candidate, self.min_improvement)
        try:
            return active.behaviour.decide(problem, result, candidate, self.min_improvement)
        except Exception as exc:  # a bug in an adversary must not stall the clock
            log.exception("behaviour %s failed", active.label)
            return Decision(None, f"{active.label} failed: {exc!r}", adversarial=True)

    def _submit_all(
        self,
        decision: Decision,
        behaviour: str,
        interval: int | None,
        free_from: int,
        candidate: int,
        **extra: object,
    ) -> tuple[str, ...]:
        results = []
        for n, solution in enumerate(decision.solutions):
            if not decision.adversarial:
                results.append(self._submit(solution, free_from, candidate))
                continue
            metrics.ADVERSARIAL_ACTIONS_TOTAL.labels(behaviour=behaviour).inc()
            try:
                outcome, revert = self._submit_one(solution, free_from, candidate)
                shown = "accepted" if outcome == "accepted" else f"reverted: {revert}"
            except AgentError as exc:  # the node refused it: carry on
                log.warning("free from %d: %s submission failed: %s", free_from, behaviour, exc)
                outcome, shown = "failed", f"failed: {exc}"
            detail = (
                decision.reason if n == 0 else f"submission {n + 1} of {len(decision.solutions)}"
            )
            self.actions.write(
                interval,
                behaviour,
                "submit",
                detail,
                shown,
                expected=decision.expect,
                objective=solution.objective,
                candidate=candidate,
                trades=len(solution.trades),
                free_from=free_from,
                **extra,
            )
            results.append(outcome)
        return tuple(results)

    def _submit(self, solution: Solution, free_from: int, candidate: int) -> str:
        return self._submit_one(solution, free_from, candidate)[0]

    def _submit_one(self, solution: Solution, free_from: int, candidate: int) -> tuple[str, str]:
        """Submit; ("accepted" | "rejected", the revert's error name or "")."""
        submission = self.chain.submit(solution)
        metrics.record_transaction("submitSolution", submission.receipt)
        if submission.accepted:
            metrics.SOLUTIONS_TOTAL.labels(result="accepted", reason="").inc()
            log.info(
                "free from %d: submitted %d Wh (%d trades, candidate had %d Wh), gas %d",
                free_from,
                solution.objective,
                len(solution.trades),
                candidate,
                submission.gas_used,
            )
            return "accepted", ""
        name = submission.revert.name if submission.revert is not None else "Unknown"
        metrics.SOLUTIONS_TOTAL.labels(result="rejected", reason=name).inc()
        log.warning(
            "free from %d: solution rejected: %s", free_from, submission.revert or "reverted"
        )
        return "rejected", name

    # --- late submissions --------------------------------------------------------------
    def next_due(self) -> float | None:
        """Seconds until the next late submission is due (None: nothing pending)."""
        if not self.pending:
            return None
        return max(0.0, min(p.due for p in self.pending) - time.monotonic())

    def flush(self) -> int:
        """Make every late submission that is due; returns how many were made."""
        now = time.monotonic()
        due = [p for p in self.pending if p.due <= now]
        self.pending = [p for p in self.pending if p.due > now]
        for p in due:
            self._submit_all(
                p.decision,
                p.behaviour,
                p.interval,
                p.free_from,
                p.candidate,
                delay_seconds=p.decision.delay_seconds,
                decided_at=round(p.decided, 3),
            )
        return len(due)

    def drop_pending(self, why: str) -> int:
        """Forget late submissions (the market is done); each is recorded as dropped."""
        for p in self.pending:
            self.actions.write(
                p.interval,
                p.behaviour,
                "submit",
                p.decision.reason,
                f"dropped: {why}",
                delay_seconds=p.decision.delay_seconds,
            )
        dropped, self.pending = len(self.pending), []
        return dropped


def run_lockstep(solver: Solver, config: SolverConfig, shutdown: Shutdown) -> int:
    """Answer every `solve(t)` with a step and a `solved` report; stop at `done`.

    Late submissions: the `solved` report goes out as soon as the solve is done, BEFORE
    the delayed submission (the clock moves on, as the deadline passes for a real late
    solver; reporting after it would only slow the clock down and change nothing). The
    submission follows when due while this loop keeps serving messages; what is still
    pending at `done` is dropped (recorded in behaviour.jsonl).
    """
    sub = Subscriber(config.clock_pub_endpoint)
    reporter = Reporter(config.clock_pull_endpoint)
    answered: dict[int, Solved] = {}
    metrics.mark_ready()
    try:
        while not shutdown:
            solver.flush()
            due = solver.next_due()
            msg = sub.recv(RECV_SECONDS if due is None else min(RECV_SECONDS, due))
            if isinstance(msg, Done):
                solver.drop_pending("the market is done")
                return 0
            if not isinstance(msg, Solve):
                continue
            report = answered.get(msg.interval)
            if report is None:  # the clock republishes while it waits: solve once
                free_from = msg.interval + config.market.t_clear
                on_chain = solver.chain.next_finalize()
                if on_chain != free_from:
                    log.warning("solve(%d): contract finalizes %d next", msg.interval, on_chain)
                outcome = solver.step(free_from, msg.interval)
                report = Solved(msg.interval, config.name, outcome.submitted, outcome.objective)
                answered[msg.interval] = report
            reporter.send(report)
        solver.drop_pending(f"stopped by {shutdown.signal_name or 'request'}")
        return 0
    finally:
        sub.close()
        reporter.close()


def run_wallclock(solver: Solver, config: SolverConfig, shutdown: Shutdown) -> int:
    """Step every period_seconds (free from the contract's nextFinalize, behaviour of the
    clock interval running now); make late submissions when due; stop at `done`."""
    sub = Subscriber(config.clock_pub_endpoint) if config.clock_pub_endpoint else None
    period = config.period_seconds
    market = config.market
    metrics.mark_ready()
    next_run = time.monotonic()
    try:
        while not shutdown:
            now = time.monotonic()
            if now >= next_run:
                try:
                    free_from = solver.chain.next_finalize()
                    if free_from > solver.last_interval and sub is None:
                        solver.drop_pending("the market is closed")
                        return 0
                    if free_from <= solver.last_interval:
                        solver.step(free_from, market.interval_at(time.time()))
                except AgentError as exc:  # transient (node busy, race): retry next period
                    log.warning("solve failed, retrying next period: %s", exc)
                # fixed rate, but never a backlog of missed periods after a long solve
                next_run = max(next_run + period, time.monotonic())
            try:
                solver.flush()
            except AgentError as exc:
                log.warning("late submission failed: %s", exc)
            wait = max(0.0, min(RECV_SECONDS, next_run - time.monotonic()))
            due = solver.next_due()
            wait = wait if due is None else min(wait, due)
            if sub is None:
                shutdown.wait(wait)
            elif isinstance(sub.recv(wait), Done):
                solver.drop_pending("the market is done")
                return 0
        solver.drop_pending(f"stopped by {shutdown.signal_name or 'request'}")
        return 0
    finally:
        if sub is not None:
            sub.close()


def run(config: SolverConfig, shutdown: Shutdown) -> int:
    market = config.market
    chain = SolverChain.connect(
        config.rpc_url, config.contract_address, config.chain_id, config.private_key
    )
    try:
        schedule = Schedule(config.behaviour, config.behaviour_schedule)
        actions = ActionLog(config.out_dir, config.name)
        solver = Solver(
            chain,
            config.engine,
            schedule,
            market.last_interval,
            shutdown,
            actions,
            tie_break=market.tie_break,
            min_improvement=market.min_improvement_wh,
        )
        log.info(
            "solver %s: engine %s, tie-break %s, behaviour %s (%d scheduled spans), %s mode, "
            "%d feeders",
            config.name,
            config.engine,
            market.tie_break,
            config.behaviour,
            len(config.behaviour_schedule),
            market.clock,
            len(solver.feeders),
        )
        if market.clock == "lockstep":
            return run_lockstep(solver, config, shutdown)
        return run_wallclock(solver, config, shutdown)
    finally:
        chain.close()
