"""The prosumers' anonymous keys come from a per-run secret: two runs of the same
spec post from different addresses (nobody can derive them from the YAML), and
the finished bundle holds the secret in no file (the configs are redacted). A
run given a key secret file (or $TESTBED_KEY_SECRET_FILE) posts from the very
addresses of another run given the same secret, and keeps it out of its bundle too.
When the orchestrator is killed (no teardown), `testbed clean` redacts the secret."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agents.common.config import REDACTED, AgentConfig, ProsumerHostConfig
from orchestrator import run as run_module
from orchestrator.run import KEY_SECRET_ENV, RunOptions, run
from tests.conftest import REPO, require_tool, start_cli

SMOKE = REPO / "topologies" / "smoke.yaml"


@pytest.fixture(autouse=True)
def _anvil(state_dir: Path) -> None:
    require_tool("anvil")


def posters(events: Path) -> set[str]:
    with (events / "offers.csv").open(newline="") as fh:
        return {row["poster"].lower() for row in csv.DictReader(fh)}


def test_two_runs_of_one_spec_use_different_keys_and_keep_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets: list[str] = []
    write_configs = run_module.write_configs

    def recording(*args: Any) -> dict[str, AgentConfig]:
        configs = write_configs(*args)
        secrets.extend(
            {c.key_secret for c in configs.values() if isinstance(c, ProsumerHostConfig)}
        )
        return configs

    monkeypatch.setattr(run_module, "write_configs", recording)
    results = [run(RunOptions(spec=SMOKE, out=tmp_path / f"run{i}")) for i in range(2)]
    for result in results:
        assert result.outcome.status == "ok", result.outcome.message
    # one secret per run, 32 random bytes, the same for every host of the run
    assert len(secrets) == 2 and len(set(secrets)) == 2
    assert all(len(bytes.fromhex(s)) == 32 for s in secrets)
    first, second = (posters(r.bundle / "events") for r in results)
    assert first and second and not first & second
    for result, secret in zip(results, secrets, strict=True):
        raw = bytes.fromhex(secret)
        for path in result.bundle.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert secret.encode() not in data and raw not in data, path
        hosts = [
            json.loads(p.read_text())
            for p in (result.bundle / "config").glob("*.json")
            if json.loads(p.read_text())["role"] == "prosumer"
        ]
        assert hosts and {h["key_secret"] for h in hosts} == {REDACTED}


def secret_file(path: Path, secret: bytes) -> Path:
    path.write_text(secret.hex() + "\n")
    path.chmod(0o600)
    return path


def test_a_key_secret_file_repeats_a_runs_addresses_and_stays_out_of_the_bundle(
    tmp_path: Path,
) -> None:
    same, other = bytes(range(32)), bytes(range(100, 132))
    first_file = secret_file(tmp_path / "a.key", same)
    # the same secret twice (as --key-secret-file, then as $TESTBED_KEY_SECRET_FILE), another once
    options = [
        RunOptions(spec=SMOKE, out=tmp_path / "a1", key_secret_file=first_file),
        RunOptions(
            spec=SMOKE,
            out=tmp_path / "a2",
            env={**os.environ, KEY_SECRET_ENV: str(secret_file(tmp_path / "b.key", same))},
        ),
        RunOptions(
            spec=SMOKE, out=tmp_path / "c", key_secret_file=secret_file(tmp_path / "c.key", other)
        ),
    ]
    results = [run(o) for o in options]
    for result in results:
        assert result.outcome.status == "ok", result.outcome.message
    a1, a2, c = (posters(r.bundle / "events") for r in results)
    assert a1 and a1 == a2  # the same secret: the very same anonymous addresses
    assert c and not a1 & c  # another secret: none of them
    manifests = [json.loads((r.bundle / "manifest.json").read_text()) for r in results]
    prints = [m["key_secret"]["fingerprint"] for m in manifests]
    assert {m["key_secret"]["source"] for m in manifests} == {"file"}
    assert prints[0] == prints[1] != prints[2]
    for result, secret in zip(results, (same, same, other), strict=True):
        for path in result.bundle.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert secret.hex().encode() not in data and secret not in data, path


def test_clean_after_a_killed_run_redacts_the_secret_its_teardown_never_did(
    tmp_path: Path, state_dir: Path
) -> None:
    secret = bytes(range(200, 232))
    env = {**os.environ, "TESTBED_STATE_DIR": str(state_dir)}
    out = tmp_path / "results"
    key = secret_file(tmp_path / "run.key", secret)
    proc = start_cli("run", str(SMOKE), "--out", str(out), "--key-secret-file", str(key), env=env)
    try:
        bundle = wait_for_offers(out, proc)
        proc.kill()  # SIGKILL: no teardown, the agents keep running
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(60)
    hosts = [p for p in (bundle / "config").glob("*.json") if has_key_secret(p)]
    assert hosts and all(secret.hex() in p.read_text() for p in hosts)  # not redacted yet
    cleaned = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "clean", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert cleaned.returncode == 0, cleaned.stderr
    actions = {r["action"] for r in json.loads(cleaned.stdout)["cleaned"]}
    assert "marked killed" in actions, cleaned.stdout
    for path in bundle.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret.hex().encode() not in data and secret not in data, path
    assert {json.loads(p.read_text())["key_secret"] for p in hosts} == {REDACTED}
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["outcome"]["status"] == "killed"


def has_key_secret(path: Path) -> bool:
    return "key_secret" in json.loads(path.read_text())


def wait_for_offers(out: Path, proc: subprocess.Popen[str], timeout: float = 180) -> Path:
    """The bundle, once the prosumers posted offers (their configs hold the secret)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before the prosumers posted"
        for offers in out.glob("*/*/events/offers.csv"):
            if len(offers.read_text().splitlines()) > 1:
                return offers.parent.parent
        time.sleep(0.05)
    raise AssertionError("no offer posted in time")
