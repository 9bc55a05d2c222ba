"""A run's faults as a listener of the run's events (orchestrator.hooks);
nothing is attached when the spec has no `faults:`.

- `tier_ready`: once the clock is ready, the injector connects and holds the
  clock at every interval with a step (before the market starts);
- the watch loop's wait: during it the injector follows the clock and
  applies the steps that are due;
- exempt units: those a fault killed (the run does not count them as crashed);
- `market_finished` and `stopping`: resume, heal, unshape (`restore`);
- `summarizing`: writes faults.jsonl, adds summary.json's `faults` block.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.backends.base import Backend, Placement
from orchestrator.faults.injector import Injector
from orchestrator.faults.results import fault_summary, write_fault_log
from orchestrator.faults.timeline import FaultPlan
from orchestrator.hooks import Events
from orchestrator.plan import AgentPlan, Plan


class RunFaults:
    def __init__(
        self,
        faults: FaultPlan | None,
        backend: Backend,
        plan: Plan,
        bundle: Path,
        say: Callable[[str], None],
    ) -> None:
        self.faults = faults
        self.backend = backend
        self.plan = plan
        self.bundle = bundle
        self.say = say
        self.injector: Injector | None = None
        if faults is not None:
            backend.enable_faults(faults.netem_units)

    def attach(self, events: Events) -> None:
        if self.faults is None:
            return
        events.tier_ready.add_listener(self.after_tier, name="faults")
        events.own_wait(self.wait)
        events.add_exempt(lambda: self.down)
        events.market_finished.add_listener(self.restore, name="faults restore")
        events.stopping.add_listener(lambda _outcome: self.restore(), name="faults restore")
        events.summarizing.add_listener(self.add_summary, name="faults summary")

    def after_tier(self, tier: Sequence[AgentPlan], placement: Placement) -> None:
        if self.faults is None or self.injector is not None:
            return
        if any(a.role == "clock" for a in tier):
            self.injector = Injector(self.faults, self.plan, self.backend, placement, self.say)
            self.injector.start()

    def wait(self, seconds: float) -> None:
        if self.injector is None:
            time.sleep(seconds)
        else:
            self.injector.poll(seconds)

    @property
    def down(self) -> set[str]:
        return set(self.injector.down) if self.injector is not None else set()

    def restore(self) -> None:
        if self.injector is not None:
            self.injector.restore()

    def add_summary(self, extra: dict[str, Any], exit_codes: Mapping[str, int | None]) -> None:
        if (block := self.summary(exit_codes)) is not None:
            extra["faults"] = block

    def summary(self, exit_codes: Mapping[str, int | None]) -> dict[str, Any] | None:
        """None without faults; crashed = exited non-zero on its own (not killed by
        a fault and left down, not stopped at teardown)."""
        if self.faults is None:
            return None
        injector = self.injector
        records = injector.records if injector is not None else []
        if injector is not None:
            unheard = injector.unheard()
            records = [*records, *unheard]
            for record in unheard:
                self.say(f"fault: {record['action']} {record['target']}: {record['error']}")
            injector.close()
        down = self.down
        rows = write_fault_log(self.bundle, records, self.faults.configured)
        crashed = [n for n, code in exit_codes.items() if code not in (0, None) and n not in down]
        return fault_summary(rows, down, crashed)
