"""Pieces of the run lifecycle that do not depend on a spec: outcomes, their
exit codes and errors, signal handling, readiness probing, log tails, the
run's own log file."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from orchestrator.backends.base import Backend
from orchestrator.errors import TestbedError
from orchestrator.placement import AgentPlacement
from orchestrator.progress import scrape

READY_POLL_SECONDS = 0.2
READY_SCRAPE_PARALLELISM = 32  # agents' /metrics scraped at once while waiting for ready
# At most this many readiness scrapes a second over all pending agents: an agent
# serves /metrics while it is still importing and connecting, each scrape costs it
# ~1.5 ms of CPU, and 310 hosts polled every 0.2 s took CPU from their own start-up.
READY_SCRAPES_PER_SECOND = 100.0
LOG_TAIL_LINES = 12


EXIT_DEGRADED = 5  # the run ended, but offers were dropped: its numbers are incomplete


@dataclass(frozen=True)
class Outcome:
    """How a run ended: status ok | degraded | agent_failed | not_ready | interrupted |
    error (`degraded`: it ran to the end, but hosts dropped offers; see `degraded`).
    `signal`: the signal that ended it (also when it came after the last interval
    was finalized and the outcome is ok: a campaign stops on it all the same)."""

    status: str
    exit_code: int
    message: str
    signal: str | None = None


class AgentFailed(TestbedError):
    """An agent (or the chain) crashed, or quit before the run finished."""

    exit_code = 3

    def __init__(self, name: str, code: int | None, tail: str = "", why: str | None = None) -> None:
        self.name = name
        self.code = code
        reason = why or (
            f"killed by signal {-code}" if code is not None and code < 0 else f"exited with {code}"
        )
        message = f"{name}: {reason}"
        if tail:
            message += f"\n--- last lines of {name}'s log ---\n{tail}"
        super().__init__(message)


class NotReady(TestbedError):
    """Agents did not report ready in time (one line per agent, with why)."""

    exit_code = 4


class Interrupted(BaseException):
    """A termination signal other than SIGINT (which is KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(self.name)


def outcome_of(exc: BaseException) -> Outcome:
    """The outcome of a run that `exc` ended; exit codes as in orchestrator.run
    (a signal: 128 + its number)."""
    if isinstance(exc, KeyboardInterrupt):
        return Outcome("interrupted", 128 + signal.SIGINT, "SIGINT", "SIGINT")
    if isinstance(exc, Interrupted):
        return Outcome("interrupted", 128 + exc.signum, exc.name, exc.name)
    kinds: tuple[tuple[type[TestbedError], str], ...] = (
        (AgentFailed, "agent_failed"),
        (NotReady, "not_ready"),
        (TestbedError, "error"),
    )
    for kind, status in kinds:
        if isinstance(exc, kind):
            return Outcome(status, exc.exit_code or TestbedError.exit_code, str(exc))
    return Outcome("error", TestbedError.exit_code, f"internal error: {exc!r}")


def settled(outcome: Outcome, events: Path, last_interval: int) -> Outcome:
    """An interrupt that came after the recorder saw the last interval finalized
    (the agents were finishing, or waiting for their final scrape) does not spoil
    the run: its outcome is ok, and the message says what happened."""
    if outcome.status != "interrupted" or not finalized_through(events, last_interval):
        return outcome
    message = f"last interval finalized (then {outcome.message} while the agents finished)"
    return Outcome("ok", 0, message, outcome.signal)


def degraded(outcome: Outcome, dropped: str, faults_scheduled: bool) -> Outcome:
    """A run that ended ok although hosts dropped offers (`dropped`: what was lost,
    by host and reason; empty: nothing) traded on a market other than the spec's:
    `degraded`, exit EXIT_DEGRADED. With scheduled faults, losses are what the
    experiment measures: still ok, and the message says what was lost."""
    if outcome.status != "ok" or not dropped:
        return outcome
    if faults_scheduled:
        message = f"{outcome.message}; {dropped} (during scheduled faults)"
        return dataclasses.replace(outcome, message=message)
    message = f"{outcome.message}, but {dropped}: the run's numbers are incomplete"
    return dataclasses.replace(outcome, status="degraded", exit_code=EXIT_DEGRADED, message=message)


def finalized_through(events: Path, last_interval: int) -> bool:
    """Whether the recorder's finalizations.csv holds interval `last_interval`."""
    try:
        with open(events / "finalizations.csv", newline="") as f:
            return any(_int(r.get("interval")) == last_interval for r in csv.DictReader(f))
    except OSError:
        return False


def _int(cell: str | None) -> int | None:
    try:
        return int(cell) if cell else None
    except ValueError:
        return None


def file_logger(path: Path, run_id: str) -> logging.Logger:
    """The run's orchestrator.log (not propagated to the CLI's handlers)."""
    logger = logging.getLogger(f"testbed.run.{run_id}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s orchestrator: %(message)s"))
    logger.addHandler(handler)
    return logger


def close_logger(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 16_384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Interrupted in the main thread (SIGINT already
    raises KeyboardInterrupt), so the run's `finally` tears everything down."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """A Ctrl-C (or SIGTERM, SIGHUP) during the block takes effect at its end:
    starting a process and recording it must not be split by an interrupt, or
    the teardown would not know the process it has to stop."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    arrived: list[int] = []
    old = {s: signal.signal(s, lambda signum, _frame: arrived.append(signum)) for s in sigs}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if arrived:  # as the handler the block deferred would have
        signum = signal.Signals(arrived[0])
        handler = old[signum]
        if callable(handler):
            handler(signum, None)
        elif handler == signal.SIG_DFL:
            raise Interrupted(signum)


@contextlib.contextmanager
def interrupts_ignored() -> Iterator[None]:
    """During teardown a second Ctrl-C must not leave processes behind: the
    teardown is bounded (SIGTERM, then SIGKILL after a timeout) and finishes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.signal(s, signal.SIG_IGN) for s in sigs}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def wait_ready(
    backend: Backend,
    agents: Mapping[str, AgentPlacement],
    timeout: float,
    on_poll: Callable[[int], object] | None = None,
) -> None:
    """Until every agent's /metrics shows `testbed_agent_ready 1`. An agent that
    exits meanwhile raises AgentFailed; `timeout` seconds in which no agent
    became ready raise NotReady naming each agent that is not ready, why, and
    the end of its log (a tier of hundreds of hosts on a few cores comes up
    slowly but steadily: it is given the time as long as it moves). Every poll
    scrapes the pending agents at once (READY_SCRAPE_PARALLELISM): one after the
    other, hundreds of endpoints not answering yet would each cost a scrape
    timeout, and a poll round minutes; rounds are spaced so that the pending
    agents are scraped at most READY_SCRAPES_PER_SECOND times a second in all.
    `on_poll(n)` after every poll: n of the agents are ready."""
    pending = dict(agents)
    why: dict[str, str] = {}
    started = time.monotonic()
    deadline = started + timeout
    with ThreadPoolExecutor(READY_SCRAPE_PARALLELISM, thread_name_prefix="ready") as pool:
        while pending:
            status = backend.status()
            for name, where in pending.items():
                st = status.get(name)
                if st is not None and st.state == "exited":
                    raise AgentFailed(name, st.returncode, log_tail(where.log_file), st.reason)
            names = list(pending)
            urls = [pending[n].metrics_url for n in names]
            for name, url, metrics in zip(names, urls, pool.map(_scrape, urls), strict=True):
                if metrics is None:
                    why[name] = f"metrics endpoint {url} not answering"
                elif metrics.get("testbed_agent_ready") == 1.0:
                    del pending[name]
                    deadline = time.monotonic() + timeout  # it moves: more time
                else:
                    why[name] = "testbed_agent_ready is 0 (not connected yet)"
            if on_poll is not None:
                on_poll(len(agents) - len(pending))
            if not pending:
                return
            if time.monotonic() > deadline:
                raise NotReady(_not_ready(pending, why, timeout, len(agents), started))
            time.sleep(max(READY_POLL_SECONDS, len(pending) / READY_SCRAPES_PER_SECOND))


def _scrape(url: str) -> dict[str, float] | None:
    return scrape(url)  # looked up at each call (tests replace it)


def _not_ready(
    pending: Mapping[str, AgentPlacement],
    why: Mapping[str, str],
    timeout: float,
    total: int,
    started: float,
) -> str:
    head = f"agents not ready after {timeout:g} s:"
    if len(pending) < total:
        elapsed = time.monotonic() - started
        head = (
            f"agents not ready after {timeout:g} s without progress "
            f"({total - len(pending)} of {total} ready in {elapsed:.0f} s):"
        )
    lines = [head]
    for name, where in pending.items():
        tail = log_tail(where.log_file, 3)
        lines.append(f"  {name}: {why.get(name, 'no answer')}")
        lines += [f"    | {line}" for line in tail.splitlines()]
    return "\n".join(lines)
