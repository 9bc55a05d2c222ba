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
from dataclasses import dataclass

from agents.common import metrics
from agents.common.config import SolverConfig
from agents.common.errors import AgentError, ConfigError
from agents.common.protocol import Done, Solve, Solved
from agents.common.shutdown import Shutdown
from agents.common.transport import Reporter, Subscriber
from agents.solver.behaviour import Behaviour, make_behaviour
from agents.solver.book import OrderBook
from agents.solver.chainview import SolverChain
from market.solve import ENGINES, solve
from market.types import Feeder

log = logging.getLogger("agents.solver")

RECV_SECONDS = 0.2


@dataclass(frozen=True)
class StepOutcome:
    """What one step did. `result`: accepted | rejected | skipped | closed."""

    free_from: int
    objective: int
    candidate: int
    result: str
    offers: int
    solve_seconds: float

    @property
    def submitted(self) -> bool:
        return self.result in ("accepted", "rejected")


class Solver:
    """The solver's state (order book, feeders) and its one step. No timers, no sockets."""

    def __init__(
        self,
        chain: SolverChain,
        engine: str,
        behaviour: Behaviour,
        last_interval: int,
        shutdown: Shutdown | None = None,
    ) -> None:
        if engine not in ENGINES:
            raise ConfigError(f"engine: unknown engine {engine!r} (known: {', '.join(ENGINES)})")
        self.chain = chain
        self.engine = engine
        self.behaviour = behaviour
        self.last_interval = last_interval
        self.shutdown = shutdown
        self.book = OrderBook()
        self.feeders: tuple[Feeder, ...] = chain.feeders()

    def refresh(self) -> tuple[int, int]:
        """Read events up to the chain head; (new offers, new finalized trades)."""
        head = self.chain.block_number()
        if head < self.book.next_block:
            return 0, 0
        offers, trades = self.chain.read_events(self.book.next_block, head)
        self.book.next_block = head + 1
        return self.book.add_offers(offers), self.book.add_finalized(trades)

    def step(self, free_from: int) -> StepOutcome:
        self.refresh()
        if free_from > self.last_interval:
            return StepOutcome(free_from, 0, 0, "closed", len(self.book.offers), 0.0)
        problem = self.book.problem(self.feeders, free_from)
        started = time.perf_counter()
        result = solve(problem, self.engine, last_interval=self.last_interval)
        seconds = time.perf_counter() - started
        objective = result.solution.objective
        metrics.SOLVER_SOLVE_SECONDS.observe(seconds)
        metrics.SOLVER_OBJECTIVE_WH.set(objective)
        candidate = self.chain.candidate_remaining()
        decision = self.behaviour.decide(problem, result, candidate)
        offers = len(problem.offers)
        if decision.solution is None:
            metrics.SOLUTIONS_TOTAL.labels(result="skipped").inc()
            log.debug("interval %d: skip (%s)", free_from, decision.reason)
            return StepOutcome(free_from, objective, candidate, "skipped", offers, seconds)
        if decision.delay_seconds > 0 and self.shutdown is not None:
            self.shutdown.wait(decision.delay_seconds)
        submission = self.chain.submit(decision.solution)
        metrics.record_transaction("submitSolution", submission.receipt)
        outcome = "accepted" if submission.accepted else "rejected"
        metrics.SOLUTIONS_TOTAL.labels(result=outcome).inc()
        if submission.accepted:
            log.info(
                "free from %d: submitted %d Wh (%d trades, candidate had %d Wh), gas %d",
                free_from,
                decision.solution.objective,
                len(decision.solution.trades),
                candidate,
                submission.gas_used,
            )
        else:
            reason = submission.revert or "reverted"
            log.warning("free from %d: solution rejected: %s", free_from, reason)
        return StepOutcome(free_from, objective, candidate, outcome, offers, seconds)


def run_lockstep(solver: Solver, config: SolverConfig, shutdown: Shutdown) -> int:
    """Answer every `solve(t)` with a step and a `solved` report; stop at `done`."""
    sub = Subscriber(config.clock_pub_endpoint)
    reporter = Reporter(config.clock_pull_endpoint)
    answered: dict[int, Solved] = {}
    metrics.mark_ready()
    try:
        while not shutdown:
            msg = sub.recv(RECV_SECONDS)
            if isinstance(msg, Done):
                return 0
            if not isinstance(msg, Solve):
                continue
            report = answered.get(msg.interval)
            if report is None:  # the clock republishes while it waits: solve once
                free_from = msg.interval + config.market.t_clear
                on_chain = solver.chain.next_finalize()
                if on_chain != free_from:
                    log.warning("solve(%d): contract finalizes %d next", msg.interval, on_chain)
                outcome = solver.step(free_from)
                report = Solved(msg.interval, config.name, outcome.submitted, outcome.objective)
                answered[msg.interval] = report
            reporter.send(report)
        return 0
    finally:
        sub.close()
        reporter.close()


def run_wallclock(solver: Solver, config: SolverConfig, shutdown: Shutdown) -> int:
    """Step every period_seconds (free from the contract's nextFinalize); stop at `done`."""
    sub = Subscriber(config.clock_pub_endpoint) if config.clock_pub_endpoint else None
    period = config.period_seconds
    metrics.mark_ready()
    next_run = time.monotonic()
    try:
        while not shutdown:
            now = time.monotonic()
            if now >= next_run:
                try:
                    free_from = solver.chain.next_finalize()
                    if free_from > solver.last_interval and sub is None:
                        return 0
                    if free_from <= solver.last_interval:
                        solver.step(free_from)
                except AgentError as exc:  # transient (node busy, race): retry next period
                    log.warning("solve failed, retrying next period: %s", exc)
                # fixed rate, but never a backlog of missed periods after a long solve
                next_run = max(next_run + period, time.monotonic())
            wait = max(0.0, min(RECV_SECONDS, next_run - time.monotonic()))
            if sub is None:
                shutdown.wait(wait)
            elif isinstance(sub.recv(wait), Done):
                return 0
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
        solver = Solver(
            chain, config.engine, make_behaviour(config.behaviour), market.last_interval, shutdown
        )
        log.info(
            "solver %s: engine %s, behaviour %s, %s mode, %d feeders",
            config.name,
            config.engine,
            config.behaviour,
            market.clock,
            len(solver.feeders),
        )
        if market.clock == "lockstep":
            return run_lockstep(solver, config, shutdown)
        return run_wallclock(solver, config, shutdown)
    finally:
        chain.close()
