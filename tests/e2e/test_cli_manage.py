"""Run management as a user meets it, on real runs of the local backend:
`init` writes a spec from a dataset, `ps` lists the run while it goes on,
`logs -f` follows an agent until the run ends, `results prune` keeps a running
run's bundle, `rerun` repeats a bundle and refuses a changed dataset, and
`completion bash` completes in a real bash."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from orchestrator.results.bundle import Bundle
from tests.conftest import require_tool, start_cli
from tests.e2e.test_cli_run import cli

DEADLINE_SECONDS = 240.0  # a smoke-sized run on a busy 2-core machine takes well under
BLOCK_SECONDS = 0.5  # the watched run's (and its reruns') block time


@dataclass
class Watched:
    """One run of an `init`-written spec and what was seen while it went on."""

    env: dict[str, str]
    spec: Path
    traces: Path
    out: Path
    bundle: Path
    ps_rows: list[dict[str, object]]
    followed: str
    follow_code: int | None
    follow_lag: float  # seconds between the run's end and `logs -f` ending
    prune_dry: dict[str, object]
    run_stdout: str


def poll(what: str, check: object, timeout: float = DEADLINE_SECONDS) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()  # type: ignore[operator]
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


def ok(*args: str, env: dict[str, str]) -> str:
    done = cli(*args, env=env)
    assert done.returncode == 0, f"testbed {' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    require_tool("anvil")
    root = tmp_path_factory.mktemp("manage")
    env = {**os.environ, "TESTBED_STATE_DIR": str(root / "state")}
    traces, out = root / "traces", root / "results"
    ok("dataset", "synth", "--seed", "7", "--battery", "--out", str(traces), env=env)
    ok("init", str(root / "exp"), "--name", "managed", "--prosumers", "6",
       "--feeders", "1,7", "--dataset", str(traces), env=env)  # fmt: skip
    spec = root / "exp" / "managed.yaml"
    # lockstep finalizes 8 intervals in about a second on automine; a block every
    # BLOCK_SECONDS (several blocks per interval) keeps the run going long enough for
    # ps to see it progress (rerun keeps it too)
    slow = ["--set", f"chain.block_time_seconds={BLOCK_SECONDS}"]
    run = start_cli("run", str(spec), *slow, "--out", str(out), env=env)
    try:
        rows = poll("testbed ps lists the run", lambda: _ps(env))
        assert isinstance(rows, list)
        bundle = Path(str(rows[0]["bundle"]))
        run_id = str(rows[0]["run_id"])  # a live run's id finds its bundle
        follow = start_cli("logs", run_id, "recorder", "-f", env=env)
        prune = json.loads(ok("results", "prune", str(out), "--keep", "0", "--dry-run",
                              "--json", env=env))  # fmt: skip
        rows += poll("testbed ps shows intervals finalized", lambda: _finalized(env, run))
        run_stdout, _ = run.communicate(timeout=DEADLINE_SECONDS)
        ended = time.monotonic()
        followed, _ = follow.communicate(timeout=60)
        lag = time.monotonic() - ended
        assert run.returncode == 0, run_stdout
        yield Watched(env, spec, traces, out, bundle, rows, followed, follow.returncode, lag,
                      prune, run_stdout)  # fmt: skip
    finally:
        for proc in (run,):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _finalized(env: dict[str, str], run: subprocess.Popen[str]) -> list[dict[str, object]]:
    """ps's row once it shows an interval finalized ([] while none is; the run
    must not have ended before)."""
    assert run.poll() is None, "the run ended before ps showed it finalize an interval"
    return [r for r in _ps(env) if isinstance(r["finalized"], int) and r["finalized"] > 0]


def _ps(env: dict[str, str]) -> list[dict[str, object]]:
    rows = json.loads(ok("ps", "--json", env=env))
    return [r for r in rows if r.get("bundle")]


def test_init_writes_a_commented_validated_spec_from_the_feeders_asked(tmp_path: Path) -> None:
    env = dict(os.environ)
    done = cli("init", str(tmp_path), "--prosumers", "12", "--feeders", "1,7,8", env=env)
    assert done.returncode == 0, done.stderr
    spec = tmp_path / "experiment.yaml"
    text = spec.read_text()
    assert "Prosumer ids are feeder * 100 + n" in text
    resolved = ok("validate", str(spec), "--json", env=env)
    assert json.loads(resolved)["prosumers"] == 12
    ids = [int(i) for i in text.split("prosumers: [")[1].split("]")[0].split(",")]
    assert len(ids) == 12 and {i // 100 for i in ids} == {1, 7, 8}
    assert {101, 701, 801} <= set(ids)  # each feeder's producers come first
    again = cli("init", str(tmp_path), env=env)
    assert again.returncode == 2 and "exists (--force" in again.stderr
    too_many = cli("init", str(tmp_path / "b"), "--prosumers", "40", "--feeders", "1,7,8", env=env)
    assert too_many.returncode == 2
    assert "feeders 1, 7, 8 have 36 prosumers" in too_many.stderr
    unknown = cli("init", str(tmp_path / "c"), "--feeders", "1,12", env=env)
    assert unknown.returncode == 2 and "feeder * 100 + n" in unknown.stderr
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_ps_lists_the_live_run_with_its_pid_and_progress(watched: Watched) -> None:
    first, later = watched.ps_rows  # as soon as listed, then once it finalized
    manifest = json.loads((watched.bundle / "manifest.json").read_text())
    for row in (first, later):
        assert row["run_id"] == manifest["run_id"] and row["spec"] == "managed"
        assert row["backend"] == "local" and row["alive"] is True
        assert row["pid"] == manifest["orchestrator"]["pid"]
        assert row["intervals"] == 8 and row["bundle"] == str(watched.bundle)
    assert isinstance(first["finalized"], int) and isinstance(later["finalized"], int)
    assert 0 <= first["finalized"] <= later["finalized"] and 1 <= later["finalized"] <= 8
    assert json.loads(ok("ps", "--json", env=watched.env)) == []  # the run is over
    assert "no runs going on" in ok("ps", env=watched.env)


def test_logs_follow_stops_when_the_run_ends_with_the_whole_log(watched: Watched) -> None:
    assert watched.follow_code == 0
    assert watched.followed == (watched.bundle / "logs" / "recorder.log").read_text()
    assert watched.follow_lag < 30
    listing = ok("logs", str(watched.bundle), env=watched.env)
    assert "recorder" in listing and "chain" in listing
    dso = ok("logs", str(watched.bundle), "dso", env=watched.env)
    assert dso == (watched.bundle / "logs" / "dso.log").read_text()
    host = cli("logs", str(watched.bundle), "701", env=watched.env)  # a prosumer id
    assert host.returncode == 0 and host.stderr.startswith("prosumer 701 runs on prosumers-")
    agent = host.stderr.split()[-1]
    assert host.stdout == (watched.bundle / "logs" / f"{agent}.log").read_text()
    assert cli("logs", str(watched.bundle), "1299", env=watched.env).returncode == 2
    unknown = cli("logs", str(watched.bundle), "nobody", env=watched.env)
    assert unknown.returncode == 2 and "prosumers-01" in unknown.stderr


def test_prune_never_removes_a_running_runs_bundle(watched: Watched) -> None:
    kept = watched.prune_dry["kept_running"]
    assert isinstance(kept, list) and [b["path"] for b in kept] == [str(watched.bundle)]
    assert watched.bundle.is_dir()


def test_rerun_repeats_the_bundle_and_refuses_a_changed_dataset(watched: Watched) -> None:
    first = json.loads((watched.bundle / "summary.json").read_text())
    manifest = json.loads((watched.bundle / "manifest.json").read_text())
    assert manifest["dataset"]["content_hash"].startswith("sha256:")
    out = watched.out.parent / "rerun"
    again = cli("rerun", str(watched.bundle), "--quiet", "--json", "--out", str(out),
                env=watched.env)  # fmt: skip
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["run_id"] != first["run_id"] and second["spec"] == "managed"
    rerun_spec = yaml.safe_load((Path(second["bundle"]) / "spec.yaml").read_text())
    assert rerun_spec["chain"]["block_time_seconds"] == BLOCK_SECONDS  # the original --set
    assert second["per_interval_kwh"] == first["per_interval_kwh"]  # lockstep: the same trades
    # the new bundle names the one it repeats: manifest, `results`, report
    rerun_of = json.loads((Path(second["bundle"]) / "manifest.json").read_text())["rerun_of"]
    assert rerun_of == {"run_id": first["run_id"], "spec": "managed",
                        "bundle": str(watched.bundle.resolve())}  # fmt: skip
    listed = json.loads(ok("results", str(out), "--json", env=watched.env))
    assert [b["rerun_of"] for b in listed] == [first["run_id"]]
    assert f"(rerun of {first['run_id']})" in ok("results", str(out), env=watched.env)
    report = (Path(second["bundle"]) / "report.md").read_text()
    assert f"Rerun of | managed / {first['run_id']}" in report
    trace = watched.traces / "prosumer_701.csv"
    trace.write_text(trace.read_text() + "96,96,1.5\n")  # one more offer
    refused = cli("rerun", str(watched.bundle), "--out", str(out), env=watched.env)
    assert refused.returncode == 2
    assert "the dataset" in refused.stderr and "changed" in refused.stderr
    assert "--force" in refused.stderr
    forced = cli("rerun", str(watched.bundle), "--force", "--quiet", "--json", "--out", str(out),
                 "--set", "market.last_interval=50", env=watched.env)  # fmt: skip
    assert forced.returncode == 0, forced.stderr
    assert sorted(json.loads(forced.stdout)["per_interval_kwh"], key=int)[-1] == "50"


def _bundle(out: Path, spec: str, run_id: str, started: float, status: str | None) -> Path:
    bundle = Bundle.create(out, spec, run_id)
    manifest: dict[str, object] = {"run_id": run_id, "spec_name": spec, "started": started}
    if status is not None:
        manifest["outcome"] = {"status": status, "exit_code": 0 if status == "ok" else 3}
    bundle.write_manifest(manifest)
    return bundle.path


def test_prune_keep_older_than_and_failed_combine(tmp_path: Path) -> None:
    out, env, now = tmp_path / "results", dict(os.environ), time.time()
    day = 86400
    old_ok = _bundle(out, "a", "20260101T000000Z-0001", now - 9 * day, "ok")
    old_bad = _bundle(out, "a", "20260102T000000Z-0002", now - 8 * day, "agent_failed")
    new_ok = _bundle(out, "a", "20261201T000000Z-0003", now - 60, "ok")
    other = _bundle(out, "b", "20260101T000000Z-0004", now - 9 * day, "killed")
    me = psutil.Process()  # a bundle whose orchestrator (this process) is alive
    live = _bundle(out, "b", "20260103T000000Z-0005", now - 9 * day, None)
    Bundle(live).update_manifest(
        orchestrator={"host": os.uname().nodename, "pid": me.pid, "create_time": me.create_time()}
    )
    listed = json.loads(ok("results", "prune", str(out), "--older-than", "7d", "--failed",
                           "--dry-run", "--json", env=env))  # fmt: skip
    assert [b["path"] for b in listed["removed"]] == [str(old_bad), str(other)]
    assert [b["path"] for b in listed["kept_running"]] == [str(live)]
    assert all(p.is_dir() for p in (old_ok, old_bad, new_ok, other, live))
    text = ok("results", "prune", str(out), "--keep", "1", env=env)
    assert text.splitlines()[-1] == "removed 3 bundle(s)"  # the newest of a and of b stay
    assert {p.name for p in out.glob("*/*")} == {new_ok.name, live.name}
    text = ok("results", "prune", str(out), "--keep", "0", env=env)
    assert text.splitlines()[-1] == "removed 1 bundle(s), kept 1 running"
    assert [p.name for p in out.iterdir()] == ["b"]  # a's folder went with its last bundle
    bad = cli("results", "prune", str(out), env=env)
    assert bad.returncode == 2 and "--keep N" in bad.stderr
    age = cli("results", "prune", str(out), "--older-than", "7 days", env=env)
    assert age.returncode == 2 and "no duration" in age.stderr


def test_completion_bash_completes_commands_in_a_real_bash() -> None:
    bash = shutil.which("bash")
    assert bash is not None
    script = ok("completion", "bash", env=dict(os.environ))
    probe = script + (
        "\nCOMP_WORDS=(testbed re); COMP_CWORD=1; COMP_LINE='testbed re'; COMP_POINT=10\n"
        "_shtab_testbed; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    done = subprocess.run([bash, "-c", probe], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert {"replay", "rerun", "results", "render"} <= set(done.stdout.split())


@pytest.mark.parametrize("command", ["ps", "logs", "rerun", "init", "completion", "results"])
def test_every_management_command_has_help_examples(command: str) -> None:
    text = ok(command, "--help", env=dict(os.environ))
    assert "examples:" in text and f"testbed {command}" in text
