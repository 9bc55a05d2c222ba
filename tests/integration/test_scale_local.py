"""10x the paper on one machine (issue 13, "Today at 10x"): the paper-c microgrid
scaled by 10 (1,020 prosumers, 110 feeders) runs a short lockstep window on the
local backend with real anvil, DSO, prosumer hosts and solver, and finalizes
exactly what `market.replay` finalizes, trade for trade. Thousands of asset and
offer transactions reach the node at once: this is the pacing in
agents.common.rpc.send_and_wait under load. Timings are in bench/scale.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.run import RunOptions, run
from tests.conftest import REPO, require_tool
from tests.integration.test_run_local import finalized_by_content, replayed

PAPER_C = REPO / "topologies" / "paper-c.yaml"
FIRST, LAST = 44, 45
OVERRIDES = [
    "market.clock=lockstep",
    "chain.block_time_seconds=0",
    "microgrid.dataset.scale=10",
    f"market.first_interval={FIRST}",
    f"market.last_interval={LAST}",
    # a shorter window than paper-c's L = 5 keeps the first tick's burst (and the
    # test) short; the pacing is exercised all the same (~2,000 transactions at once)
    "market.prediction_window=3",
    "deployment.prosumers_per_host=128",
]


@pytest.fixture(autouse=True)
def _anvil(state_dir: Path) -> None:
    require_tool("anvil")


def test_ten_times_the_paper_lockstep_equals_replay(tmp_path: Path) -> None:
    result = run(RunOptions(spec=PAPER_C, overrides=OVERRIDES, out=tmp_path / "results"))
    assert result.outcome.status == "ok", result.outcome.message
    per_interval, expected = replayed(PAPER_C, OVERRIDES, clip=True)
    assert sum(per_interval.values()) > 0
    assert result.summary["total_energy_traded_wh"] == sum(per_interval.values())
    assert result.summary["per_interval_kwh"] == {
        str(t): wh / 1000 for t, wh in sorted(per_interval.items())
    }
    assert finalized_by_content(result.bundle / "events", LAST) == expected
    assert result.summary["offers"] > 1000  # really 10x: a thousand prosumers posted
