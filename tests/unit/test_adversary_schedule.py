"""behaviour_schedule and misbehaviour: config validation and which behaviour applies when."""

from __future__ import annotations

import re
from typing import Any

import pytest

from agents.common.adversaries import BEHAVIOUR_OPTIONS, FLOOD_MAX, Misbehaviour
from agents.common.config import ProsumerHostConfig, SolverConfig, parse_config
from agents.common.errors import ConfigError
from agents.prosumer import misbehave
from agents.solver.behaviour import BEHAVIOURS, Flood, Honest, Infeasible, Late, Schedule

MARKET = {
    "first_interval": 1, "last_interval": 10, "prediction_window": 2, "t_clear": 1,
    "interval_seconds": 60, "epoch": 0,
}  # fmt: skip


def solver(**extra: Any) -> SolverConfig:
    cfg = parse_config(
        {"role": "solver", "name": "s", "market": MARKET, "private_key": "0x01", **extra}
    )
    assert isinstance(cfg, SolverConfig)
    return cfg


def host(misbehaviour: Any) -> ProsumerHostConfig:
    cfg = parse_config(
        {
            "role": "prosumer",
            "name": "h",
            "market": MARKET,
            "prices": {"sell": 1, "buy": 2},
            "prosumers": [{"id": 7, "feeder": 1}, {"id": 8, "feeder": 1}],
            "misbehaviour": misbehaviour,
        }
    )
    assert isinstance(cfg, ProsumerHostConfig)
    return cfg


SCHEDULE = [
    {"from_interval": 2, "until_interval": 4, "behaviour": "infeasible",
     "options": {"kind": "sell_energy"}},
    {"from_interval": 4, "until_interval": 5, "behaviour": "late"},
    {"from_interval": 7, "until_interval": None, "behaviour": "flood", "options": {"count": 3}},
]  # fmt: skip


def test_schedule_picks_the_span_of_each_clock_interval() -> None:
    cfg = solver(behaviour_schedule=SCHEDULE)
    spans = cfg.behaviour_schedule
    assert spans[0].options == {"kind": "SELL_ENERGY"}  # normalised
    assert spans[1].options == {"delay_seconds": 5.0}  # default filled in
    schedule = Schedule(cfg.behaviour, spans)
    names = {t: schedule.at(t).behaviour.name for t in range(0, 12)}
    assert names == {
        0: "honest", 1: "honest", 2: "infeasible", 3: "infeasible", 4: "late",
        5: "honest", 6: "honest", 7: "flood", 8: "flood", 9: "flood", 10: "flood", 11: "flood",
    }  # fmt: skip
    assert schedule.at(None).behaviour.name == "honest"
    # one object per span: state (the "any" cycle) carries over between its intervals
    assert schedule.at(2).behaviour is schedule.at(3).behaviour
    infeasible = schedule.at(2).behaviour
    assert isinstance(infeasible, Infeasible) and infeasible.kind == "SELL_ENERGY"
    late = schedule.at(4).behaviour
    assert isinstance(late, Late) and late.delay_seconds == 5.0
    flood = schedule.at(9).behaviour
    assert isinstance(flood, Flood) and flood.count == 3
    assert (schedule.at(7).label, schedule.at(7).span) == ("flood(count=3)", 2)
    assert isinstance(Schedule("honest").at(3).behaviour, Honest)


def test_default_behaviour_outside_the_spans_may_be_adversarial() -> None:
    cfg = solver(behaviour="inferior", behaviour_schedule=SCHEDULE[:1])
    schedule = Schedule(cfg.behaviour, cfg.behaviour_schedule)
    assert [schedule.at(t).behaviour.name for t in (1, 2, 4)] == [
        "inferior",
        "infeasible",
        "inferior",
    ]


def test_every_behaviour_of_the_config_table_exists() -> None:
    assert set(BEHAVIOUR_OPTIONS) == set(BEHAVIOURS)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("nope", "behaviour_schedule: expected a list"),
        ([{"from_interval": 1, "behaviour": "greedy"}],
         "behaviour_schedule.0.behaviour: unknown solver behaviour 'greedy'"),
        ([{"behaviour": "late"}], "behaviour_schedule.0.from_interval: missing"),
        ([{"from_interval": 3, "until_interval": 3, "behaviour": "late"}], "empty span"),
        ([{"from_interval": 1, "until_interval": "x", "behaviour": "late"}],
         "until_interval: expected int or null"),
        ([{"from_interval": 1, "behaviour": "late", "when": 2}], "unknown key 'when'"),
        ([{"from_interval": 1, "behaviour": "infeasible", "options": {"kind": "PRICES"}}],
         "behaviour_schedule.0.options.kind: 'PRICES' is not a kind"),
        ([{"from_interval": 1, "behaviour": "infeasible",
           "options": {"kind": "NEGATIVE_PRICE"}}], "cannot occur on chain"),
        ([{"from_interval": 1, "behaviour": "late", "options": {"delay": 2}}],
         "unknown option 'delay' for late (allowed: delay_seconds)"),
        ([{"from_interval": 1, "behaviour": "late", "options": {"delay_seconds": "2"}}],
         "options.delay_seconds: expected float"),
        ([{"from_interval": 1, "behaviour": "late", "options": {"delay_seconds": 0}}],
         "delay_seconds: must be in"),
        ([{"from_interval": 1, "behaviour": "flood", "options": {"count": FLOOD_MAX + 1}}],
         f"count: must be in 1..{FLOOD_MAX}"),
        ([{"from_interval": 1, "behaviour": "flood", "options": {"count": True}}],
         "count: expected int"),
        ([{"from_interval": 1, "behaviour": "inferior", "options": {"no_candidate": "x"}}],
         "options.no_candidate: expected 'worse' or 'empty'"),
        ([{"from_interval": 1, "behaviour": "honest", "options": {"kind": "any"}}],
         "unknown option 'kind' for honest (allowed: none)"),
        ([{"from_interval": 1, "until_interval": 5, "behaviour": "late"},
          {"from_interval": 4, "behaviour": "inferior"}],
         "behaviour_schedule.1: overlaps behaviour_schedule.0"),
    ],
)  # fmt: skip
def test_bad_schedules_are_config_errors(schedule: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=_literal(message)):
        solver(behaviour_schedule=schedule)


def test_unknown_default_behaviour_is_refused_at_load() -> None:
    with pytest.raises(ConfigError, match="behaviour: unknown solver behaviour 'greedy'"):
        solver(behaviour="greedy")


def test_misbehaviour_spans_per_prosumer() -> None:
    cfg = host(
        [
            {"prosumer": 7, "action": "beyond_assets", "from_interval": 0, "until_interval": 3},
            {"prosumer": 7, "action": "past_interval", "from_interval": 3, "until_interval": None},
            {"prosumer": 8, "action": "past_interval", "from_interval": 2, "until_interval": 3},
        ]
    )
    assert cfg.misbehaviour[0] == Misbehaviour(7, "beyond_assets", 0, 3)
    assert [misbehave.active(cfg.misbehaviour, t) for t in (0, 2, 3, 9)] == [
        {7: "beyond_assets"},
        {7: "beyond_assets", 8: "past_interval"},
        {7: "past_interval"},
        {7: "past_interval"},
    ]
    assert misbehave.switches({7: "beyond_assets", 8: "past_interval"}, {7: "past_interval"}) == [
        (7, "beyond_assets", "ended"),
        (8, "past_interval", "ended"),
        (7, "past_interval", "started"),
    ]
    assert host([]).misbehaviour == ()


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ({"prosumer": 7}, "misbehaviour: expected a list"),
        ([{"prosumer": 9, "action": "past_interval", "from_interval": 0}],
         "misbehaviour.0.prosumer: 9 is not a prosumer of this host"),
        ([{"prosumer": 7, "action": "steal", "from_interval": 0}],
         "misbehaviour.0.action: 'steal' is not one of beyond_assets, past_interval"),
        ([{"action": "past_interval", "from_interval": 0}], "misbehaviour.0.prosumer: missing"),
        ([{"prosumer": 7, "action": "past_interval"}], "misbehaviour.0.from_interval: missing"),
        ([{"prosumer": 7, "action": "past_interval", "from_interval": 0, "extra": 1}],
         "unknown key 'extra'"),
        ([{"prosumer": 7, "action": "past_interval", "from_interval": 0},
          {"prosumer": 7, "action": "beyond_assets", "from_interval": 5}],
         "misbehaviour.1: overlaps misbehaviour.0 of prosumer 7"),
    ],
)  # fmt: skip
def test_bad_misbehaviour_is_a_config_error(items: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=_literal(message)):
        host(items)


def _literal(text: str) -> str:
    return re.escape(text)
