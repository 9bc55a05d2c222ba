"""interrupts_deferred: a Ctrl-C while a unit is being started takes effect once
it is started and recorded (before, an interrupt inside Popen left anvil running
with nobody to stop it: 6 of 8 runs of bench/interrupt.py --stage prometheus)."""

from __future__ import annotations

import os
import signal

import pytest

from orchestrator.lifecycle import Interrupted, interrupts_deferred, signals_as_interrupts


def test_ctrl_c_in_the_block_is_raised_after_it() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("started")  # reached: the interrupt waits for the block
        done.append("recorded")
    assert done == ["started", "recorded"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_in_the_block_is_raised_as_the_run_handles_it() -> None:
    done = []
    with signals_as_interrupts(), pytest.raises(Interrupted) as raised, interrupts_deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        done.append("recorded")
    assert done == ["recorded"]
    assert raised.value.name == "SIGTERM"


def test_a_quiet_block_raises_nothing() -> None:
    with interrupts_deferred():
        value = 1
    assert value == 1
