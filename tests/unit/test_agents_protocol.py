"""Wire protocol and dispatcher: pure, no sockets."""

from __future__ import annotations

import json

import pytest

from agents.common import protocol as p
from agents.common.errors import ProtocolError
from agents.common.market import MarketParams

ANON = "0x" + "12" * 20

SAMPLES: list[p.Message] = [
    p.Tick(3),
    p.Solve(3),
    p.Finalized(4),
    p.Done(),
    p.Posted(3, "prosumers-01", 17),
    p.Solved(3, "solver-1", True, 12_345),
    p.Settled("prosumers-01"),
    p.Expect("solver-1", False),
    p.Hold(5),
    p.Release(5),
    p.Bootstrap(),
    p.BootstrapInfo(
        "0x" + "ab" * 20,
        31337,
        MarketParams(prediction_window=5, interval_seconds=3600, epoch=1_700_000_000),
    ),
    p.WithdrawAssets(101, ANON, 1, (p.Asset(0, 500, 3, 4), p.Asset(1, 20, 5, 5)), 400),
    p.AssetsAdded(ANON),
    p.FailedWithdrawal(ANON, "exceeds declared offers"),
    p.WithdrawBatch((p.WithdrawAssets(101, ANON, 1, (), 7),)),
    p.BatchResult((p.AssetsAdded(ANON), p.FailedWithdrawal(ANON, "no"))),
    p.ErrorReply("bad"),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: m.TYPE)
def test_round_trip(msg: p.Message) -> None:
    data = p.encode(msg)
    assert json.loads(data)["type"] == msg.TYPE
    assert p.decode(data) == msg


def test_every_type_has_a_sample() -> None:
    assert {m.TYPE for m in SAMPLES} == set(p.MESSAGE_TYPES)


def test_wire_format_is_plain_json() -> None:
    data = p.encode(p.Posted(7, "h", 2))
    assert json.loads(data) == {"type": "posted", "interval": 7, "host": "h", "offers": 2}


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"type": "nope"}', "unknown message type"),
        (b'{"interval": 1}', "unknown message type"),
        (b'{"type": "tick"}', "missing field 'interval'"),
        (b'{"type": "tick", "interval": "3"}', "expected integer"),
        (b'{"type": "tick", "interval": true}', "expected integer"),
        (b'{"type": "solved", "interval": 1, "solver": "s", "submitted": 1, "objective": 0}',
         "expected bool"),
        (b'{"type": "withdrawBatch", "requests": [{"type": "tick", "interval": 1}]}',
         "must be withdrawAssets"),
        (b'{"type": "bootstrapInfo", "contract_address": "0x", "chain_id": 1,'
         b' "market": {"t_clear": "1"}}', "bootstrapInfo.market.t_clear: expected int"),
        (b'{"type": "withdrawAssets", "prosumer": 1, "anon": "a", "feeder": 1, "amount": 0,'
         b' "assets": [{"kind": 0, "energy_wh": 1, "start": 1}]}', "missing"),
    ],
)  # fmt: skip
def test_malformed_input_is_rejected(raw: bytes, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        p.decode(raw)


def test_dispatcher_routes_by_class_and_answers_errors() -> None:
    seen: list[p.Message] = []

    def closed(m: p.Bootstrap) -> p.Message:
        seen.append(m)
        return p.ErrorReply("closed")

    def tick(m: p.Tick) -> None:
        seen.append(m)

    d = p.Dispatcher()
    d.on(p.Bootstrap, closed)
    d.on(p.Tick, tick)

    assert p.decode(d.handle_bytes(b'{"type":"bootstrap"}') or b"") == p.ErrorReply("closed")
    assert d.handle_bytes(p.encode(p.Tick(5))) is None
    assert seen == [p.Bootstrap(), p.Tick(5)]

    unexpected = p.decode(d.handle_bytes(p.encode(p.Done())) or b"")
    assert isinstance(unexpected, p.ErrorReply) and "done" in unexpected.reason
    garbage = p.decode(d.handle_bytes(b"\xff\xfe") or b"")
    assert isinstance(garbage, p.ErrorReply) and "not JSON" in garbage.reason
