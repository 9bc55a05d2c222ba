"""Testbed hosts: expansion of host groups, profiles, netem settings, and the
placement of prosumers on hosts (pure functions, no engine)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from orchestrator.hosts import (
    PROFILES,
    HostParams,
    HostsError,
    Netem,
    expand_hosts,
    place_prosumers,
)
from orchestrator.spec import load_spec
from orchestrator.spec.model import HostConfig, NetemConfig


@dataclass(frozen=True)
class P:
    id: int


def test_a_group_expands_to_numbered_hosts_with_its_profile_and_netem() -> None:
    hosts = expand_hosts(
        [
            HostConfig("bbb", profile="bbb", count=31, netem=NetemConfig(latency_ms=20)),
            HostConfig("edge"),
        ]
    )
    assert [h.name for h in hosts[:3]] == ["bbb-01", "bbb-02", "bbb-03"]
    assert hosts[30].name == "bbb-31"
    assert hosts[31] == HostParams("edge")
    assert all(h.profile is PROFILES["bbb"] for h in hosts[:31])
    assert PROFILES["bbb"].memory_bytes == 512 * 2**20
    assert hosts[0].netem == Netem(delay_ms=20)


def test_the_paper_placement_102_prosumers_on_31_boards() -> None:
    hosts = expand_hosts([HostConfig("bbb", profile="bbb", count=31)])
    prosumers = [P(i) for i in range(102)]
    placed = place_prosumers(prosumers, hosts)
    sizes = [len(group) for _, group in placed]
    assert len(placed) == 31 and sum(sizes) == 102
    assert sizes == [4] * 9 + [3] * 22
    # feeder order kept: consecutive prosumers share a host
    assert [p.id for p in placed[0][1]] == [0, 1, 2, 3]
    assert [p.id for _, g in placed for p in g] == list(range(102))


def test_listed_prosumers_go_to_their_host_and_the_rest_is_spread() -> None:
    hosts = expand_hosts(
        [HostConfig("big", prosumers=(5, 7)), HostConfig("small", count=2)],
    )
    placed = place_prosumers([P(i) for i in range(1, 9)], hosts)
    assert [(h.name, [p.id for p in g]) for h, g in placed] == [
        ("big", [5, 7]),
        ("small-01", [1, 2, 3]),
        ("small-02", [4, 6, 8]),
    ]


def test_a_group_with_a_list_spreads_it_and_hosts_left_empty_are_dropped() -> None:
    hosts = expand_hosts([HostConfig("g", count=3, prosumers=(1, 2, 3, 4))])
    placed = place_prosumers([P(i) for i in (1, 2, 3, 4)], hosts)
    assert [[p.id for p in g] for _, g in placed] == [[1, 2], [3], [4]]
    many = expand_hosts([HostConfig("h", count=5)])
    assert len(place_prosumers([P(1), P(2)], many)) == 2


def test_prosumers_per_host_caps_each_open_host() -> None:
    hosts = expand_hosts([HostConfig("h", count=3)])
    placed = place_prosumers([P(i) for i in range(5)], hosts, per_host=2)
    assert [len(g) for _, g in placed] == [2, 2, 1]
    with pytest.raises(HostsError, match="5 prosumers do not fit on 2 hosts"):
        place_prosumers([P(i) for i in range(5)], hosts[:2], per_host=2)


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        ([HostConfig("a", prosumers=(99,))], "prosumer 99 is not in the dataset"),
        (
            [HostConfig("a", prosumers=(1,)), HostConfig("b", prosumers=(1,))],
            "prosumer 1 placed on both a and b",
        ),
        ([HostConfig("a", prosumers=(1,))], "no host left for prosumers 2"),
    ],
)
def test_placement_errors_name_the_host_and_prosumer(hosts: list[HostConfig], message: str) -> None:
    with pytest.raises(HostsError, match=message):
        place_prosumers([P(1), P(2)], expand_hosts(hosts))


def test_duplicate_names_after_expansion_are_an_error() -> None:
    with pytest.raises(HostsError, match="duplicate host names h-01"):
        expand_hosts([HostConfig("h", count=2), HostConfig("h-01")])


def test_netem_env_for_the_entrypoint() -> None:
    netem = Netem(delay_ms=50, jitter_ms=5, loss_percent=0.5, rate_kbit=10_000)
    assert netem.env() == {
        "TESTBED_NETEM_DELAY_MS": "50",
        "TESTBED_NETEM_JITTER_MS": "5",
        "TESTBED_NETEM_LOSS_PERCENT": "0.5",
        "TESTBED_NETEM_RATE_KBIT": "10000",
    }
    assert Netem().env() == {} and not Netem().active
    assert netem.describe() == "delay 50 ms ±5, loss 0.5 %, rate 10 Mbit/s"


def test_spec_hosts_section_validates_and_loads() -> None:
    spec = load_spec(
        "topologies/smoke.yaml",
        [
            "deployment.hosts=[{name: bbb, count: 3, profile: bbb, "
            "netem: {latency_ms: 20, jitter_ms: 2, loss_percent: 1, rate_mbit: 10}}]"
        ],
    )
    (host,) = spec.deployment.hosts
    assert host.count == 3 and host.profile == "bbb"
    hosts = expand_hosts(spec.deployment.hosts)
    assert hosts[0].netem == Netem(delay_ms=20, jitter_ms=2, loss_percent=1, rate_kbit=10_000)


def test_the_plan_puts_one_prosumer_host_process_on_each_host() -> None:
    from agents.common.config import ClockSettings
    from orchestrator.plan import PlanError, build_plan
    from orchestrator.scenario import build_scenario

    spec = load_spec(
        "topologies/smoke.yaml",
        ["deployment.hosts=[{name: bbb, count: 4, profile: bbb, netem: {latency_ms: 5}}]"],
    )
    plan = build_plan(build_scenario(spec), "docker", "run-x")
    hosts = plan.by_role("prosumer")
    assert [a.name for a in hosts] == ["bbb-01", "bbb-02", "bbb-03", "bbb-04"]
    assert [a.prosumer_count for a in hosts] == [2, 2, 1, 1]
    clock = plan.agent("clock").settings
    assert isinstance(clock, ClockSettings)
    assert clock.prosumer_hosts == tuple(a.name for a in hosts)
    assert plan.hosts["bbb-02"].profile.name == "bbb"
    assert plan.hosts["bbb-02"].netem.delay_ms == 5

    clash = load_spec("topologies/smoke.yaml", ["deployment.hosts=[{name: dso}]"])
    with pytest.raises(PlanError, match="dso: name taken by a service"):
        build_plan(build_scenario(clash), "docker", "run-y")
