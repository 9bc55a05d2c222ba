"""plan (pure) and render: agents, hosts, tiers and the rendered config files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from agents.common.config import DsoConfig, ProsumerHostConfig, SolverConfig, load_config
from market.types import Feeder
from orchestrator.backends.local import LocalBackend
from orchestrator.plan import (
    LOCAL_MAX_PROSUMER_HOSTS,
    MarketParams,
    PlanError,
    PlanInput,
    ProsumerTrace,
    SolverParams,
    TraceOffer,
    build_plan,
)
from orchestrator.render import ChainInfo, dev_address, dev_key, write_configs

MARKET = MarketParams(
    first_interval=1,
    last_interval=8,
    prediction_window=3,
    t_clear=1,
    interval_minutes=15,
    clock="lockstep",
    simulated_interval_seconds=5.0,
    solver_period_seconds=1.0,
)


def prosumers(n: int) -> tuple[ProsumerTrace, ...]:
    return tuple(
        ProsumerTrace(
            id=(i % 3 + 1) * 100 + i,
            feeder=i % 3 + 1,
            offers=(TraceOffer(1 + i % 4, 2 + i % 4, (-1) ** i * (100 + i)),),
        )
        for i in range(n)
    )


def plan_input(n: int = 7, **kw: object) -> PlanInput:
    base: dict[str, object] = {
        "spec_name": "t",
        "seed": 3,
        "market": MARKET,
        "feeders": tuple(Feeder(f, 20_000, 25_000) for f in (1, 2, 3)),
        "prosumers": prosumers(n),
        "solvers": (SolverParams("solver-1", "highs"), SolverParams("solver-2", "glpk")),
        "prices": {"sell": 1, "buy": 2},
    }
    base.update(kw)
    return PlanInput(**base)  # type: ignore[arg-type]


def test_every_prosumer_on_exactly_one_host_and_tiers_in_start_order() -> None:
    plan = build_plan(plan_input(10, prosumers_per_host=3), "r1")
    hosts = plan.by_role("prosumer")
    assert [h.name for h in hosts] == [
        "prosumers-01",
        "prosumers-02",
        "prosumers-03",
        "prosumers-04",
    ]
    placed = [p["id"] for h in hosts for p in h.settings["prosumers"]]
    assert sorted(placed) == sorted(p.id for p in prosumers(10))
    assert len(placed) == len(set(placed))
    assert [len(h.settings["prosumers"]) for h in hosts] == [3, 3, 3, 1]
    assert plan.prosumer_count == 10
    tiers = [[a.role for a in tier] for tier in plan.tiers()]
    assert tiers == [["recorder"], ["dso"], ["clock"], ["solver", "solver"], ["prosumer"] * 4]
    clock = plan.agent("clock")
    assert clock.settings["prosumer_hosts"] == [h.name for h in hosts]
    assert clock.settings["solvers"] == ["solver-1", "solver-2"]
    # distinct signing accounts for dso, clock and each solver
    accounts = [a.account for a in plan.agents if a.account is not None]
    assert len(accounts) == len(set(accounts)) == 4


def test_local_default_bounds_the_number_of_host_processes() -> None:
    plan = build_plan(plan_input(102), "r")
    assert len(plan.by_role("prosumer")) == LOCAL_MAX_PROSUMER_HOSTS
    assert plan.prosumer_count == 102
    docker = build_plan(plan_input(102, backend="docker"), "r")
    assert len(docker.by_role("prosumer")) == 26


def test_plan_errors() -> None:
    with pytest.raises(PlanError, match="no prosumers"):
        build_plan(plan_input(0), "r")
    with pytest.raises(PlanError, match="duplicate"):
        build_plan(plan_input(solvers=(SolverParams("s"), SolverParams("s"))), "r")
    with pytest.raises(PlanError, match="prosumers_per_host"):
        build_plan(plan_input(prosumers_per_host=0), "r")


def test_chain_interval_seconds_by_clock_mode() -> None:
    assert MARKET.chain_interval_seconds == 3600
    wall = MarketParams(1, 8, 3, 1, 15, "wallclock", 5.0, 1.0)
    assert wall.chain_interval_seconds == 5
    assert list(MARKET.clock_intervals) == list(range(0, 8))


def test_dev_keys_are_anvils_accounts() -> None:
    assert dev_address(0) == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert dev_key(1).startswith("0x") and len(dev_key(1)) == 66


def test_rendered_configs_load_as_agent_configs(tmp_path: Path) -> None:
    market = dataclasses.replace(MARKET, tie_break="storage-last")
    plan = build_plan(plan_input(5, prosumers_per_host=2, market=market), "run-x")
    backend = LocalBackend("run-x", tmp_path / "state")
    placement = backend.prepare(plan, tmp_path / "bundle")
    chain = ChainInfo(contract_address="0x" + "ab" * 20, chain_id=31337, epoch=1_700_000_000)
    configs = write_configs(plan, placement, chain)
    assert set(configs) == {a.name for a in plan.agents}
    ports = {c["metrics_port"] for c in configs.values()}
    assert len(ports) == len(configs)
    for agent in plan.agents:
        where = placement.agents[agent.name]
        loaded = load_config(where.config_file)
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
