"""The compose project's deploy step (setup/deploy.py, rendered by `testbed render
--format compose`) run for real against anvil: it deploys with the same function as
`testbed run` (agents.chain.contract.deploy_for_run) and rewrites every agent config
with the agents' own config classes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agents.chain.contract import MarketContract
from agents.chain.node import Anvil
from agents.common.config import load_config
from orchestrator.backends.docker.compose import render_compose
from orchestrator.plan import build_plan
from orchestrator.scenario import build_scenario
from orchestrator.spec import load_spec
from tests.conftest import REPO, require_tool

IMAGES = {"agent": "testbed/agent:a", "chain": "testbed/chain:c", "prometheus": "testbed/p:p"}
DEPLOY_TIMEOUT_SECONDS = 120


def test_compose_deploy_step_deploys_and_points_every_config_at_the_contract(
    tmp_path: Path,
) -> None:
    spec = load_spec(REPO / "topologies" / "smoke.yaml", [])
    plan = build_plan(build_scenario(spec), "docker", "20260101T000000Z-cdep")
    out = tmp_path / "project"
    render_compose(plan, IMAGES, out=out)
    with Anvil(binary=require_tool("anvil")) as node:
        params = json.loads((out / "setup" / "deploy.json").read_text())
        # the container paths and the chain's service name, seen from this machine
        params |= {"rpc_url": node.url, "config_dir": str(out / "config")}
        (out / "setup" / "deploy.json").write_text(json.dumps(params))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            [sys.executable, str(out / "setup" / "deploy.py")],
            capture_output=True,
            text=True,
            env=env,
            timeout=DEPLOY_TIMEOUT_SECONDS,
        )
        assert done.returncode == 0, done.stderr
        configs = [load_config(p) for p in sorted((out / "config").glob("*.json"))]
        assert {c.name for c in configs} == {a.name for a in plan.agents}
        address = configs[0].contract_address
        market = configs[0].market
        assert all(c.contract_address == address and c.market == market for c in configs)
        assert market.epoch > 0 and market == plan.market.at_epoch(market.epoch)
        contract = MarketContract(node.web3(), address)
        on_chain = contract.params()
        assert (on_chain.first_interval, on_chain.last_interval, on_chain.t_clear) == (
            market.first_interval,
            market.last_interval,
            market.t_clear,
        )
        assert (on_chain.interval_seconds, on_chain.epoch) == (
            market.interval_seconds,
            market.epoch,
        )
        assert contract.feeders() == plan.feeders
        assert f"market contract at {address}" in done.stdout
