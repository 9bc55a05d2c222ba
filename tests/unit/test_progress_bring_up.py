"""The bring-up on the terminal: which stage or tier is starting, agents ready of
all, an estimate of the time left from the rate so far; one status line on a
TTY, one line per stage otherwise; a Ctrl-C is acknowledged at once."""

from __future__ import annotations

import io
from itertools import pairwise
from pathlib import Path

import pytest

from orchestrator.extensions import RunProgress
from orchestrator.hooks import BringUp, Events
from orchestrator.lifecycle import Outcome
from orchestrator.progress import StatusLine, bring_up_line, eta_seconds

STEPS = (  # what a run of 7 agents in 5 tiers fires while it starts
    BringUp("chain", 0, 7),
    BringUp("contract", 0, 7),
    BringUp("recorder", 0, 7, 0.0, 1, 5),
    BringUp("recorder", 0, 7, 0.4, 1, 5),
    BringUp("recorder", 1, 7, 1.0, 1, 5),
    BringUp("dso", 1, 7, 1.0, 2, 5),
    BringUp("dso", 2, 7, 2.0, 2, 5),
    BringUp("prosumer", 4, 7, 4.0, 5, 5),
    BringUp("prosumer", 7, 7, 6.5, 5, 5),
)


def test_eta_follows_the_rate_so_far() -> None:
    assert eta_seconds(0, 7, 3.0) is None  # no agent ready yet: no rate
    assert eta_seconds(2, 7, None) is None
    assert eta_seconds(2, 7, 2.0) == pytest.approx(5.0)  # 1 s per agent, 5 to go
    assert eta_seconds(7, 7, 6.0) == 0.0


def test_bring_up_line_names_the_stage_the_count_and_the_estimate() -> None:
    assert bring_up_line("chain", 0, 7, None) == "starting the chain, 0/7 agents ready"
    assert bring_up_line("contract", 0, 7, None, 0, 0).startswith("deploying the market contract")
    assert bring_up_line("dso", 2, 8, 2.0, 2, 5) == (
        "starting dso (tier 2/5), 2/8 agents ready, 2.0 s, ~6 s left"
    )
    assert "left" not in bring_up_line("prosumer", 8, 8, 6.0, 5, 5)


def test_status_line_pads_over_a_longer_line_and_ends_once() -> None:
    out = io.StringIO()
    line = StatusLine(out)
    line.end()  # nothing drawn: nothing written
    line.draw("long text")
    line.draw("short")
    line.end()
    line.end()
    assert out.getvalue() == "\rlong text\rshort    \n"


def fire(progress: RunProgress, steps: tuple[BringUp, ...]) -> None:
    events = Events(lambda what, exc: None)
    progress.attach(events)
    for step in steps:
        events.bringing_up.fire(step)


def test_tty_redraws_one_line_then_says_all_ready(tmp_path: Path) -> None:
    out = io.StringIO()
    progress = RunProgress(tmp_path, out, last_interval=3, tty=True)
    fire(progress, STEPS)
    progress.start()  # all agents ready: the market's status line follows below
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one line, redrawn, then kept
    assert "\rstarting dso (tier 2/5), 2/7 agents ready, 2.0 s, ~5 s left" in text
    drawn = text.rstrip("\n").split("\r")[1:]
    assert len(drawn) == len(STEPS) + 1
    assert all(len(now) >= len(was.rstrip()) for was, now in pairwise(drawn))  # padded
    assert drawn[-2].rstrip() == "starting prosumer (tier 5/5), 7/7 agents ready, 6.5 s"
    assert drawn[-1].rstrip() == "all 7 agents ready in 6.5 s"


def test_pipe_gets_one_line_per_stage(tmp_path: Path) -> None:
    out = io.StringIO()
    progress = RunProgress(tmp_path, out, last_interval=3, tty=False)
    fire(progress, STEPS)
    progress.start()
    assert out.getvalue().splitlines() == [
        "starting the chain, 0/7 agents ready",
        "deploying the market contract, 0/7 agents ready",
        "starting recorder (tier 1/5), 0/7 agents ready, 0.0 s",
        "starting dso (tier 2/5), 1/7 agents ready, 1.0 s, ~6 s left",
        "starting prosumer (tier 5/5), 4/7 agents ready, 4.0 s, ~3 s left",
        "all 7 agents ready in 6.5 s",
    ]


@pytest.mark.parametrize("tty", [True, False])
def test_ctrl_c_while_starting_ends_the_line_and_says_so(tmp_path: Path, tty: bool) -> None:
    out = io.StringIO()
    progress = RunProgress(tmp_path, out, last_interval=3, tty=tty)
    fire(progress, STEPS[:6])
    progress.close(Outcome("interrupted", 130, "SIGINT", "SIGINT"))
    last = out.getvalue().splitlines()[-2:]
    assert last[0].strip().startswith("starting dso (tier 2/5), 1/7 agents ready")
    assert last[1] == (
        "interrupted (SIGINT): stopping the testbed; the bundle keeps what was recorded"
    )
    assert out.getvalue().endswith("recorded\n")


def test_a_run_that_ends_normally_prints_no_interrupt_line(tmp_path: Path) -> None:
    out = io.StringIO()
    progress = RunProgress(tmp_path, out, last_interval=3, tty=False)
    fire(progress, STEPS)
    progress.start()
    progress.close(Outcome("ok", 0, "last interval finalized"))
    assert "interrupted" not in out.getvalue()
