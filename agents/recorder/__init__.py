"""Recorder agent: rebuilds offers, solutions and finalized trades from chain events.

- `agents.recorder.stats`: pure latency/percentile maths (reused by the orchestrator);
- `agents.recorder.records`: CSV row types, `EventLog`, `summarize_events(dir)`;
- `agents.recorder.follower`: `ChainFollower` (blocks and events -> rows);
- `agents.recorder.agent`: the agent loop, `run(config, shutdown)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agents.common.config import AgentConfig
    from agents.common.shutdown import Shutdown


def run(config: AgentConfig, shutdown: Shutdown) -> int:
    """Entry point for `python -m agents recorder` (imported lazily: stats users stay light)."""
    from agents.recorder.agent import run as run_agent

    return run_agent(config, shutdown)
