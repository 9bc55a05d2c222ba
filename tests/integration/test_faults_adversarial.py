"""Adversarial solvers declared as `solver` faults (rendered into their configs as
`behaviour_schedule`), next to an honest solver, all run long: none of their
solutions is ever the candidate an interval is finalized from, and the run
finalizes exactly what the fault-free market does (market.replay, which a
fault-free lockstep run equals: tests/integration/test_run_local.py)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from agents.common.adversaries import MISBEHAVIOURS
from agents.solver.behaviour import BEHAVIOURS
from orchestrator.render import dev_address
from orchestrator.run import RunOptions, run
from tests.conftest import require
from tests.integration.test_faults_local import (
    FIRST_SOLVER_ACCOUNT,
    finalized_wh,
    replay_wh,
    rows,
    smoke_spec,
)


def test_infeasible_and_inferior_solvers_never_win_and_change_nothing(tmp_path: Path) -> None:
    require({"infeasible", "inferior"} <= set(BEHAVIOURS), "adversarial solver behaviours")
    spec = smoke_spec(
        tmp_path,
        [
            {"name": "honest", "engine": "highs"},
            {"name": "liar", "engine": "highs"},
            {"name": "cheapskate", "engine": "highs"},
        ],
        [
            {
                "at_interval": 48,
                "target": "liar",
                "action": "solver",
                "behaviour": "infeasible",
                "options": {"kind": "any"},
            },
            {
                "at_interval": 48,
                "target": "cheapskate",
                "action": "solver",
                "behaviour": "inferior",
            },
        ],
    )
    result = run(RunOptions(spec=spec, out=tmp_path / "results"))
    assert result.exit_code == 0, result.outcome.message
    assert result.summary["faults"]["crashed"] == []
    # the totals (and every interval) are the fault-free market's
    assert finalized_wh(result.bundle) == replay_wh(spec)
    # every interval was finalized from an honest candidate
    events = result.bundle / "events"
    submitter = {
        r["candidate_id"]: r["submitter"].lower()
        for r in rows(events / "solutions.csv")
        if r["result"] == "accepted"
    }
    honest, liar, cheapskate = (dev_address(FIRST_SOLVER_ACCOUNT + i).lower() for i in range(3))
    finalized_from = {
        submitter[r["candidate_id"]]
        for r in rows(events / "finalizations.csv")
        if int(r["trades"]) > 0
    }
    assert finalized_from == {honest}
    # the infeasible ones were all refused by the contract
    assert liar not in submitter.values()
    # and the bundle's fault log has what the adversaries did, as they report it
    logged = [
        json.loads(line) for line in (result.bundle / "faults.jsonl").read_text().splitlines()
    ]
    configured = {(r["agent"], r["behaviour"]) for r in logged if r["source"] == "config"}
    assert configured == {("liar", "infeasible"), ("cheapskate", "inferior")}
    submits = [r for r in logged if r["source"] == "agent" and r.get("action") == "submit"]
    liar_submits = [r for r in submits if r["agent"] == "liar"]
    assert liar_submits and all(r["result"].startswith("reverted") for r in liar_submits)
    assert len({r["detail"].split(":")[0] for r in liar_submits}) > 1  # "any": several kinds
    assert any(r["agent"] == "cheapskate" for r in submits)
    assert result.summary["solutions"]["rejected"] >= len(liar_submits)
    assert cheapskate not in finalized_from


def test_a_prosumer_beyond_its_assets_is_refused_and_the_others_trade_as_without_it(
    tmp_path: Path,
) -> None:
    require("beyond_assets" in MISBEHAVIOURS, "prosumer misbehaviours")
    spec = smoke_spec(
        tmp_path,
        [{"name": "solver-1", "engine": "highs"}],
        [
            {
                "at_interval": 48,
                "action": "prosumer",
                "prosumer": 104,
                "misbehaviour": "beyond_assets",
            }
        ],
    )
    result = run(RunOptions(spec=spec, out=tmp_path / "results"))
    assert result.exit_code == 0, result.outcome.message
    logged = [
        json.loads(line) for line in (result.bundle / "faults.jsonl").read_text().splitlines()
    ]
    posts = [r for r in logged if r["source"] == "agent" and r.get("action") == "post_offer"]
    assert posts and {r.get("prosumer") for r in posts} == {104}
    assert all(r["result"].startswith("reverted") for r in posts), posts
    # the others trade exactly as in a market without prosumer 104
    without = tmp_path / "without-104.yaml"
    data = yaml.safe_load(spec.read_text())
    data["microgrid"]["dataset"]["prosumers"] = [101, 103, 701, 702, 703]
    data["faults"] = []
    without.write_text(yaml.safe_dump(data))
    assert finalized_wh(result.bundle) == replay_wh(without)
