"""A run's cost before it starts (orchestrator.cost): processes, memory and
wall time from the plan the run would execute, and refusals that name the spec
line behind the cost. The figures themselves are checked against a real run in
tests/e2e/test_cli_limits.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import cost as c
from orchestrator.errors import SpecError
from orchestrator.plan import build_plan
from orchestrator.scenario import build_scenario
from orchestrator.spec import load_spec
from tests.conftest import REPO

SMOKE = REPO / "topologies" / "smoke.yaml"


def smoke_cost(*overrides: str, backend: str | None = None) -> tuple[c.Cost, int]:
    """(the estimate, the number of agents of the plan)."""
    scenario = build_scenario(load_spec(SMOKE, overrides, env={}))
    plan = build_plan(scenario, backend or scenario.spec.deployment.backend, "t")
    return c.run_cost(scenario, backend), len(plan.agents)


def test_local_counts_every_agent_the_chain_prometheus_and_the_testbed() -> None:
    cost, agents = smoke_cost()
    # the agents, anvil and its node launcher, Prometheus and the testbed process
    assert cost.processes == agents + 4
    assert cost.prosumer_hosts == 3 and cost.remote_processes == 0
    assert cost.transactions == round(cost.offers * c.TRANSACTIONS_PER_OFFER)
    assert cost.memory_mb == pytest.approx(sum(cost.memory_by_part_mb.values()), abs=0.5)
    parts = cost.memory_by_part_mb
    assert parts["prosumer hosts"] == pytest.approx(3 * c.AGENT_MB, rel=0.05)
    assert parts["solver"] == pytest.approx(c.SOLVER_MB, rel=0.05)
    no_metrics, _ = smoke_cost("metrics.prometheus.enabled=false")
    assert no_metrics.processes == cost.processes - 1
    assert "prometheus" not in no_metrics.memory_by_part_mb


def test_one_prosumer_per_host_costs_an_interpreter_each() -> None:
    default, _ = smoke_cost()
    single, agents = smoke_cost("deployment.prosumers_per_host=1")
    assert single.prosumer_hosts == 6 and single.processes == agents + 4
    extra = single.memory_mb - default.memory_mb
    assert extra == pytest.approx(3 * c.AGENT_MB, rel=0.05)


def test_docker_counts_containers_and_ssh_leaves_the_prosumer_hosts_to_the_boards() -> None:
    local, _ = smoke_cost()
    docker, _ = smoke_cost(backend="docker")
    assert docker.memory_by_part_mb["containers"] == pytest.approx(
        c.CONTAINER_MB * (docker.processes - 1)
    )
    assert docker.memory_by_part_mb["chain"] < local.memory_by_part_mb["chain"]  # no launcher
    hosts = "deployment.hosts=[{name: b, address: 10.0.0.9, count: 3}]"
    ssh, agents = smoke_cost("deployment.backend=ssh", hosts)
    assert ssh.remote_processes == 3 and ssh.processes == agents - 3 + 4
    assert "prosumer hosts" not in ssh.memory_by_part_mb
    assert ssh.host_memory_mb == pytest.approx(c.AGENT_MB, rel=0.05)


def test_wall_time_lockstep_follows_the_transactions_wallclock_the_intervals() -> None:
    lockstep, agents = smoke_cost()
    work = 8 * (
        c.LOCKSTEP_SECONDS_PER_INTERVAL + lockstep.transactions / 8 / c.TRANSACTIONS_PER_SECOND
    )
    assert lockstep.wall_seconds == pytest.approx(
        c.FIXED_SECONDS + agents * c.START_SECONDS_PER_PROCESS + work
    )
    wallclock, _ = smoke_cost("market.clock=wallclock", "market.simulated_interval_seconds=60")
    assert wallclock.wall_seconds == pytest.approx(
        c.FIXED_SECONDS + agents * c.START_SECONDS_PER_PROCESS + 8 * 60
    )


def test_a_run_larger_than_the_memory_is_refused_at_the_line_behind_it() -> None:
    spec = load_spec(SMOKE, ["deployment.prosumers_per_host=1"], env={})
    cost, _ = smoke_cost("deployment.prosumers_per_host=1")
    assert c.refusals(spec, cost, cost.memory_mb + 1) == []
    assert c.refusals(spec, cost, None) == []  # no /proc/meminfo: nothing to compare
    [line] = c.refusals(spec, cost, 500)
    assert line.startswith(
        "--set deployment.prosumers_per_host=1: deployment.prosumers_per_host: a run needs "
        f"about {cost.memory_mb / 1024:.1f} GB of memory, this machine has 500 MB available: "
        f"{cost.processes} processes (prosumer hosts 300 MB, "
    )
    assert line.endswith("; --force runs it anyway")
    written = load_spec(SMOKE, env={})  # the window, at its line in the file
    chain = {"memory_mb": 9e4, "memory_by_part_mb": {"chain": 9e4}}
    big = c.Cost(**{**cost.to_json(), **chain})
    assert c.refusals(written, big, 500)[0].startswith(
        f"{SMOKE}:24:18: market.last_interval: a run needs about 87.9 GB of memory"
    )


def test_a_host_over_its_profile_is_refused() -> None:
    hosts = "deployment.hosts=[{name: b, count: 1, profile: bbb}]"
    spec = load_spec(SMOKE, [hosts], env={})
    cost, _ = smoke_cost(hosts, backend="docker")
    assert cost.host_limit_mb == 512 and c.refusals(spec, cost, None) == []
    heavy = c.Cost(**{**cost.to_json(), "host_memory_mb": 600.0})
    assert c.refusals(spec, heavy, None) == [
        f"--set {hosts}: deployment.hosts: a prosumer host needs about 600 MB, more than its "
        "profile's 512 MB; spread the prosumers over more hosts (--force runs it anyway)"
    ]


def test_check_fits_raises_unless_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = build_scenario(load_spec(SMOKE, env={}))
    monkeypatch.setattr(c, "available_memory_mb", lambda: 100.0)
    with pytest.raises(SpecError) as refused:
        c.check_fits(scenario)
    assert len(refused.value.problems) == 1
    cost, warnings = c.check_fits(scenario, force=True)
    assert warnings == refused.value.problems and cost.memory_mb > 100


def test_available_memory_is_read_from_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  24683772 kB\nMemAvailable:  2097152 kB\n")
    assert c.available_memory_mb(meminfo) == 2048
    meminfo.write_text("MemTotal:  24683772 kB\n")
    assert c.available_memory_mb(meminfo) is None
    assert c.available_memory_mb(tmp_path / "none") is None
    assert (c.available_memory_mb() or 0) > 0  # this machine's
