"""The end of a run as a user meets it: Ctrl-C once the last interval is
finalized keeps the run ok, the interrupt message says it once, Ctrl-C while
the testbed starts is acknowledged at once (and the start shows its progress:
stage, agents ready, time left), and `testbed
report --producer` refuses ids that are no producer instead of a traceback or
an empty Figure 10."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

from tests.conftest import start_cli
from tests.e2e.conftest import CliRun
from tests.e2e.test_cli_run import SMOKE, cli, env, rows

__all__ = ["env"]  # the fixture, used by name


def wait_for_last_interval(out: Path, last: int, proc: object, timeout: float = 180) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for f in out.glob("*/*/events/finalizations.csv"):
            if any(r["interval"] == str(last) for r in rows(f)):
                return f.parent.parent
        time.sleep(0.02)
    raise AssertionError(f"interval {last} not finalized in time")


def test_ctrl_c_after_the_last_interval_is_finalized_keeps_the_run_ok(
    tmp_path: Path, env: dict[str, str]
) -> None:
    out = tmp_path / "results"
    proc = start_cli("run", str(SMOKE), "--out", str(out), env=env)
    bundle = wait_for_last_interval(out, 56, proc)
    proc.send_signal(signal.SIGINT)  # the agents are finishing: nothing is lost
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    summary = json.loads((bundle / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["exit_code"] == 0
    assert summary["per_interval_kwh"]["56"] > 0
    assert "interrupted (interrupted" not in stdout + stderr
    assert stdout.splitlines()[0].endswith(": ok (" + summary["outcome"]["message"] + ")")


def test_ctrl_c_mid_run_says_interrupted_once(tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / "results"
    long = ["--set", "market.first_interval=40", "--set", "market.last_interval=90"]
    proc = start_cli("run", str(SMOKE), *long, "--out", str(out), env=env)
    wait_for_last_interval(out, 41, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 130
    assert ": interrupted (SIGINT)" in stdout.splitlines()[0]
    assert "testbed run: interrupted: SIGINT" in stderr


def wait_for_log(out: Path, text: str, timeout: float = 180) -> Path:
    """The bundle whose orchestrator.log holds `text` (polled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for log in out.glob("*/*/logs/orchestrator.log"):
            if text in log.read_text(errors="replace"):
                return log.parent.parent
        time.sleep(0.02)
    raise AssertionError(f"{text!r} not in the orchestrator's log in time")


def test_ctrl_c_while_starting_tears_down_at_once_and_the_start_shows_progress(
    tmp_path: Path, env: dict[str, str]
) -> None:
    out = tmp_path / "results"
    proc = start_cli("run", str(SMOKE), "--out", str(out), env=env)
    bundle = wait_for_log(out, "ready: recorder")
    deadline = time.monotonic() + 180
    while not (bundle / "logs" / "dso.log").exists():  # the DSO's tier is starting
        assert time.monotonic() < deadline and proc.poll() is None, "the DSO did not start"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 130, stderr
    lines = stderr.splitlines()
    # the bring-up, stage by stage, with agents ready of all (7: smoke's agents)
    assert "starting the chain, 0/7 agents ready" in lines
    assert "deploying the market contract, 0/7 agents ready" in lines
    assert any(line.startswith("starting recorder (tier 1/5), 0/7 agents ready") for line in lines)
    dso = [line for line in lines if line.startswith("starting dso (tier 2/5), 1/7 agents ready")]
    assert dso and dso[0].endswith(" s left"), lines  # an estimate from the recorder's rate
    heard = "interrupted (SIGINT): stopping the testbed; the bundle keeps what was recorded"
    assert lines.count(heard) == 1 and not any("agents ready in" in line for line in lines)
    assert ": interrupted (SIGINT)" in stdout.splitlines()[0]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["outcome"]["status"] == "interrupted"
    log = (bundle / "logs" / "orchestrator.log").read_text()
    assert "all agents ready" not in log and "teardown: interrupted (SIGINT)" in log


def test_report_refuses_a_producer_that_is_not_one(
    smoke_cli_run: CliRun, tmp_path: Path, env: dict[str, str]
) -> None:
    assert smoke_cli_run.done.returncode == 0, smoke_cli_run.done.stderr
    [made] = list(smoke_cli_run.out.glob("smoke/*"))
    bundle = tmp_path / "results" / "smoke" / made.name
    shutil.copytree(made, bundle)  # a copy: the session's run is shared, and fig10 changes below
    fig10 = bundle / "figures" / "fig10-producer-sales.png"
    before = fig10.read_bytes()
    unknown = cli("report", str(bundle), "--producer", "999", env=env)
    assert unknown.returncode == 2
    assert unknown.stderr == ("--producer 999: no prosumer 999 in this run (producers: 101, 701)\n")
    consumer = cli("report", str(bundle), "--producer", "103", env=env)
    assert consumer.returncode == 2
    assert consumer.stderr == (
        "--producer 103: prosumer 103 is a consumer, it sells nothing (producers: 101, 701)\n"
    )
    assert fig10.read_bytes() == before  # nothing was overwritten
    other = cli("report", str(bundle), "--producer", "701", "--json", env=env)
    assert other.returncode == 0, other.stderr
    assert fig10.read_bytes() != before
