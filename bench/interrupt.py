"""Ctrl-C during start-up: how soon the teardown begins and the command exits.

Runs `testbed run` on the smoke spec (local backend) as a user does, sends SIGINT
when the orchestrator's log reaches a start-up stage (the chain ready, a tier
ready, ...), and measures from the signal to the log's `teardown:` line and to
the command's exit. Prints one JSON object: per stage, each repeat's figures and
the worst of them.

Goal (issue 16): the teardown begins within 1 s of Ctrl-C at any start-up stage.

    .venv/bin/python bench/interrupt.py
    .venv/bin/python bench/interrupt.py --repeats 3 --stage "ready: recorder"
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "topologies" / "smoke.yaml"
# orchestrator.log lines that mark start-up stages (the first: Prometheus started, the
# first thing the bring-up does)
STAGES = ("prometheus:", "chain ready", "contract deployed", "ready: recorder", "ready: clock")
POLL_SECONDS = 0.01
TIMEOUT_SECONDS = 120.0


def orchestrator_log(out: Path) -> Path | None:
    found = list(out.glob("*/*/logs/orchestrator.log"))
    return found[0] if found else None


def wait_for(predicate: Any, proc: subprocess.Popen[bytes], what: str) -> float:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        if proc.poll() is not None and what != "exit":
            raise RuntimeError(f"testbed run exited ({proc.returncode}) before {what}")
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"no {what} within {TIMEOUT_SECONDS:g} s")


def log_has(out: Path, text: str) -> bool:
    log = orchestrator_log(out)
    return log is not None and text in log.read_text(errors="replace")


_LINE = re.compile(r"^(\S+ \S+) \w+ orchestrator: (.*)$")


def teardown_steps(text: str) -> dict[str, float]:
    """Seconds from the `teardown:` line to each later line of orchestrator.log."""
    steps: dict[str, float] = {}
    start: datetime | None = None
    for line in text.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
        if start is None and m.group(2).startswith("teardown:"):
            start = at
        elif start is not None:
            steps[m.group(2)[:60]] = round((at - start).total_seconds(), 3)
    return steps


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def one(stage: str, testbed: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-interrupt-") as tmp:
        out = Path(tmp)
        argv = [str(testbed), "run", str(SPEC), "--out", str(out), "--quiet"]
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=default_sigint,  # a shell without job control leaves SIGINT ignored
        )
        try:
            wait_for(lambda: log_has(out, stage), proc, f"stage {stage!r}")
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            teardown = wait_for(lambda: log_has(out, "teardown:"), proc, "teardown")
            exited = wait_for(lambda: proc.poll() is not None, proc, "exit")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        log = orchestrator_log(out)
        steps = teardown_steps(log.read_text(errors="replace")) if log else {}
        return {
            "to_teardown_s": round(teardown - sent, 3),
            "to_exit_s": round(exited - sent, 3),
            "exit_code": proc.returncode,
            "teardown_steps_s": steps,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--stage", action="append", help="log text to wait for (default: all)")
    args = parser.parse_args()
    testbed = Path(sys.executable).parent / "testbed"
    stages: dict[str, Any] = {}
    for stage in args.stage or STAGES:
        runs = [one(stage, testbed) for _ in range(args.repeats)]
        stages[stage.rstrip(":")] = {
            "runs": runs,
            "worst_to_teardown_s": max(r["to_teardown_s"] for r in runs),
            "worst_to_exit_s": max(r["to_exit_s"] for r in runs),
        }
    worst = max(s["worst_to_teardown_s"] for s in stages.values())
    result = {
        "bench": "interrupt",
        "spec": str(SPEC.relative_to(REPO)),
        "cpus": os.cpu_count(),
        "stages": stages,
        "worst_to_teardown_s": worst,
        "goal_to_teardown_s": 1.0,
        "goal_met": worst < 1.0,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
