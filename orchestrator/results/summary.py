"""summary.json: the recorder's event CSVs summarised (whatever was recorded,
also for an interrupted or crashed run), with gas by function, the processes'
peak memory and the run's outcome, and the `grid` block: the AC power flow of
every interval's finalized trades and of the same interval without a local
market (orchestrator.grid.bundle, which also writes the bundle's grid/grid.csv).

The event statistics are `agents.recorder.records.summarize_events`, the very
function the recorder uses for its own recorder.json, so both always agree.

In a run, `ChainGas` (orchestrator.extensions) reads the gas from the chain
once the agents have stopped, while the chain still runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agents.recorder.records import summarize_events
from orchestrator.plan import AgentPlan, Plan


def build_summary(
    events: Path,
    *,
    intervals: Iterable[int],
    outcome: Mapping[str, Any],
    gas: Mapping[str, Any] | None = None,
    processes: Mapping[str, Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "status": outcome.get("status"),
        "exit_code": outcome.get("exit_code"),
    }
    summary.update(_complete_rows_only(events, list(intervals)))
    summary["gas"] = dict(gas or {})
    summary["outcome"] = dict(outcome)
    if processes:
        summary["processes"] = {k: dict(v) for k, v in processes.items()}
    if extra:
        summary.update(extra)
    if (events.parent / "spec.yaml").exists():  # a run's bundle: events/ is in it
        from orchestrator.grid.bundle import bundle_grid

        summary["grid"] = bundle_grid(events.parent)
    return summary


def _complete_rows_only(events: Path, intervals: list[int]) -> dict[str, Any]:
    """summarize_events, after dropping a half-written last line of any CSV
    (a recorder killed mid-row)."""
    for csv_file in events.glob("*.csv"):
        data = csv_file.read_bytes()
        if data and not data.endswith(b"\n"):
            csv_file.write_bytes(data[: data.rfind(b"\n") + 1])
    return summarize_events(events, intervals)


def run_summary(
    plan: Plan,
    events: Path,
    outcome: Mapping[str, Any],
    *,
    exit_codes: Mapping[str, int | None],
    peak_rss: Mapping[str, int],
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """A testbed run's summary.json: over the plan's intervals, with its processes;
    it names its run and spec first (the file stands on its own)."""
    m = plan.market
    summary = build_summary(
        events,
        intervals=range(m.first_interval, m.last_interval + 1),
        outcome=outcome,
        processes=process_table(plan.agents, exit_codes, peak_rss),
        extra=extra,
    )
    return {"run_id": plan.run_id, "spec": plan.spec_name, **summary}


def process_table(
    agents: Iterable[AgentPlan],
    exit_codes: Mapping[str, int | None],
    peak_rss: Mapping[str, int],
) -> dict[str, dict[str, Any]]:
    """summary.json `processes`: each agent's role, exit code and peak memory
    (also per prosumer for a prosumer host)."""
    processes: dict[str, dict[str, Any]] = {}
    for agent in agents:
        entry: dict[str, Any] = {"role": agent.role, "exit_code": exit_codes.get(agent.name)}
        if agent.name in peak_rss:
            entry["peak_rss_mb"] = round(peak_rss[agent.name] / 2**20, 1)
            if agent.prosumer_count:
                entry["prosumers"] = agent.prosumer_count
                entry["peak_rss_mb_per_prosumer"] = round(
                    peak_rss[agent.name] / 2**20 / agent.prosumer_count, 1
                )
        processes[agent.name] = entry
    return processes
