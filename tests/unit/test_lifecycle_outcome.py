"""How an interrupted run's outcome reads: the signal once, and ok when the
last interval was already finalized (a campaign still stops on the signal)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.campaign import interrupted
from orchestrator.lifecycle import Interrupted, Outcome, outcome_of, settled
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
