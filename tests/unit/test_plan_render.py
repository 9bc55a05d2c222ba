"""plan (pure) and render: agents, hosts, tiers and the rendered config files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from agents.common.config import (
    ClockSettings,
    DsoConfig,
    ProsumerHostConfig,
    SolverConfig,
    load_config,
    parse_config,
)
from agents.common.errors import ConfigError
from agents.common.market import MarketConfig, MarketParams
from agents.common.typed import to_plain
from orchestrator.backends.local import LocalBackend
from orchestrator.datasets import ProsumerTrace, TraceOffer
from orchestrator.plan import Plan, PlanError, build_plan
from orchestrator.render import ChainInfo, dev_address, dev_key, redact_secrets, write_configs
from orchestrator.scenario import Scenario
from orchestrator.spec import (
    SolverConfig as SpecSolver,
)
from orchestrator.spec.backends import backend_entry
from tests.scenario_support import memory_scenario

MARKET = MarketConfig(
    first_interval=1,
    last_interval=8,
    prediction_window=3,
    t_clear=1,
    interval_minutes=15,
    clock="lockstep",
    simulated_interval_seconds=5.0,
    solver_period_seconds=1.0,
)
SOLVERS = (SpecSolver("solver-1", "highs"), SpecSolver("solver-2", "glpk"))


def prosumers(n: int) -> tuple[ProsumerTrace, ...]:
    return tuple(
        ProsumerTrace(
            id=(i % 3 + 1) * 100 + i,
            feeder=i % 3 + 1,
            offers=(TraceOffer(1 + i % 4, 2 + i % 4, (-1) ** i * (100 + i)),),
        )
        for i in range(n)
    )


def scenario(
    n: int = 7,
    per_host: int | None = None,
    solvers: tuple[SpecSolver, ...] = SOLVERS,
    market: MarketConfig = MARKET,
) -> Scenario:
    return memory_scenario(
        prosumers(n), market, solvers, per_host=per_host, feeders=(1, 2, 3), prices=(1, 2)
    )


def plan(n: int = 7, backend: str = "local", **kw: Any) -> Plan:
    return build_plan(scenario(n, **kw), backend, "r1")


def test_every_prosumer_on_exactly_one_host_and_tiers_in_start_order() -> None:
    p = plan(10, per_host=3)
    hosts = p.by_role("prosumer")
    assert [h.name for h in hosts] == [
        "prosumers-01",
        "prosumers-02",
        "prosumers-03",
        "prosumers-04",
    ]
    placed = [t.id for h in hosts for t in h.prosumers]
    assert sorted(placed) == sorted(t.id for t in prosumers(10))
    assert len(placed) == len(set(placed))
    assert [len(h.prosumers) for h in hosts] == [3, 3, 3, 1]
    assert p.prosumer_count == 10
    tiers = [[a.role for a in tier] for tier in p.tiers()]
    assert tiers == [["recorder"], ["dso"], ["clock"], ["solver", "solver"], ["prosumer"] * 4]
    clock = p.agent("clock").settings
    assert isinstance(clock, ClockSettings)
    assert clock.prosumer_hosts == tuple(h.name for h in hosts)
    assert clock.solvers == ("solver-1", "solver-2")
    # distinct signing accounts for dso, clock and each solver
    accounts = [a.account for a in p.agents if a.account is not None]
    assert len(accounts) == len(set(accounts)) == 4


def test_local_default_bounds_the_number_of_host_processes() -> None:
    local = plan(102)
    assert len(local.by_role("prosumer")) == backend_entry("local").max_default_hosts == 4
    assert local.prosumer_count == 102
    docker = plan(102, backend="docker")
    assert len(docker.by_role("prosumer")) == 26


def test_plan_errors() -> None:
    with pytest.raises(PlanError, match="no prosumers"):
        plan(0)
    with pytest.raises(PlanError, match="duplicate"):
        plan(solvers=(SpecSolver("s"), SpecSolver("s")))
    with pytest.raises(PlanError, match="prosumers_per_host"):
        plan(per_host=0)


def test_chain_interval_seconds_by_clock_mode() -> None:
    assert MARKET.chain_interval_seconds == 3600
    wall = dataclasses.replace(MARKET, clock="wallclock")
    assert wall.chain_interval_seconds == 5
    assert list(MARKET.clock_intervals()) == list(range(0, 8))
    assert plan(market=wall).market == MarketParams.of(wall)
    assert plan().market.interval_seconds == 3600 and plan().market.epoch == 0


def test_dev_keys_are_anvils_accounts() -> None:
    assert dev_address(0) == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert dev_key(1).startswith("0x") and len(dev_key(1)) == 66


def test_rendered_configs_load_as_agent_configs(tmp_path: Path) -> None:
    market = dataclasses.replace(MARKET, tie_break="storage-last")
    p = build_plan(scenario(5, per_host=2, market=market), "local", "run-x")
    backend = LocalBackend("run-x", tmp_path / "state")
    placement = backend.prepare(p, tmp_path / "bundle")
    chain = ChainInfo(contract_address="0x" + "ab" * 20, chain_id=31337, epoch=1_700_000_000)
    configs = write_configs(p, placement, chain)
    assert set(configs) == {a.name for a in p.agents}
    ports = {c.metrics_port for c in configs.values()}
    assert len(ports) == len(configs)
    for agent in p.agents:
        where = placement.agents[agent.name]
        loaded = load_config(where.config_file)
        assert loaded == configs[agent.name]  # written and read with the same classes
        assert parse_config(to_plain(loaded)) == loaded
        assert loaded.market.settings() == market.settings()  # every market field arrives
        assert loaded.role == agent.role and loaded.name == agent.name
        assert loaded.market.interval_seconds == 3600 and loaded.market.epoch == chain.epoch
        assert loaded.rpc_url == placement.rpc_url
        if isinstance(loaded, DsoConfig):
            assert loaded.private_key == dev_key(0)
            assert len(loaded.prosumers) == 5 and len(loaded.feeders) == 3
        if isinstance(loaded, ProsumerHostConfig):
            assert loaded.prices.sell == 1 and loaded.prices.buy == 2
        if isinstance(loaded, SolverConfig):
            assert loaded.engine in ("highs", "glpk")
            assert loaded.market.tie_break == "storage-last"
    recorder = json.loads(placement.agents["recorder"].config_file.read_text())
    assert recorder["out_dir"] == str((tmp_path / "bundle" / "events").resolve())
    assert "private_key" not in recorder


def test_key_secret_only_in_the_prosumer_hosts_configs_and_redacted(tmp_path: Path) -> None:
    p = build_plan(scenario(5, per_host=2), "local", "run-x")
    again = build_plan(scenario(5, per_host=2), "local", "run-x")
    assert len(p.key_secret) == 32 and again.key_secret != p.key_secret
    assert again == p and p.key_secret.hex() not in repr(p)  # not part of the plan's data
    placement = LocalBackend("run-x", tmp_path / "state").prepare(p, tmp_path / "bundle")
    chain = ChainInfo(contract_address="0x" + "ab" * 20, chain_id=31337, epoch=1)
    configs = write_configs(p, placement, chain)
    hosts = {n for n, c in configs.items() if isinstance(c, ProsumerHostConfig)}
    assert len(hosts) == 3
    for name in configs:
        text = placement.agents[name].config_file.read_text()
        assert (p.key_secret.hex() in text) == (name in hosts)
    assert {configs[n].key_secret for n in hosts} == {p.key_secret.hex()}  # type: ignore[attr-defined]
    changed = redact_secrets(p, placement)
    assert {path.stem for path in changed} == hosts
    for name in configs:
        assert p.key_secret.hex() not in placement.agents[name].config_file.read_text()
    with pytest.raises(ConfigError, match="key_secret: redacted"):
        load_config(placement.agents[sorted(hosts)[0]].config_file)
    assert redact_secrets(p, placement) == []  # idempotent
