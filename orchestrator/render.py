"""Render one JSON config file per agent process (run-interfaces.md, "Config file").

`agent_config` is pure (plan + placement + chain facts -> dict); `write_configs`
writes them where the backend's placement says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_account import Account

from orchestrator.backends.base import Placement
from orchestrator.plan import AgentPlan, Plan

# anvil's default dev mnemonic: account i signs for the DSO, the clock, the solvers.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"


@cache
def dev_key(index: int) -> str:
    """Private key (0x-hex) of anvil dev account `index`."""
    Account.enable_unaudited_hdwallet_features()
    acct = Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return "0x" + bytes(acct.key).hex()


@cache
def dev_address(index: int) -> str:
    return str(Account.from_key(dev_key(index)).address)


@dataclass(frozen=True, slots=True)
class ChainInfo:
    """Facts known once the chain runs and the contract is deployed."""

    contract_address: str
    chain_id: int
    epoch: int  # chain timestamp at which clock interval first_interval - t_clear starts


def market_config(plan: Plan, chain: ChainInfo) -> dict[str, Any]:
    m = plan.market
    return {
        "first_interval": m.first_interval,
        "last_interval": m.last_interval,
        "prediction_window": m.prediction_window,
        "t_clear": m.t_clear,
        "interval_seconds": m.chain_interval_seconds,
        "epoch": chain.epoch,
        "clock": m.clock,
        "solver_period_seconds": m.solver_period_seconds,
        "tie_break": m.tie_break,
    }


def agent_config(
    plan: Plan, placement: Placement, chain: ChainInfo, agent: AgentPlan
) -> dict[str, Any]:
    where = placement.agents[agent.name]
    config: dict[str, Any] = {
        "run_id": plan.run_id,
        "role": agent.role,
        "name": agent.name,
        "rpc_url": placement.rpc_url,
        "contract_address": chain.contract_address,
        "chain_id": chain.chain_id,
        "dso_endpoint": placement.dso_endpoint,
        "clock_pub_endpoint": placement.clock_pub_endpoint,
        "clock_pull_endpoint": placement.clock_pull_endpoint,
        "metrics_host": where.metrics_host,
        "metrics_port": where.metrics_port,
        "out_dir": where.out_dir,
        "log_level": plan.log_level,
        "market": market_config(plan, chain),
    }
    if agent.account is not None:
        config["private_key"] = dev_key(agent.account)
    config.update(agent.settings)
    return config


def write_configs(plan: Plan, placement: Placement, chain: ChainInfo) -> dict[str, dict[str, Any]]:
    """Write every agent's config file; returns them by agent name."""
    configs: dict[str, dict[str, Any]] = {}
    for agent in plan.agents:
        config = agent_config(plan, placement, chain, agent)
        path = placement.agents[agent.name].config_file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=1) + "\n")
        configs[agent.name] = config
    return configs
