"""Render one JSON config file per agent process (run-interfaces.md, "Config file").

`agent_config` is pure (plan + placement + chain facts -> the agent's config
dataclass: its role settings from the plan plus the wiring); `write_configs`
writes them, with the agents' own serialiser, where the backend's placement says.
The prosumer hosts' files carry the run's key secret (a restarted host reads it
again); `redact_secrets` blanks it once the agents are stopped, so the bundle
never keeps it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_account import Account

from agents.common.config import REDACTED, AgentConfig, ProsumerHostSettings, config_class
from agents.common.typed import to_json
from orchestrator.placement import Placement
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


def agent_config(
    plan: Plan, placement: Placement, chain: ChainInfo, agent: AgentPlan
) -> AgentConfig:
    """The agent's config: its role settings from the plan plus where everything is."""
    where = placement.agents[agent.name]
    wiring: dict[str, Any] = {
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
        "out_dir": Path(where.out_dir),
        "log_level": plan.log_level,
        "market": plan.market.at_epoch(chain.epoch),
    }
    if agent.account is not None:
        wiring["private_key"] = dev_key(agent.account)
    settings = {f.name: getattr(agent.settings, f.name) for f in dataclasses.fields(agent.settings)}
    if isinstance(agent.settings, ProsumerHostSettings):
        settings["key_secret"] = plan.key_secret.hex()
    return config_class(agent.role)(**wiring, **settings)


def write_configs(plan: Plan, placement: Placement, chain: ChainInfo) -> dict[str, AgentConfig]:
    """Write every agent's config file; returns them by agent name."""
    configs: dict[str, AgentConfig] = {}
    for agent in plan.agents:
        config = agent_config(plan, placement, chain, agent)
        path = placement.agents[agent.name].config_file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_json(config))
        configs[agent.name] = config
    return configs


def redact_secrets(plan: Plan, placement: Placement) -> list[Path]:
    """Overwrite the key secret in the prosumer hosts' config files (the run's
    teardown, after the agents stopped); returns the files changed."""
    changed = []
    for agent in plan.agents:
        path = placement.agents[agent.name].config_file
        if not isinstance(agent.settings, ProsumerHostSettings) or not path.exists():
            continue
        data = json.loads(path.read_text())
        if data.get("key_secret") not in (None, "", REDACTED):
            data["key_secret"] = REDACTED
            path.write_text(json.dumps(data, separators=(",", ":")) + "\n")  # as to_json
            changed.append(path)
    return changed
