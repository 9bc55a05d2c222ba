"""A run's faults, as `orchestrator.run.Run` sees them: one object with the few
hooks the run lifecycle calls (inert when the spec has no `faults:`).

- `after_tier(tier)`: once the clock is ready, the injector connects and holds
  the clock at every interval with a step (before the market starts);
- `wait(seconds)`: the watch loop's pause, during which due steps are applied;
- `down`: units a fault killed (the run does not count them as crashed);
- `restore()`: after the last interval (and at teardown): resume, heal, unshape;
- `summary(bundle, exit_codes)`: writes faults.jsonl, returns summary.json's block.
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
from orchestrator.plan import AgentPlan, Plan


class RunFaults:
    def __init__(self, faults: FaultPlan | None, backend: Backend) -> None:
        self.faults = faults
        self.backend = backend
        self.injector: Injector | None = None
        if faults is not None:
            backend.enable_faults(faults.netem_units)

    def after_tier(
        self,
        tier: Sequence[AgentPlan],
        plan: Plan,
        placement: Placement,
        say: Callable[[str], None],
    ) -> None:
        if self.faults is None or self.injector is not None:
            return
        if any(a.role == "clock" for a in tier):
            self.injector = Injector(self.faults, plan, self.backend, placement, say)
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

    def summary(self, bundle: Path, exit_codes: Mapping[str, int | None]) -> dict[str, Any] | None:
        """None without faults; crashed = exited non-zero on its own (not killed by
        a fault and left down, not stopped at teardown)."""
        if self.faults is None:
            return None
        injector = self.injector
        records = injector.records if injector is not None else []
        if injector is not None:
            injector.close()
        down = self.down
        rows = write_fault_log(bundle, records, self.faults.configured)
        crashed = [n for n, code in exit_codes.items() if code not in (0, None) and n not in down]
        return fault_summary(rows, down, crashed)
