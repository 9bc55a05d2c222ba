"""A run whose prosumer hosts lose offers to a DSO that answers too late is not
"ok" (local backend, real agents, anvil, Prometheus).

The real DSO is paused (SIGSTOP, by this test's extension, not a scheduled fault)
from the moment every agent is ready until a host has given up on its withdraw
request (the hosts' DSO timeout is shortened through
$TESTBED_DSO_TIMEOUT_SECONDS: 3 tries of 2 s); then it goes on. The hosts drop
that tick's offers and the market runs to its last interval. The run must say
so: status `degraded`, exit 5, a message naming the hosts and counts, the counts
in summary.json (by host and reason) and in the report, and what was posted
plus what was dropped is every offer of the scenario.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from orchestrator.extensions import RunContext
from orchestrator.hooks import Events
from orchestrator.lifecycle import EXIT_DEGRADED
from orchestrator.results.dropped import DROPPED_FILE
from orchestrator.run import RunOptions, run
from orchestrator.scenario import build_scenario
from orchestrator.spec import load_spec
from tests.conftest import REPO, require_tool

SMOKE = REPO / "topologies" / "smoke.yaml"


@pytest.fixture(autouse=True)
def _anvil(state_dir: Path) -> None:
    require_tool("anvil")


class SlowDso:
    """Pauses the DSO when the market starts, resumes it once a host dropped offers."""

    def __init__(self) -> None:
        self.context: RunContext | None = None
        self.paused = self.resumed = False

    def __call__(self, context: RunContext, events: Events) -> None:
        self.context = context
        events.all_ready.add_listener(self.pause)
        events.tick.add_listener(self.tick)

    def pause(self) -> None:
        assert self.context is not None
        self.context.backend.pause("dso")
        self.paused = True

    def tick(self, _status: Mapping[str, Any]) -> None:
        assert self.context is not None
        if self.paused and not self.resumed and self.dropped_files():
            self.context.backend.resume("dso")
            self.resumed = True

    def dropped_files(self) -> list[Path]:
        assert self.context is not None
        return sorted((self.context.bundle / "agents").glob(f"*/{DROPPED_FILE}"))


def test_offers_lost_to_a_slow_dso_make_the_run_degraded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESTBED_DSO_TIMEOUT_SECONDS", "2")
    slow = SlowDso()
    result = run(RunOptions(spec=SMOKE, out=tmp_path / "results", extensions=(slow,)))
    assert slow.resumed, "no host dropped offers while the DSO was paused"
    assert result.outcome.status == "degraded", result.outcome.message
    assert result.exit_code == EXIT_DEGRADED == 5
    dropped = result.summary["dropped_offers"]
    assert dropped["total"] > 0 and set(dropped["by_reason"]) == {"dsoUnreachable"}
    hosts = {f.parent.name for f in slow.dropped_files()}
    assert set(dropped["by_host"]) == hosts
    message = result.outcome.message
    assert message.startswith("last interval finalized, but ")
    assert f"{dropped['total']:,} offers dropped: " in message
    for host, counts in dropped["by_host"].items():
        assert f"{host} {counts['dsoUnreachable']:,} (DSO did not answer" in message
    # every offer of the scenario was either posted (on chain) or counted as dropped
    offers = len(build_scenario(load_spec(SMOKE, env={})).offers)
    assert result.summary["offers"] + dropped["total"] == offers
    assert result.summary["offers"] > 0  # the market went on after the DSO came back
    saved = json.loads((result.bundle / "summary.json").read_text())
    assert saved["status"] == "degraded" and saved["dropped_offers"] == dropped
    manifest = json.loads((result.bundle / "manifest.json").read_text())
    assert manifest["outcome"]["status"] == "degraded" and manifest["outcome"]["exit_code"] == 5
    report = (result.bundle / "report.md").read_text()
    assert "| Offers dropped (not posted) |" in report and "degraded (exit 5)" in report
