"""How an interrupted run's outcome reads: the signal once, and ok when the
last interval was already finalized (a campaign still stops on the signal)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.campaign import interrupted
from orchestrator.lifecycle import Interrupted, Outcome, degraded, outcome_of, settled
from orchestrator.results.dropped import DROPPED_FILE, describe, dropped_offers
from orchestrator.run import RunResult

HEADER = "interval,candidate_id,trades,energy_wh,block,time,block_timestamp,tx_hash\n"


def test_the_signal_is_named_once() -> None:
    assert outcome_of(KeyboardInterrupt()) == Outcome("interrupted", 130, "SIGINT", "SIGINT")
    assert outcome_of(Interrupted(15)) == Outcome("interrupted", 143, "SIGTERM", "SIGTERM")


def test_an_interrupt_after_the_last_interval_is_an_ok_run(tmp_path: Path) -> None:
    stopped = outcome_of(KeyboardInterrupt())
    assert settled(stopped, tmp_path, 56) == stopped  # no finalizations.csv yet
    (tmp_path / "finalizations.csv").write_text(HEADER + "55,1,2,300,7,1.0,2,0xa\n")
    assert settled(stopped, tmp_path, 56) == stopped  # 56 is not finalized
    with (tmp_path / "finalizations.csv").open("a") as f:
        f.write("56,2,1,100,8,2.0,3,0xb\n")
    ok = settled(stopped, tmp_path, 56)
    assert ok == Outcome(
        "ok", 0, "last interval finalized (then SIGINT while the agents finished)", "SIGINT"
    )
    failed = Outcome("agent_failed", 3, "dso: exited with 1")
    assert settled(failed, tmp_path, 56) == failed  # only interrupts settle
    # a campaign (sweep) still stops after the run the user interrupted
    assert interrupted(RunResult(tmp_path, "r", ok, {}))
    assert not interrupted(RunResult(tmp_path, "r", Outcome("ok", 0, "done"), {}))


def test_dropped_offers_degrade_an_ok_run_unless_faults_were_scheduled(tmp_path: Path) -> None:
    host = tmp_path / "agents" / "prosumers-2"
    host.mkdir(parents=True)
    (host / DROPPED_FILE).write_text(
        '{"interval": 44, "reason": "dsoUnreachable", "offers": 1200, "detail": "x"}\n'
        '{"interval": 45, "reason": "reverted", "offers": 1, "detail": "y"}\n{"interv'
    )  # the last line cut short by a kill
    dropped = dropped_offers(tmp_path)
    assert dropped == {
        "total": 1201,
        "by_reason": {"dsoUnreachable": 1200, "reverted": 1},
        "by_host": {"prosumers-2": {"dsoUnreachable": 1200, "reverted": 1}},
    }
    lost = describe(dropped)
    assert lost == (
        "1,201 offers dropped: prosumers-2 1,200 (DSO did not answer the withdraw "
        "request), prosumers-2 1 (postOffer reverted)"
    )
    ok = Outcome("ok", 0, "last interval finalized")
    assert degraded(ok, lost, faults_scheduled=False) == Outcome(
        "degraded", 5, f"last interval finalized, but {lost}: the run's numbers are incomplete"
    )
    assert degraded(ok, lost, faults_scheduled=True) == Outcome(
        "ok", 0, f"last interval finalized; {lost} (during scheduled faults)"
    )
    assert degraded(ok, describe(dropped_offers(tmp_path / "clean")), False) == ok
    failed = Outcome("agent_failed", 3, "dso: exited with 1")
    assert degraded(failed, lost, faults_scheduled=False) == failed
