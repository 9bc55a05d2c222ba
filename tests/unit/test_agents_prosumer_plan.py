"""Prosumer planning (prediction window, skipping, rotation, keys) and config loading."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agents.common.abi import Key
from agents.common.config import (
    ClockConfig,
    DsoConfig,
    Prices,
    ProsumerHostConfig,
    ProsumerSpec,
    TraceOffer,
    load_config,
    parse_config,
)
from agents.common.errors import ConfigError
from agents.common.typed import to_plain
from agents.prosumer.host import next_generation
from agents.prosumer.plan import ProsumerPlan, anon_secret, clip, money_needed

OFFERS = (
    TraceOffer(1, 1, 500),
    TraceOffer(2, 3, -300),
    TraceOffer(4, 4, 200),
    TraceOffer(4, 12, -100),
)


def plan() -> ProsumerPlan:
    return ProsumerPlan(ProsumerSpec(101, 1, OFFERS))


def test_offers_enter_the_window_once_and_late_ones_are_skipped() -> None:
    p = plan()
    # L=2, T_clear=1, window 1..10: at t=0 offers starting <= 1 are due.
    assert p.due(0, 2, 1, 1, 10) == [OFFERS[0]]
    assert p.due(0, 2, 1, 1, 10) == []  # never twice
    # t=3: start <= 4 -> offers 2, 3 (ends 3 >= 4? no: skipped), 4, 5
    due = p.due(3, 2, 1, 1, 10)
    assert due == [OFFERS[2], TraceOffer(4, 10, -100)]  # clipped to last=10
    assert p.skipped == 1
    assert p.remaining == 0


def test_clip() -> None:
    assert clip(OFFERS[3], 1, 10) == TraceOffer(4, 10, -100)
    assert clip(OFFERS[0], 1, 10) is OFFERS[0]
    assert clip(OFFERS[0], 2, 10) is None


def test_rotation() -> None:
    p = plan()
    per_offer = p.batches(list(OFFERS[:3]), "per_offer")
    assert [len(b.offers) for b in per_offer] == [1, 1, 1]
    assert [b.counter for b in per_offer] == [0, 1, 2]
    per_interval = p.batches(list(OFFERS[:3]), "per_interval")
    assert len(per_interval) == 1 and per_interval[0].counter == 3
    assert per_interval[0].last_interval == 4
    assert p.batches([], "per_interval") == []


def test_withdrawal_asks_for_exactly_the_offers_and_their_cost() -> None:
    prices = Prices(sell=10, buy=25)
    (batch,) = plan().batches(list(OFFERS[:2]), "per_interval")
    w = batch.withdrawal("0x" + "11" * 20, prices)
    assert [(a.kind, a.energy_wh, a.start, a.end) for a in w.assets] == [
        (0, 500, 1, 1),
        (1, 300, 2, 3),
    ]
    assert w.amount == 300 * 25 == money_needed(list(OFFERS[:2]), prices)
    assert (w.prosumer, w.feeder) == (101, 1)


def test_anonymous_keys_are_repeatable_and_distinct() -> None:
    a = anon_secret(7, 101, 0)
    assert a == anon_secret(7, 101, 0)
    others = {anon_secret(7, 101, 1), anon_secret(7, 102, 0), anon_secret(8, 101, 0)}
    assert a not in others and len(others) == 3
    assert Key(a).address.startswith("0x")
    # the run's secret: another secret, other keys; the same secret, the same keys
    keyed = anon_secret(7, 101, 0, key_secret=b"s" * 32)
    assert keyed != a and keyed == anon_secret(7, 101, 0, 0, b"s" * 32)
    assert anon_secret(7, 101, 0, key_secret=b"t" * 32) != keyed


COMMON = {
    "run_id": "r1",
    "name": "x",
    "rpc_url": "http://127.0.0.1:8545",
    "contract_address": "0x" + "00" * 20,
    "chain_id": 31337,
    "dso_endpoint": "tcp://127.0.0.1:1",
    "clock_pub_endpoint": "tcp://127.0.0.1:2",
    "clock_pull_endpoint": "tcp://127.0.0.1:3",
    "metrics_host": "127.0.0.1",
    "metrics_port": 0,
    "out_dir": "/tmp/x",
    "log_level": "INFO",
    "market": {
        "first_interval": 1,
        "last_interval": 96,
        "prediction_window": 5,
        "t_clear": 1,
        "interval_seconds": 3600,
        "epoch": 1000,
        "clock": "lockstep",
        "solver_period_seconds": 2,
    },
}
EMPTY = {"start": 3, "end": 2, "energy_wh": 1}
PROSUMERS = [{"id": 101, "feeder": 1, "offers": [{"start": 2, "end": 2, "energy_wh": -50}]}]


def test_load_role_configs(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps(
            {
                **COMMON,
                "role": "prosumer",
                "prosumers": PROSUMERS,
                "prices": {"sell": 1, "buy": 2},
                "address_rotation": "per_interval",
                "seed": 5,
            }
        )
    )
    cfg = load_config(path)
    assert isinstance(cfg, ProsumerHostConfig)
    assert cfg.prosumers[0].offers[0] == TraceOffer(2, 2, -50)
    assert parse_config(to_plain(cfg)) == cfg  # one schema, both directions
    m = cfg.market
    assert list(m.clock_intervals()) == list(range(0, 96))
    assert m.interval_start(0) == 1000 and m.interval_start(2) == 8200
    assert m.interval_at(1000 + 3599) == 0 and m.interval_at(1000 + 3600) == 1

    dso = parse_config(
        {
            **COMMON,
            "role": "dso",
            "private_key": "0x01",
            "feeders": [{"id": 1, "c_ext": 5, "c_int": 6}],
            "prosumers": PROSUMERS,
            "initial_balance": {"101": 77},
        }
    )
    assert isinstance(dso, DsoConfig) and dso.initial_balance == {101: 77}
    clock = parse_config(
        {**COMMON, "role": "clock", "private_key": "0x01", "prosumer_hosts": ["h1"], "solvers": []}
    )
    assert isinstance(clock, ClockConfig) and clock.market.clock == "lockstep"
    assert clock.lockstep_timeout_seconds == 120.0


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"role": "miner"}, "unknown role"),
        ({"market": {**COMMON["market"], "t_clear": 0}}, "t_clear"),  # type: ignore[dict-item]
        ({"address_rotation": "never"}, "address_rotation"),
        ({"prices": {"sell": 1}}, "buy: missing"),
        ({"prosumers": [{"id": 1, "feeder": 1, "offers": [EMPTY]}]},
         "prosumers.0.offers.0: empty offer"),
        ({"metrics_port": "x"}, "metrics_port: expected int"),
        ({"future_key": True}, "future_key: unknown key 'future_key'"),
        ({"market": {**COMMON["market"], "clok": "wallclock"}},  # type: ignore[dict-item]
         "market.clok: unknown key 'clok' (did you mean 'clock'?)"),
        ({"market": {**COMMON["market"], "clock": "fast"}},  # type: ignore[dict-item]
         "market.clock: 'fast' is not one of lockstep, wallclock"),
        ({"prosumers": [{"id": 1, "feeder": 1, "offers": [{**EMPTY, "energy_wh": 1.5}]}]},
         "prosumers.0.offers.0.energy_wh: expected int, got 1.5"),
    ],
)  # fmt: skip
def test_bad_configs_name_the_key(change: dict[str, object], error: str) -> None:
    data = {**COMMON, "role": "prosumer", "prosumers": PROSUMERS, "prices": {"sell": 1, "buy": 2}}
    data.update(change)
    with pytest.raises(ConfigError, match=re.escape(error)):
        parse_config(data)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.json")


def test_a_restarted_host_derives_new_addresses(tmp_path: Path) -> None:
    out = tmp_path / "prosumers-01"
    assert [next_generation(out) for _ in range(3)] == [0, 1, 2]
    first, again = anon_secret(7, 101, 0), anon_secret(7, 101, 0, generation=1)
    assert again != first and again == anon_secret(7, 101, 0, generation=1)
    assert anon_secret(7, 101, 0, generation=0) == first
