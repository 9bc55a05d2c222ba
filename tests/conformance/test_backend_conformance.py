"""One suite, every backend (tests/conformance/conftest.py: BACKENDS).

On each backend, with real agents, chain and solver:
- a lockstep smoke run finalizes exactly what `market.replay` finalizes (trade
  for trade, to the Wh, interval by interval) and what the local backend does;
- an agent killed from outside ends the run with exit 3 naming it, a clean
  teardown, and a bundle that keeps what was recorded;
- Ctrl-C (SIGINT to `testbed run`) ends it with 130, keeps the bundle and
  leaves nothing behind;
- after SIGKILL of the orchestrator, `testbed clean` removes exactly what the
  run left (and nothing of other runs);
- a `faults:` kill and restart of a prosumer host ends with exit 0: the host
  trades again, the market loses only the interval it missed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from orchestrator import run as run_module
from orchestrator.run import RunOptions, RunResult, run
from tests.conformance.oracle import (
    SMOKE,
    SMOKE_LAST,
    finalizations,
    finalized_by_content,
    finalized_wh,
    injector_rows,
    replayed,
    rows,
    smoke_spec,
)
from tests.conformance.targets import Target
from tests.conftest import REPO, start_cli
from tests.integration.docker_support import bundle_of, wait_for

# smoke over a longer window: surely still going when the test interrupts it
LONG = ["market.first_interval=40", "market.last_interval=90"]
# smoke.yaml's battery producer: its multi-interval offers span a host's restart
BATTERY_SELLER = 701
RUN_SECONDS = 300.0  # generous: a loaded 2-core machine, boards installing wheels
BUNDLE_FILES = ("spec.yaml", "manifest.json", "summary.json", "logs/orchestrator.log")


def assert_nothing_left(backend: Target, run_id: str) -> None:
    """Nothing of the run on the backend, and no state of it kept locally."""
    assert backend.leftovers(run_id) == set()
    assert not list(backend.state.glob(f"*/{run_id}")), "run state left behind"


def wait_until_nothing_left(backend: Target, run_id: str) -> None:
    wait_for("the run's leftovers to go", lambda: not backend.leftovers(run_id), timeout=60)
    assert_nothing_left(backend, run_id)


def assert_bundle_kept(result: RunResult) -> None:
    """The bundle has the run's facts and tells how it ended."""
    for name in BUNDLE_FILES:
        assert (result.bundle / name).is_file(), name
    manifest = json.loads((result.bundle / "manifest.json").read_text())
    assert manifest["outcome"]["exit_code"] == result.exit_code
    summary = json.loads((result.bundle / "summary.json").read_text())
    assert summary["status"] == result.outcome.status
    assert summary["exit_code"] == result.exit_code


def assert_finalized_what_replay_and(reference: RunResult, finalized: RunResult) -> None:
    """`finalized` (a smoke run) finalized what market.replay and the `reference`
    run finalize: trade for trade, to the Wh, interval by interval."""
    per_interval, expected = replayed(SMOKE, [], clip=True)
    trades = finalized_by_content(finalized.bundle / "events", SMOKE_LAST)
    assert sum(trades.values()) > 0
    assert trades == expected
    assert trades == finalized_by_content(reference.bundle / "events", SMOKE_LAST)
    summary = finalized.summary
    assert summary["total_energy_traded_wh"] == sum(per_interval.values())
    assert summary["per_interval_kwh"] == {
        str(t): wh / 1000 for t, wh in sorted(per_interval.items())
    }
    assert summary["total_energy_traded_wh"] == reference.summary["total_energy_traded_wh"]
    assert summary["per_interval_kwh"] == reference.summary["per_interval_kwh"]


def test_smoke_run_equals_replay_and_the_local_backend(
    backend: Target,
    smoke_results: dict[str, RunResult],
    local_smoke: Callable[[], RunResult],
    tmp_path: Path,
) -> None:
    options = RunOptions(spec=SMOKE, overrides=backend.smoke_overrides, out=tmp_path / "results")
    result = run(options)
    assert result.outcome.status == "ok", result.outcome.message
    assert result.exit_code == 0
    smoke_results.setdefault(backend.name, result)
    assert_finalized_what_replay_and(local_smoke(), finalized=result)
    summary = result.summary
    # every agent ended by itself with 0 and left a log, its last metrics on exit
    assert {p["exit_code"] for p in summary["processes"].values()} == {0}
    assert set(backend.hosts) <= set(summary["processes"])
    for agent in summary["processes"]:
        assert (result.bundle / "logs" / f"{agent}.log").stat().st_size > 0, agent
    assert (result.bundle / "logs" / "chain.log").stat().st_size > 0
    for host in backend.hosts:
        assert (result.bundle / "agents" / host / "metrics.prom").is_file(), host
    posts = ("postOffer", "postSignedOffer")  # the latter with the DSO's signed grant
    assert sum(summary["gas"].get(f, {}).get("count", 0) for f in posts) == summary["offers"]
    manifest = json.loads((result.bundle / "manifest.json").read_text())
    assert manifest["teardown_errors"] == []
    assert_bundle_kept(result)
    backend.check_smoke(result)
    assert_nothing_left(backend, result.run_id)


def run_in_thread(options: RunOptions) -> tuple[threading.Thread, dict[str, RunResult]]:
    box: dict[str, RunResult] = {}
    thread = threading.Thread(target=lambda: box.update(result=run(options)), daemon=True)
    thread.start()
    return thread, box


def test_agent_crash_ends_the_run_with_exit_3_and_a_clean_teardown(
    backend: Target, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    options = RunOptions(spec=SMOKE, overrides=[*backend.overrides, *LONG], out=out)
    thread, box = run_in_thread(options)

    def started() -> Path | None:
        if not thread.is_alive():
            raise AssertionError(f"the run ended early: {box['result'].outcome.message}")
        bundle = bundle_of(out)
        return bundle if finalizations(bundle) >= 1 else None

    run_id = wait_for("the first finalized interval", started, timeout=RUN_SECONDS).name
    assert backend.leftovers(run_id), "the live run shows nothing running"
    victim = backend.hosts[0]
    backend.crash(run_id, victim)
    thread.join(timeout=RUN_SECONDS)
    assert not thread.is_alive(), "the run did not stop after its agent was killed"
    result = box["result"]
    assert result.exit_code == run_module.EXIT_AGENT_FAILED
    assert result.outcome.status == "agent_failed"
    message = result.outcome.message
    assert message.startswith(f"{victim}: killed by signal 9"), message
    # the tail of its log, pulled from wherever it ran, says who it was
    assert f"--- last lines of {victim}'s log ---" in message
    assert f"prosumer/{victim}" in message
    assert result.summary["processes"][victim]["exit_code"] == -signal.SIGKILL
    # what was recorded before the crash is kept; the recorder stopped cleanly
    assert result.summary["offers"] > 0
    assert rows(result.bundle / "events" / "finalizations.csv")
    assert result.summary["processes"]["recorder"]["exit_code"] == 0
    assert_bundle_kept(result)
    assert_nothing_left(backend, run_id)


def start_long_run(backend: Target, out: Path, logs: Path) -> subprocess.Popen[str]:
    """`testbed run` of the long smoke on `backend`, its output to files (a pipe
    nobody reads while waiting could fill up and stall it)."""
    argv = ["run", str(SMOKE), "--out", str(out)]
    for line in [*backend.overrides, *LONG]:
        argv += ["--set", line]
    env = {**os.environ, "TESTBED_STATE_DIR": str(backend.state)}
    with (logs / "stdout").open("w") as stdout, (logs / "stderr").open("w") as stderr:
        return start_cli(*argv, env=env, stdout=stdout, stderr=stderr)


def wait_first_finalized(proc: subprocess.Popen[str], out: Path, logs: Path) -> Path:
    def started() -> Path | None:
        if proc.poll() is not None:
            tail = (logs / "stderr").read_text()[-3000:]
            raise AssertionError(f"testbed run ended early ({proc.returncode}):\n{tail}")
        bundle = bundle_of(out)
        return bundle if finalizations(bundle) >= 1 else None

    bundle: Path = wait_for("the first finalized interval", started, timeout=RUN_SECONDS)
    return bundle


def test_ctrl_c_keeps_the_bundle_and_leaves_nothing_behind(backend: Target, tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = start_long_run(backend, out, tmp_path)
    try:
        bundle = wait_first_finalized(proc, out, tmp_path)
        assert backend.leftovers(bundle.name), "the live run shows nothing running"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=RUN_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = (tmp_path / "stderr").read_text()
    assert proc.returncode == run_module.EXIT_INTERRUPTED, stderr[-3000:]
    assert "interrupted" in stderr
    assert_nothing_left(backend, bundle.name)
    summary = json.loads((bundle / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["exit_code"] == 130
    assert summary["offers"] > 0
    recorded = rows(bundle / "events" / "finalizations.csv")
    assert 1 <= len(recorded) < 51  # what was recorded, not the whole window
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["outcome"]["status"] == "interrupted"
    assert manifest["outcome"]["exit_code"] == 130
    for name in BUNDLE_FILES:
        assert (bundle / name).is_file(), name
    for agent in ("chain", "dso", "clock", "recorder", "solver-1", *backend.hosts):
        assert (bundle / "logs" / f"{agent}.log").stat().st_size > 0, agent


def cli(backend: Target, *args: str) -> str:
    """`testbed ARGS` with the backend's state directory: its stdout."""
    env = {**os.environ, "TESTBED_STATE_DIR": str(backend.state)}
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=RUN_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def names(what: str, item: str) -> bool:
    """A line of `testbed clean`'s report (`what`) names the leftover `item`."""
    return what == item or what.startswith(f"{item}:")


def named(item: str, report: list[dict[str, Any]], actions: tuple[str, ...] = ()) -> bool:
    """`item` is in the report (with one of `actions`, if given)."""
    ok = actions or {r["action"] for r in report}
    return any(names(r["what"], item) and r["action"] in ok for r in report)


def test_clean_after_sigkill_removes_exactly_what_the_run_left(
    backend: Target, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    with backend.bystanders():
        proc = start_long_run(backend, out, tmp_path)
        try:
            run_id = wait_first_finalized(proc, out, tmp_path).name
        finally:
            proc.kill()  # SIGKILL: the orchestrator dies without any teardown
            proc.wait()
        left = backend.leftovers(run_id)
        for kind in backend.left_kinds:
            assert any(kind in item for item in left), f"no {kind!r} left: {sorted(left)}"
        report = json.loads(cli(backend, "clean", "--json"))["cleaned"]
        ours = [r for r in report if r["run_id"] == run_id]
        # the chain never stops by itself (agents may finish the run on their own)
        chain = [item for item in left if item.rstrip(")").endswith("chain")]
        assert chain and all(named(i, ours, ("killed", "removed")) for i in chain), ours
        # everything the run left is named, and nothing clean touched of it was not left
        assert {item for item in left if not named(item, ours)} == set()
        acted = [r["what"] for r in ours if r["action"] not in ("removed state", "marked killed")]
        assert acted and all(any(names(w, i) for i in left) for w in acted)
        assert {r["run_id"] for r in report} == {run_id}, report
        wait_until_nothing_left(backend, run_id)
        # the bundle says how the run ended: killed, not "incomplete"
        assert any(r["action"] == "marked killed" for r in ours), ours
        [entry] = json.loads(cli(backend, "results", str(out), "--json"))
        assert entry["status"] == "killed", entry
    again = cli(backend, "clean")
    assert again.startswith("nothing to clean"), again


def host_of(prosumer: int, backend: Target) -> str:
    """The host `testbed render` places `prosumer` of smoke.yaml on, on `backend`."""
    argv = ["render", str(SMOKE)]
    for line in backend.overrides:
        argv += ["--set", line]
    plan = yaml.safe_load(cli(backend, *argv))
    return next(h for h, where in plan["hosts"].items() if prosumer in where["prosumers"])


def test_faults_kill_and_restart_a_prosumer_host(backend: Target, tmp_path: Path) -> None:
    # killed before tick(50), restarted before tick(52): its offers due at ticks 50
    # and 51 (L = 3: deliveries 52 and 53) are posted only at tick 52, too late for
    # 52 (finalized at the end of clock interval 51) but in time for 53, from new
    # addresses; the DSO refuses what it had already issued.
    host = host_of(BATTERY_SELLER, backend)
    faults = [
        {"at_interval": 50, "target": host, "action": "kill"},
        {"at_interval": 52, "target": host, "action": "restart"},
    ]
    spec = smoke_spec(tmp_path, [{"name": "solver-1", "engine": "highs"}], faults)
    result = run(RunOptions(spec=spec, overrides=backend.overrides, out=tmp_path / "results"))
    assert result.exit_code == 0, result.outcome.message
    summary = result.summary
    faults_summary = summary["faults"]
    assert faults_summary["crashed"] == [] and faults_summary["down_at_end"] == []
    assert faults_summary["actions_applied"] == 2
    assert [(r["action"], r["unit"], r["ok"]) for r in injector_rows(result.bundle)] == [
        ("kill", host, True),
        ("restart", host, True),
    ]
    assert summary["processes"][host]["exit_code"] == 0
    finalized = finalized_wh(result.bundle)
    expected, _ = replayed(SMOKE, [], clip=False)  # the same market, without the fault
    assert sorted(finalized) == list(range(49, 57))
    assert all(finalized[t] == expected[t] for t in (49, 50, 51))  # before the kill
    assert finalized[52] < expected[52]  # the host's offers for 52 are missing
    assert all(finalized[t] == expected[t] for t in range(53, 57))  # it trades again
    log = (result.bundle / "logs" / f"{host}.log").read_text()
    assert log.count("prosumers, ") == 2  # started twice
    assert "failedWithdrawal" in log and "nonce too low" not in log
    # one address per offer, across the restart too (reused ones would link offers)
    posters = [r["poster"] for r in rows(result.bundle / "events" / "offers.csv")]
    assert len(set(posters)) == len(posters)
    assert_bundle_kept(result)
    assert_nothing_left(backend, result.run_id)
