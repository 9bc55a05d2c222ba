"""`testbed run`: one experiment, from spec to results bundle.

load spec -> resolve dataset -> plan -> bundle (spec.yaml, manifest.json) ->
backend.prepare -> chain -> deploy the market contract (DSO key) -> render configs ->
start agents tier by tier (recorder, dso, clock, solvers, prosumer hosts), each tier
ready before the next -> watch until the clock exits 0 (last interval finalized) ->
let the others finish -> teardown in reverse order -> gas from the chain ->
stop the chain -> summary.json, manifest outcome.

Whatever happens (Ctrl-C, SIGTERM, an agent crash, a readiness timeout, a bug), the
teardown runs: every process stops, the bundle keeps what was recorded, and the
outcome's exit code says what happened (EXIT_* below).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import yaml

from orchestrator.backends import create_backend
from orchestrator.backends.base import Backend, Placement, Unit, UnitStatus
from orchestrator.errors import TestbedError
from orchestrator.extensions import RUN_EXTENSIONS, Extension, RunContext
from orchestrator.faults.timeline import FaultPlan
from orchestrator.hooks import BringUp, Events
from orchestrator.lifecycle import EXIT_DEGRADED as EXIT_DEGRADED
from orchestrator.lifecycle import (
    AgentFailed,
    Interrupted,
    Outcome,
    close_logger,
    degraded,
    file_logger,
    finalized_through,
    interrupts_deferred,
    interrupts_ignored,
    log_tail,
    outcome_of,
    settled,
    signals_as_interrupts,
    wait_ready,
)
from orchestrator.plan import Plan
from orchestrator.planning import key_secret_fingerprint, plan_run, read_key_secret
from orchestrator.render import ChainInfo, redact_secrets, write_configs
from orchestrator.reports.report import write_report
from orchestrator.results.bundle import DEFAULT_RESULTS_DIR, Bundle, new_run_id
from orchestrator.results.dropped import describe, dropped_offers
from orchestrator.results.manifest import build_manifest, dataset_record
from orchestrator.results.summary import run_summary
from orchestrator.scenario import build_scenario
from orchestrator.spec import Spec, load_spec

EXIT_OK = 0
EXIT_ERROR = 1  # an error of the testbed itself (deploy failed, bug, ...)
EXIT_AGENT_FAILED = 3  # an agent (or the chain) crashed or quit before the end
EXIT_NOT_READY = 4  # an agent did not become ready in time
# EXIT_DEGRADED = 5 (orchestrator.lifecycle): it ran to the end, but hosts dropped offers
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C); SIGTERM gives 143 (lifecycle.outcome_of)

# Timing (module level so tests can shorten them).
READY_TIMEOUT_SECONDS = 120.0
WATCH_POLL_SECONDS = 0.5
FINISH_GRACE_SECONDS = 60.0  # after the clock's exit, for the others to finish themselves
EARLY_EXIT_GRACE_SECONDS = 10.0  # an agent exited 0 but the clock has not finished
WALLCLOCK_START_MARGIN_SECONDS = 10.0  # + 1 s per agent: the epoch lies after bring-up

log = logging.getLogger("testbed.run")

KEY_SECRET_ENV = "TESTBED_KEY_SECRET_FILE"  # the --key-secret-file of a run that names none


def lost_node(status: Mapping[str, UnitStatus], exempt: set[str]) -> AgentFailed | None:
    """A cluster node lost without a scheduled fault (its units exited with
    `lost_node`, none of them exempt): the failure naming it and its units."""
    lost: dict[str, list[str]] = {}
    for name, st in status.items():
        if st.state == "exited" and st.lost_node and name not in exempt:
            lost.setdefault(st.lost_node, []).append(name)
    if not lost:
        return None
    node = min(lost)
    units = sorted(lost[node])
    return AgentFailed(f"node {node}", None, why=f"lost (down or drained), with {', '.join(units)}")


@dataclass(frozen=True)
class RunOptions:
    spec: Path
    overrides: Sequence[str] = ()
    backend: str | None = None
    out: Path = DEFAULT_RESULTS_DIR
    progress: TextIO | None = None
    env: Mapping[str, str] | None = None
    ready_timeout: float | None = None
    argv: Sequence[str] = ()
    extensions: Sequence[Extension] = ()  # this run's own listeners (orchestrator.hooks)
    key_secret_file: Path | None = None  # None: $TESTBED_KEY_SECRET_FILE, else a random secret
    rerun_of: Mapping[str, str] | None = None  # `testbed rerun`: the bundle it repeats


@dataclass
class RunResult:
    bundle: Path
    run_id: str
    outcome: Outcome
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return self.outcome.exit_code


def load(options: RunOptions) -> Spec:
    overrides = list(options.overrides)
    if options.backend:
        overrides.append(f"deployment.backend={options.backend}")
    return load_spec(options.spec, overrides, env=options.env or os.environ)


def run(options: RunOptions) -> RunResult:
    """Everything that can be checked before anything starts raises (spec,
    dataset, plan errors); from then on the outcome is in the result."""
    spec = load(options)
    secret_file = options.key_secret_file or _env_path(options, KEY_SECRET_ENV)
    key_secret = read_key_secret(secret_file) if secret_file is not None else None
    scenario = build_scenario(spec)
    backend_name = spec.deployment.backend  # one of the registry's (the schema's enum)
    run_id = new_run_id()
    plan, faults = plan_run(scenario, backend_name, run_id, key_secret)
    backend = create_backend(backend_name, run_id, spec)  # ssh: preflight of every host
    bundle = Bundle.create(options.out, spec.name, run_id)
    bundle.write_spec(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    bundle.write_manifest(
        build_manifest(
            run_id=run_id,
            spec_name=spec.name,
            spec_file=spec.source,
            seed=spec.seed,
            backend=backend_name,
            argv=list(options.argv) or sys.argv,
            extra={
                "plan": {
                    "agents": {a.name: a.role for a in plan.agents},
                    "prosumer_hosts": len(plan.by_role("prosumer")),
                    "prosumers": plan.prosumer_count,
                    "offers": len(scenario.offers),
                },
                "started": time.time(),
                "dataset": dataset_record(spec.microgrid.dataset, scenario.dataset),
                "key_secret": {
                    "source": "file" if key_secret is not None else "random",
                    "fingerprint": key_secret_fingerprint(plan.key_secret),
                },
                **({"rerun_of": dict(options.rerun_of)} if options.rerun_of else {}),
            },
        )
    )
    return Run(spec, plan, bundle, backend, options, faults).execute()


def _env_path(options: RunOptions, name: str) -> Path | None:
    value = (options.env if options.env is not None else os.environ).get(name)
    return Path(value) if value else None


class Run:
    """One run's bring-up, watch and teardown (see the module docstring). Faults,
    Prometheus and the progress lines are listeners of `self.events`."""

    def __init__(
        self,
        spec: Spec,
        plan: Plan,
        bundle: Bundle,
        backend: Backend,
        options: RunOptions,
        faults: FaultPlan | None = None,
    ) -> None:
        self.spec = spec
        self.plan = plan
        self.bundle = bundle
        self.backend = backend
        self.options = options
        self.ready_timeout = options.ready_timeout or READY_TIMEOUT_SECONDS
        self.placement: Placement | None = None
        self.chain: ChainInfo | None = None
        self.started: list[str] = []
        self.peak_rss: dict[str, int] = {}
        self.exit_codes: dict[str, int | None] = {}
        self.timeline: dict[str, float] = {}
        self._finalized = False  # the recorder has finalized the last interval
        self.teardown_errors: list[str] = []
        self._t0 = time.monotonic()
        self._agents_t0 = self._t0  # when the first tier started (bring_up)
        self._log = file_logger(bundle.logs / "orchestrator.log", plan.run_id)
        backend.announce = self._announce
        self.events = Events(self._teardown_failed)
        self.faults_scheduled = faults is not None and bool(faults.steps)
        self._attach(faults)

    def _attach(self, faults: FaultPlan | None) -> None:
        """The built-in parts (faults, Prometheus, progress, ...), then the run's own."""
        context = RunContext(
            self.spec, self.plan, self.backend, self.bundle.path, self._announce,
            progress=self.options.progress, faults=faults,
        )  # fmt: skip
        for extension in (*RUN_EXTENSIONS, *self.options.extensions):
            extension(context, self.events)

    def mark(self, what: str) -> None:
        self.timeline[what] = round(time.monotonic() - self._t0, 3)
        self._log.info("%s (%.1f s)", what, self.timeline[what])

    def _announce(self, message: str) -> None:
        self._log.info("%s", message)
        if self.options.progress is not None:
            print(message, file=self.options.progress, flush=True)

    # -- the whole run -------------------------------------------------------------
    def execute(self) -> RunResult:
        outcome = Outcome("error", EXIT_ERROR, "run did not start")
        with signals_as_interrupts():
            try:
                self.bring_up()
                self.watch()
                outcome = self.finish()
            except (Exception, KeyboardInterrupt, Interrupted) as exc:
                if not isinstance(exc, TestbedError | KeyboardInterrupt | Interrupted):
                    self._log.exception("internal error")
                outcome = outcome_of(exc)
                # a Ctrl-C after the last interval was finalized: the run is complete
                outcome = settled(outcome, self.bundle.events, self.plan.market.last_interval)
            finally:
                with interrupts_ignored():
                    outcome, summary = self.teardown(outcome)
                    self._log.info("done: exit code %d", outcome.exit_code)
                    close_logger(self._log)
        return RunResult(self.bundle.path, self.plan.run_id, outcome, summary)

    # -- bring-up --------------------------------------------------------------------
    def bring_up(self) -> None:
        from orchestrator.chainsetup import anvil_argv, deploy, wait_for_chain

        placement = self.backend.prepare(self.plan, self.bundle.path)
        self.placement = placement
        self.events.started.fire(placement)
        self._bringing_up("chain")
        chain_cfg = self.spec.chain
        solvers = len(self.plan.by_role("solver"))
        argv = anvil_argv(
            port=placement.chain_port,
            chain_id=chain_cfg.chain_id,
            block_time=chain_cfg.block_time_seconds or None,
            accounts=max(chain_cfg.accounts or 0, 2 + solvers),
        )
        self._start(Unit("chain", "chain", tuple(argv), placement.chain_log))
        wait_for_chain(placement.rpc_url_local, self.ready_timeout, self._chain_alive)
        self.mark("chain ready")
        epoch = None
        if self.plan.market.clock == "wallclock":
            margin = WALLCLOCK_START_MARGIN_SECONDS + len(self.plan.agents)
            epoch = int(time.time() + margin)
        self._bringing_up("contract")
        self.chain = deploy(placement.rpc_url_local, self.plan, chain_cfg.chain_id, epoch)
        self.bundle.update_manifest(
            contract_address=self.chain.contract_address, epoch=self.chain.epoch
        )
        self.mark("contract deployed")
        self.events.contract_deployed.fire(self.chain.contract_address)
        write_configs(self.plan, placement, self.chain)
        tiers = self.plan.tiers()
        ready, self._agents_t0 = 0, time.monotonic()
        for i, tier in enumerate(tiers, 1):
            if tier is tiers[-1]:
                self.events.market_starting.fire()
            polled = partial(self._tier_polled, tier[0].role, ready, (i, len(tiers)))
            polled(0)
            for agent in tier:
                where = placement.agents[agent.name]
                command = ("python", "-m", "agents", agent.role, "--config", where.config_path)
                self._start(Unit(agent.name, agent.role, command, where.log_file))
            wait_ready(
                self.backend,
                {a.name: placement.agents[a.name] for a in tier},
                self.ready_timeout,
                on_poll=polled,
            )
            ready += len(tier)
            self.mark(f"ready: {', '.join(sorted({a.role for a in tier}))}")
            self.events.tier_ready.fire(tier, placement)
        self.mark("all agents ready")
        self.events.all_ready.fire()

    def _bringing_up(self, stage: str) -> None:
        self.events.bringing_up.fire(BringUp(stage, 0, len(self.plan.agents)))

    def _tier_polled(self, role: str, before: int, tier: tuple[int, int], ready: int) -> None:
        """`ready` agents of the tier of `role` are ready, `before` of the tiers before."""
        elapsed = time.monotonic() - self._agents_t0
        where = BringUp(role, before + ready, len(self.plan.agents), elapsed, *tier)
        self.events.bringing_up.fire(where)

    def _start(self, unit: Unit) -> None:
        with interrupts_deferred():  # a started unit is always one the teardown stops
            self.backend.start(unit)
            self.started.append(unit.name)

    def _chain_alive(self) -> bool:
        state = self.backend.status().get("chain")
        if state is not None and state.state == "exited":
            assert self.placement is not None
            raise AgentFailed("chain", state.returncode, log_tail(self.placement.chain_log))
        return True

    # -- watch ------------------------------------------------------------------------
    def watch(self) -> None:
        """Until the clock exits 0. Raises AgentFailed when something dies."""
        early_exit: dict[str, float] = {}
        while True:
            status = self._sample()
            exempt = self.events.exempt()  # Prometheus; agents a fault killed
            if lost := lost_node(status, exempt):
                raise lost
            clock = status["clock"]
            if clock.state == "exited":
                if clock.returncode == 0:
                    self.mark("clock finished")
                    return
                raise self._failed("clock", clock.returncode)
            for name, st in status.items():
                if st.state != "exited" or name == "clock" or name in exempt:
                    continue
                if st.returncode != 0 or name == "chain":
                    raise self._failed(name, st.returncode, st.reason)
                first = early_exit.setdefault(name, time.monotonic())
                if time.monotonic() - first > EARLY_EXIT_GRACE_SECONDS and not self._ended():
                    raise self._failed(name, 0, "exited before the last interval was finalized")
            self.events.tick.fire(status)
            self.events.wait(WATCH_POLL_SECONDS)  # faults: applies the steps that are due

    def _ended(self) -> bool:
        """The last interval is finalized: agents that exit 0 now have settled, and the
        clock waits (bounded) for the rest to settle too (at 10x on a saturated machine
        the last host may settle well after the first one left)."""
        if not self._finalized:
            self._finalized = finalized_through(self.bundle.events, self.plan.market.last_interval)
        return self._finalized

    def _sample(self) -> dict[str, UnitStatus]:
        status = self.backend.status()
        for name, st in status.items():
            if st.rss_bytes is not None:
                self.peak_rss[name] = max(self.peak_rss.get(name, 0), st.rss_bytes)
        return status

    def _failed(self, name: str, code: int | None, why: str | None = None) -> AgentFailed:
        assert self.placement is not None
        where = self.placement.agents.get(name)
        path = where.log_file if where is not None else self.placement.chain_log
        return AgentFailed(name, code, log_tail(path), why)

    def finish(self) -> Outcome:
        """The clock is done: give the others time to finish on their own."""
        deadline = time.monotonic() + FINISH_GRACE_SECONDS
        self.events.market_finished.fire()
        exempt = self.events.exempt()
        agents = [a.name for a in self.plan.agents if a.name not in exempt]
        while time.monotonic() < deadline:
            status = self._sample()
            if all(status[n].state == "exited" for n in agents):
                break
            self.events.tick.fire(status)
            time.sleep(WATCH_POLL_SECONDS / 2)
        status = self.backend.status()
        failed = [
            f"{n}: {status[n].reason}"
            if status[n].reason
            else f"{n} exited with {status[n].returncode}"
            for n in agents
            if status[n].state == "exited" and status[n].returncode != 0
        ]
        still = [n for n in agents if status[n].state == "running"]
        if still:
            self._log.warning("still running after the clock finished: %s", ", ".join(still))
        if failed:
            return Outcome("agent_failed", EXIT_AGENT_FAILED, "; ".join(failed))
        self.mark("agents finished")
        return Outcome("ok", EXIT_OK, "last interval finalized")

    # -- teardown ---------------------------------------------------------------------
    def teardown(self, outcome: Outcome) -> tuple[Outcome, dict[str, Any]]:
        """Every step runs whatever fails before (errors go to the manifest). The
        outcome returned is `degraded` when hosts dropped offers (lifecycle.degraded)."""
        self._log.info("teardown: %s (%s)", outcome.status, outcome.message)
        self.events.tear_down()
        self._attempt("stopping", lambda: self.events.stopping.fire(outcome))  # progress, faults
        for tier in reversed(self.plan.tiers()):
            names = [a.name for a in tier if a.name in self.started]
            if names:
                self._attempt(f"stop {', '.join(names)}", partial(self._stop, names))
        # the last finalizations, the metrics snapshot, the gas
        self._attempt("agents stopped", lambda: self.events.agents_stopped.fire(outcome))
        if "chain" in self.started:
            self._attempt("stop chain", lambda: self._stop(["chain"]))
        if self.placement is not None:  # the key secret leaves the bundle's configs
            where = self.placement
            self._attempt("redact secrets", lambda: redact_secrets(self.plan, where))
        self.mark("stopped")
        dropped: dict[str, Any] = {}
        self._attempt("dropped offers", lambda: dropped.update(dropped_offers(self.bundle.path)))
        outcome = degraded(outcome, describe(dropped), self.faults_scheduled)
        summary: dict[str, Any] = {}
        extra = {"dropped_offers": dropped} if dropped else {}
        self._attempt("summary", lambda: summary.update(self._summary(outcome, extra)))
        self._attempt("cleanup", self.backend.cleanup)  # before the manifest: its errors go there
        self._attempt("manifest", lambda: self._final_manifest(outcome))
        self._attempt("report", lambda: write_report(self.bundle.path))
        return outcome, summary

    def _attempt(self, what: str, fn: Callable[[], object]) -> None:
        began = time.monotonic()
        try:
            fn()
        except Exception as exc:  # teardown goes on, whatever fails
            self._teardown_failed(what, exc)
        self._log.info("teardown: %s took %.2f s", what, time.monotonic() - began)

    def _teardown_failed(self, what: str, exc: Exception) -> None:
        self._log.error("teardown step %s failed", what, exc_info=exc)
        self.teardown_errors.append(f"{what}: {exc!r}")

    def _stop(self, names: list[str]) -> None:
        if names:
            self._sample()
            self.exit_codes.update(self.backend.stop(names))

    def _summary(self, outcome: Outcome, more: Mapping[str, Any]) -> dict[str, Any]:
        extra: dict[str, Any] = {"wall_seconds": round(time.monotonic() - self._t0, 3), **more}
        self.events.summarizing.fire(extra, self.exit_codes)  # gas, faults
        summary = run_summary(
            self.plan,
            self.bundle.events,
            dataclasses.asdict(outcome),
            exit_codes=self.exit_codes,
            peak_rss=self.peak_rss,
            extra=extra,
        )
        self.bundle.write_summary(summary)
        return summary

    def _final_manifest(self, outcome: Outcome) -> None:
        self.bundle.update_manifest(
            outcome={
                **dataclasses.asdict(outcome),
                "wall_seconds": round(time.monotonic() - self._t0, 3),
                "finished": time.time(),
            },
            timeline=self.timeline,
            teardown_errors=self.teardown_errors,
        )
