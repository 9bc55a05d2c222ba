"""A run's cost before it starts (orchestrator.cost): processes, memory and
wall time from the plan the run would execute, and refusals that name the spec
line behind the cost. The figures themselves are checked against a real run in
tests/e2e/test_cli_limits.py."""

from __future__ import annotations

import json
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


def sweep_spec(tmp_path: Path, values: str) -> Path:
    spec = tmp_path / "sweep.yaml"
    spec.write_text(SMOKE.read_text() + f"\nsweep:\n  market.last_interval: {values}\n")
    return spec


def test_each_sweep_point_is_estimated_and_refused_on_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.sweeps.points import load_points, point_scenarios
    from orchestrator.sweeps.runner import SweepOptions, run_sweep

    spec_file = sweep_spec(tmp_path, "[50, 96]")
    base = load_spec(spec_file, env={})
    small, large = point_scenarios(load_points(spec_file, [], {}, base))
    base_mb = c.run_cost(build_scenario(base)).memory_mb  # the base spec: 49..56
    large_mb = c.run_cost(large[1]).memory_mb  # 49..96: six times the window
    assert c.run_cost(small[1]).memory_mb < base_mb < large_mb
    # memory enough for the base spec (all the estimate used to see), not for point 2
    monkeypatch.setattr(c, "available_memory_mb", lambda: (base_mb + large_mb) / 2)
    with pytest.raises(SpecError) as refused:
        c.check_points_fit([small, large])
    [line] = refused.value.problems
    assert line.startswith("sweep point 2 (market.last_interval=96): --set market.last_interval=")
    assert "market.last_interval: a run needs about" in line
    cost, warnings = c.check_points_fit([small, large], force=True)
    assert warnings == [line] and cost.memory_mb == large_mb  # the largest point reported
    # `testbed run` of the sweep refuses before any point starts; --force runs it
    out = tmp_path / "results"
    with pytest.raises(SpecError) as run_refused:
        run_sweep(SweepOptions(spec=spec_file, out=out, env={}))
    assert run_refused.value.problems == [line] and not out.exists()


def test_validate_of_a_sweep_reports_its_largest_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from orchestrator.cli import main

    spec_file = sweep_spec(tmp_path, "[50, 96]")
    large = build_scenario(load_spec(spec_file, ["sweep=null", "market.last_interval=96"], env={}))
    large_mb = c.run_cost(large).memory_mb
    monkeypatch.setattr(c, "available_memory_mb", lambda: large_mb - 1)
    assert main(["validate", str(spec_file)]) == 2
    assert "sweep point 2 (market.last_interval=96): " in capsys.readouterr().err
    assert main(["validate", str(spec_file), "--force", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["cost"]["memory_mb"] == round(large_mb, 1)
    assert facts["warnings"][-1].startswith("sweep point 2 (market.last_interval=96): ")


def test_ssh_services_host_carries_the_services_memory() -> None:
    hosts = "deployment.hosts=[{name: b, address: 10.0.0.9, profile: bbb}]"
    ssh = ("deployment.backend=ssh", hosts, "deployment.ssh.services_host=b")
    cost, _ = smoke_cost(*ssh)
    # the board runs the DSO, the clock, the solver and its prosumer host
    assert cost.services_host_limit_mb == 512
    expected = 3 * c.AGENT_MB + c.SOLVER_MB
    assert cost.services_host_memory_mb == pytest.approx(expected, rel=0.05)
    assert "dso" not in cost.memory_by_part_mb and "solver" not in cost.memory_by_part_mb
    assert c.refusals(load_spec(SMOKE, ssh, env={}), cost, None) == []
    solvers = "solvers=[" + ", ".join(f"{{name: s{i}, engine: highs}}" for i in range(5)) + "]"
    heavy, _ = smoke_cost(*ssh, solvers)
    assert heavy.services_host_memory_mb > 512
    [line] = c.refusals(load_spec(SMOKE, [*ssh, solvers], env={}), heavy, None)
    assert (
        ": deployment.ssh.services_host: the services host b needs about "
        f"{heavy.services_host_memory_mb:.0f} MB (DSO, clock, solvers and its prosumers), "
        "more than its profile's 512 MB" in line
    )
    here, _ = smoke_cost(*ssh[:2])  # without a services_host the services stay here
    assert here.services_host_memory_mb == 0 and "dso" in here.memory_by_part_mb
