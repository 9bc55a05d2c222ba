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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from market.types import Kind
from orchestrator.backends import BACKENDS, create_backend
from orchestrator.backends.base import Backend, Placement, Unit
from orchestrator.errors import TestbedError
from orchestrator.faults.session import RunFaults
from orchestrator.faults.timeline import FaultPlan, apply_to_plan, build_timeline
from orchestrator.hosts import expand_hosts
from orchestrator.lifecycle import (
    AgentFailed,
    Interrupted,
    NotReady,
    Outcome,
    interrupts_ignored,
    log_tail,
    signals_as_interrupts,
    wait_ready,
)
from orchestrator.observability.collect import RunMetrics, start_run_metrics
from orchestrator.plan import (
    MarketParams,
    Plan,
    PlanInput,
    ProsumerTrace,
    SolverParams,
    TraceOffer,
    build_plan,
)
from orchestrator.progress import Progress
from orchestrator.render import ChainInfo, write_configs
from orchestrator.reports.report import write_report
from orchestrator.results.bundle import DEFAULT_RESULTS_DIR, Bundle, new_run_id
from orchestrator.results.manifest import build_manifest
from orchestrator.results.summary import build_summary
from orchestrator.scenario import Scenario, build_scenario
from orchestrator.spec import Spec, load_spec

EXIT_OK = 0
EXIT_ERROR = 1  # an error of the testbed itself (deploy failed, bug, ...)
EXIT_AGENT_FAILED = 3  # an agent (or the chain) crashed or quit before the end
EXIT_NOT_READY = 4  # an agent did not become ready in time
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C); SIGTERM gives 143

# Timing (module level so tests can shorten them).
READY_TIMEOUT_SECONDS = 120.0
WATCH_POLL_SECONDS = 0.5
FINISH_GRACE_SECONDS = 60.0  # after the clock's exit, for the others to finish themselves
EARLY_EXIT_GRACE_SECONDS = 10.0  # an agent exited 0 but the clock has not finished
WALLCLOCK_START_MARGIN_SECONDS = 10.0  # + 1 s per agent: the epoch lies after bring-up

log = logging.getLogger("testbed.run")


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


@dataclass
class RunResult:
    bundle: Path
    run_id: str
    outcome: Outcome
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return self.outcome.exit_code


def plan_input(scenario: Scenario, backend: str) -> PlanInput:
    """The planner's inputs from a spec and its resolved dataset. Each prosumer
    gets exactly the offers `testbed replay` trades (same window, same prices)."""
    spec = scenario.spec
    m = spec.market
    traces = tuple(
        ProsumerTrace(
            id=p.id,
            feeder=p.feeder,
            offers=tuple(
                TraceOffer(o.start, o.end, o.energy if o.kind is Kind.SELL else -o.energy)
                for o in scenario.offers_of(p.id)
            ),
        )
        for p in scenario.dataset.prosumers
    )
    return PlanInput(
        spec_name=spec.name,
        seed=spec.seed,
        market=MarketParams(
            first_interval=m.first_interval,
            last_interval=m.last_interval,
            prediction_window=m.prediction_window,
            t_clear=m.t_clear,
            interval_minutes=m.interval_minutes,
            clock="wallclock" if m.clock == "wallclock" else "lockstep",
            simulated_interval_seconds=float(m.simulated_interval_seconds),
            solver_period_seconds=float(m.solver_period_seconds),
            min_offer_energy_wh=m.min_offer_energy_wh,
            max_open_offers=m.max_open_offers,
            settle_chunk=m.settle_chunk,
        ),
        feeders=scenario.feeders,
        prosumers=traces,
        solvers=tuple(SolverParams(s.name, s.engine, s.behaviour) for s in spec.solvers),
        backend=backend,
        prosumers_per_host=spec.deployment.prosumers_per_host,
        hosts=expand_hosts(spec.deployment.hosts),
        prices={"sell": spec.microgrid.prices.sell, "buy": spec.microgrid.prices.buy},
        block_time=spec.chain.block_time_seconds or None,
    )


def plan_run(scenario: Scenario, backend: str, run_id: str) -> tuple[Plan, FaultPlan | None]:
    """The run's plan, with the spec's `faults:` expanded and rendered into it."""
    plan = build_plan(plan_input(scenario, backend), run_id)
    spec = scenario.spec
    faults = build_timeline(spec.faults, plan) if spec.faults else None
    return (plan if faults is None else apply_to_plan(plan, faults)), faults


def load(options: RunOptions) -> Spec:
    overrides = list(options.overrides)
    if options.backend:
        overrides.append(f"deployment.backend={options.backend}")
    return load_spec(options.spec, overrides, env=options.env or os.environ)


def run(options: RunOptions) -> RunResult:
    """Everything that can be checked before anything starts raises (spec,
    dataset, plan errors); from then on the outcome is in the result."""
    spec = load(options)
    scenario = build_scenario(spec)
    backend_name = spec.deployment.backend
    if backend_name not in BACKENDS:
        raise TestbedError(
            f"deployment.backend: {backend_name!r} is not available yet "
            f"(available: {', '.join(BACKENDS)})"
        )
    run_id = new_run_id()
    plan, faults = plan_run(scenario, backend_name, run_id)
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
            },
        )
    )
    return Run(spec, plan, bundle, backend, options, faults).execute()


class Run:
    """One run's bring-up, watch and teardown (see the module docstring)."""

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
        self.progress: Progress | None = None
        self.timeline: dict[str, float] = {}
        self.teardown_errors: list[str] = []
        self.metrics: RunMetrics | None = None  # Prometheus (observability/collect.py)
        self._t0 = time.monotonic()
        self._log = _file_logger(bundle.logs / "orchestrator.log", plan.run_id)
        backend.announce = self._announce
        self.faults = RunFaults(faults, backend)  # orchestrator/faults/ (inert without)

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
            except KeyboardInterrupt:
                outcome = Outcome("interrupted", EXIT_INTERRUPTED, "interrupted (SIGINT)")
            except Interrupted as exc:
                outcome = Outcome("interrupted", 128 + exc.signum, f"interrupted ({exc.name})")
            except AgentFailed as exc:
                outcome = Outcome("agent_failed", EXIT_AGENT_FAILED, str(exc))
            except NotReady as exc:
                outcome = Outcome("not_ready", EXIT_NOT_READY, str(exc))
            except TestbedError as exc:
                outcome = Outcome("error", exc.exit_code or EXIT_ERROR, str(exc))
            except Exception as exc:
                self._log.exception("internal error")
                outcome = Outcome("error", EXIT_ERROR, f"internal error: {exc!r}")
            finally:
                with interrupts_ignored():
                    summary = self.teardown(outcome)
                    self._log.info("done: exit code %d", outcome.exit_code)
                    for handler in list(self._log.handlers):
                        handler.close()
                        self._log.removeHandler(handler)
        return RunResult(self.bundle.path, self.plan.run_id, outcome, summary)

    # -- bring-up --------------------------------------------------------------------
    def bring_up(self) -> None:
        from orchestrator.chainsetup import anvil_argv, deploy, wait_for_chain

        placement = self.backend.prepare(self.plan, self.bundle.path)
        self.placement = placement
        self.metrics = start_run_metrics(
            self.spec, self.plan, placement, self.backend, self.bundle.path, self._announce
        )
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
        self.chain = deploy(placement.rpc_url_local, self.plan, chain_cfg.chain_id, epoch)
        self.bundle.update_manifest(
            contract_address=self.chain.contract_address, epoch=self.chain.epoch
        )
        self.mark("contract deployed")
        write_configs(self.plan, placement, self.chain)
        tiers = self.plan.tiers()
        for tier in tiers:
            if self.metrics is not None and tier is tiers[-1]:
                self.metrics.wait_discovered()  # scraping before the market starts
            for agent in tier:
                where = placement.agents[agent.name]
                command = ("python", "-m", "agents", agent.role, "--config", where.config_path)
                self._start(Unit(agent.name, agent.role, command, where.log_file))
            wait_ready(
                self.backend,
                {a.name: placement.agents[a.name] for a in tier},
                self.ready_timeout,
            )
            self.mark(f"ready: {', '.join(sorted({a.role for a in tier}))}")
            self.faults.after_tier(tier, self.plan, placement, self._announce)
        self.mark("all agents ready")

    def _start(self, unit: Unit) -> None:
        self.backend.start(unit)
        self.started.append(unit.name)

    def _chain_alive(self) -> bool:
        state = self.backend.status().get("chain")
        if state is not None and state.state == "exited":
            raise AgentFailed("chain", state.returncode, log_tail(self.placement_chain_log()))
        return True

    def placement_chain_log(self) -> Path:
        assert self.placement is not None
        return self.placement.chain_log

    # -- watch ------------------------------------------------------------------------
    def watch(self) -> None:
        """Until the clock exits 0. Raises AgentFailed when something dies."""
        assert self.placement is not None
        stream = self.options.progress
        if stream is not None:
            self.progress = Progress(
                self.bundle.events,
                stream,
                clock_metrics_url=self.placement.agents["clock"].metrics_url,
                last_interval=self.plan.market.last_interval,
            )
        early_exit: dict[str, float] = {}
        while True:
            status = self._sample()
            clock = status["clock"]
            if clock.state == "exited":
                if clock.returncode == 0:
                    self.mark("clock finished")
                    return
                raise self._failed("clock", clock.returncode)
            for name, st in status.items():
                if st.state != "exited" or name == "clock" or name in self._auxiliary():
                    continue
                if name in self.faults.down:
                    continue  # killed by a fault: not a crash
                if st.returncode != 0 or name == "chain":
                    raise self._failed(name, st.returncode)
                first = early_exit.setdefault(name, time.monotonic())
                if time.monotonic() - first > EARLY_EXIT_GRACE_SECONDS:
                    raise self._failed(name, 0, "exited before the last interval was finalized")
            if self.progress is not None:
                self.progress.update()
            self.faults.wait(WATCH_POLL_SECONDS)  # applies the faults that are due

    def _auxiliary(self) -> set[str]:
        """Units whose exit does not end the run (Prometheus)."""
        return {self.metrics.unit} if self.metrics is not None else set()

    def _sample(self) -> dict[str, Any]:
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
        self.faults.restore()
        agents = [a.name for a in self.plan.agents if a.name not in self.faults.down]
        while time.monotonic() < deadline:
            status = self._sample()
            if all(status[n].state == "exited" for n in agents):
                break
            if self.progress is not None:
                self.progress.update()
            time.sleep(WATCH_POLL_SECONDS / 2)
        status = self.backend.status()
        failed = [
            f"{n} exited with {status[n].returncode}"
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
    def teardown(self, outcome: Outcome) -> dict[str, Any]:
        self._log.info("teardown: %s (%s)", outcome.status, outcome.message)
        self._attempt("progress", self._close_progress)
        self._attempt("faults restore", self.faults.restore)
        for tier in reversed(self.plan.tiers()):
            names = [a.name for a in tier if a.name in self.started]
            self._attempt(f"stop {', '.join(names)}", lambda n=names: self._stop(n))
        if self.metrics is not None:
            self._attempt("metrics snapshot", self.metrics.finish)
        gas: dict[str, Any] = {}
        if self.chain is not None and self.placement is not None and self._chain_running():
            from orchestrator.results.gas import gas_by_function

            rpc, address = self.placement.rpc_url_local, self.chain.contract_address
            self._attempt("gas", lambda: gas.update(gas_by_function(rpc, address)))
        if "chain" in self.started:
            self._attempt("stop chain", lambda: self._stop(["chain"]))
        self.mark("stopped")
        summary: dict[str, Any] = {}
        self._attempt("summary", lambda: summary.update(self._summary(outcome, gas)))
        self._attempt("cleanup", self.backend.cleanup)  # before the manifest: its errors go there
        self._attempt("manifest", lambda: self._final_manifest(outcome))
        self._attempt("report", lambda: write_report(self.bundle.path))
        return summary

    def _attempt(self, what: str, fn: Any) -> None:
        try:
            fn()
        except Exception as exc:  # teardown goes on, whatever fails
            self._log.exception("teardown step %s failed", what)
            self.teardown_errors.append(f"{what}: {exc!r}")

    def _close_progress(self) -> None:
        if self.progress is not None:
            self.progress.close()

    def _stop(self, names: list[str]) -> None:
        if names:
            self._sample()
            self.exit_codes.update(self.backend.stop(names))

    def _chain_running(self) -> bool:
        st = self.backend.status().get("chain")
        return st is not None and st.state == "running"

    def _summary(self, outcome: Outcome, gas: Mapping[str, Any]) -> dict[str, Any]:
        m = self.plan.market
        processes: dict[str, dict[str, Any]] = {}
        for agent in self.plan.agents:
            entry: dict[str, Any] = {
                "role": agent.role,
                "exit_code": self.exit_codes.get(agent.name),
            }
            if agent.name in self.peak_rss:
                entry["peak_rss_mb"] = round(self.peak_rss[agent.name] / 2**20, 1)
                if agent.prosumer_count:
                    entry["prosumers"] = agent.prosumer_count
                    entry["peak_rss_mb_per_prosumer"] = round(
                        self.peak_rss[agent.name] / 2**20 / agent.prosumer_count, 1
                    )
            processes[agent.name] = entry
        extra: dict[str, Any] = {"wall_seconds": round(time.monotonic() - self._t0, 3)}
        if (faults := self.faults.summary(self.bundle.path, self.exit_codes)) is not None:
            extra["faults"] = faults
        summary = build_summary(
            self.bundle.events,
            intervals=range(m.first_interval, m.last_interval + 1),
            outcome=dataclasses.asdict(outcome),
            gas=gas,
            processes=processes,
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


def _file_logger(path: Path, run_id: str) -> logging.Logger:
    logger = logging.getLogger(f"testbed.run.{run_id}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s orchestrator: %(message)s"))
    logger.addHandler(handler)
    return logger
