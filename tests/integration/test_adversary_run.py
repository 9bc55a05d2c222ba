"""A real `python -m agents solver` process with a behaviour_schedule, in lockstep.

The test plays DSO, prosumers and clock (as in test_solver_recorder_chain) and runs an
honest solver in-process after the adversary has answered each solve(t), so the order is
fixed. The adversary's schedule: clock interval 1 infeasible (kind "any": its first kind,
UNKNOWN_OFFER), 2 flood of 3, 3 late by 2 s. Checked: the process switches behaviour at
the scheduled intervals, never becomes the candidate, reports `solved` for every
interval (a late solver reports before it submits, so the clock is not held up), its
late solution arrives after the report and is refused, it exits 0 at `done`, and
behaviour.jsonl in its out_dir says all of that.
"""

from __future__ import annotations

import time
from pathlib import Path

from eth_account import Account

from agents.chain.contract import deploy_market
from agents.chain.events import SolutionAccepted
from agents.chain.node import Anvil, latest_timestamp, set_next_block_timestamp
from agents.chain.tx import Sender
from agents.common.actionlog import read
from agents.common.market import MarketParams
from agents.common.protocol import Solve, Solved
from agents.common.transport import Collector, Publisher
from agents.solver.agent import Solver
from agents.solver.behaviour import Honest
from agents.solver.chainview import SolverChain
from market.types import Kind
from tests.integration.test_solver_recorder_chain import (
    FEEDERS,
    FIRST,
    HOUR,
    LAST,
    PRICE_BUY,
    PRICE_SELL,
    REPORT_TIMEOUT,
    T_CLEAR,
    _config,
    _free_port,
    _key,
    _post_offers,
    _spawn,
    _stop,
    node,  # noqa: F401
)

LATE_SECONDS = 2.0
SCHEDULE = [
    {"from_interval": 1, "until_interval": 2, "behaviour": "infeasible"},
    {"from_interval": 2, "until_interval": 3, "behaviour": "flood", "options": {"count": 3}},
    {"from_interval": 3, "until_interval": None, "behaviour": "late",
     "options": {"delay_seconds": LATE_SECONDS}},
]  # fmt: skip


def _solved(pub: Publisher, pull: Collector, interval: int) -> Solved:
    deadline = time.monotonic() + REPORT_TIMEOUT
    while time.monotonic() < deadline:
        pub.send(Solve(interval))
        msg = pull.recv(0.5)
        if isinstance(msg, Solved) and msg.interval == interval:
            return msg
    raise AssertionError(f"no solved report for interval {interval}")


def test_scheduled_adversary_process_in_lockstep(node: Anvil, tmp_path: Path) -> None:  # noqa: F811
    w3 = node.web3()
    dso = Sender(w3, Account.from_key(_key("dso")))
    epoch = latest_timestamp(w3) + 10
    params = MarketParams(
        first_interval=FIRST,
        last_interval=LAST,
        t_clear=T_CLEAR,
        interval_seconds=HOUR,
        epoch=epoch,
    )
    market = deploy_market(w3, dso, FEEDERS, params)
    _post_offers(w3, market, dso)
    pub_ep, pull_ep = f"tcp://127.0.0.1:{_free_port()}", f"tcp://127.0.0.1:{_free_port()}"
    pub, pull = Publisher(pub_ep), Collector(pull_ep)
    out = tmp_path / "adversary"
    cfg = _config(
        "solver", "adversary", node, market, epoch=epoch, out_dir=str(out),
        clock_pub_endpoint=pub_ep, clock_pull_endpoint=pull_ep,
        private_key=_key("adversary"), engine="highs", behaviour="honest",
        behaviour_schedule=SCHEDULE,
    )  # fmt: skip
    proc = _spawn("solver", cfg, tmp_path / "adversary.json")
    chain = SolverChain.connect(node.url, market.address, 31337, _key("honest"))
    honest = Solver(chain, "highs", Honest(), LAST)
    reports: dict[int, tuple[Solved, float]] = {}
    try:
        for t in range(FIRST - T_CLEAR, LAST - T_CLEAR + 1):
            if t == LAST - T_CLEAR:  # new offers for the last interval: worth submitting late
                for kind, energy, price in (
                    (Kind.SELL, 700, PRICE_SELL),
                    (Kind.BUY, 700, PRICE_BUY),
                ):
                    anon = Sender(w3, Account.from_key(_key(f"late-{kind.name}")))
                    market.add_energy(dso, anon.address, 1, kind, energy, LAST, LAST).wait()
                    market.add_financial_balance(dso, anon.address, energy * price).wait()
                    market.post_offer(anon, kind, energy, LAST, LAST, price).wait()
            reports[t] = (_solved(pub, pull, t), time.time())
            honest.step(t + T_CLEAR)
            set_next_block_timestamp(w3, params.clock_end(t))
            market.finalize(dso, gas=5_000_000).wait()
        deadline = time.monotonic() + REPORT_TIMEOUT
        while not [r for r in read(out / "behaviour.jsonl") if r["behaviour"] == "late"
                   and r["action"] == "submit"]:  # fmt: skip
            assert time.monotonic() < deadline and proc.poll() is None, "no late submission"
            time.sleep(0.1)
        assert _stop(proc, pub, tmp_path / "solver.log") == 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        pub.close()
        pull.close()
        chain.close()

    records = read(out / "behaviour.jsonl")
    switches = [(r["interval"], r["behaviour"]) for r in records if r["action"] == "switch"]
    assert switches == [(1, "infeasible"), (2, "flood"), (3, "late")]
    submits = [
        (r["interval"], r["behaviour"], r["result"]) for r in records if r["action"] == "submit"
    ]
    assert submits[:4] == [
        (1, "infeasible", "reverted: UnknownOffer"),
        (2, "flood", "reverted: NotBetter"),
        (2, "flood", "reverted: NotBetter"),
        (2, "flood", "reverted: NotBetter"),
    ]
    ((interval, _, result),) = submits[4:]
    # finalized meanwhile (the usual case) or, if the clock was slower, beaten by the honest one
    assert interval == 3 and result in ("reverted: FinalizedInterval", "reverted: NotBetter")
    late = next(r for r in records if r["behaviour"] == "late" and r["action"] == "submit")
    solved, received = reports[3]
    assert not solved.submitted  # reported before submitting
    assert received <= late["time"] and late["time"] >= late["decided_at"] + LATE_SECONDS
    # the adversary never became the candidate; the honest solver did
    assert honest.chain.signer is not None
    events = market.events(0, "latest", [SolutionAccepted])
    submitters = {e.submitter.lower() for e in events if isinstance(e, SolutionAccepted)}
    assert submitters == {honest.chain.signer.address.lower()}
