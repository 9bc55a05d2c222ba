"""Solver agent: solves the extended problem from chain events and submits better solutions.

- `agents.solver.book`: `OrderBook`, `extended_problem` (replay-identical construction);
- `agents.solver.behaviour`: behaviour strategies (honest, and the adversarial infeasible,
  inferior, late, flood), `make_behaviour`, `Schedule` (behaviour_schedule per interval);
- `agents.solver.adversary`: infeasible / inferior / flood solutions built from a problem;
- `agents.solver.onchain`: which revert the contract's verification will report;
- `agents.solver.chainview`: `SolverChain` (contract reads, events, submitSolution);
- `agents.solver.agent`: `Solver.step`, the lockstep / wallclock loops, `run`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agents.common.config import SolverConfig
    from agents.common.shutdown import Shutdown


def run(config: SolverConfig, shutdown: Shutdown) -> int:
    """Entry point for `python -m agents solver` (the LP stack is imported lazily)."""
    from agents.solver.agent import run as run_agent

    return run_agent(config, shutdown)
