"""orchestrator.campaign, the layer above one run, as a pure dispatcher (the
runs themselves are exercised by tests/integration/test_faults_baseline.py and
tests/e2e/test_report_sweep.py): runs go in order with their callbacks, a
signal stops the campaign, a baseline run drops the faults, lands inside the
faulty bundle and its comparison is written into the faulty summary.json."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.campaign import NO_FAULTS, run_baseline, run_campaign
from orchestrator.lifecycle import Outcome
from orchestrator.run import RunOptions, RunResult


def finished(options: RunOptions, code: int = 0, kwh: float = 1.0) -> RunResult:
    status = {0: "ok", 130: "interrupted", 143: "interrupted"}.get(code, "agent_failed")
    bundle = options.out / f"run-{len(options.overrides)}"
    bundle.mkdir(parents=True, exist_ok=True)
    summary = {"status": status, "total_energy_traded_kwh": kwh, "offers": 4}
    (bundle / "summary.json").write_text(json.dumps(summary))
    return RunResult(bundle, bundle.name, Outcome(status, code, status), summary)


def test_runs_go_in_order_and_a_signal_stops_the_campaign(tmp_path: Path) -> None:
    codes = {"a": 0, "b": 3, "c": 143, "d": 0}
    runs = [RunOptions(spec=tmp_path / f"{name}.yaml", out=tmp_path / name) for name in codes]
    log: list[str] = []

    def run_one(options: RunOptions) -> RunResult:
        log.append(f"run {options.spec.stem}")
        return finished(options, codes[options.spec.stem])

    results = run_campaign(
        runs,
        before=lambda i, o: log.append(f"before {i} {o.spec.stem}"),
        after=lambda i, r: log.append(f"after {i} {r.exit_code}"),
        run_one=run_one,
    )
    assert [r.exit_code for r in results] == [0, 3, 143]  # d never runs
    assert log == [
        "before 0 a", "run a", "after 0 0",
        "before 1 b", "run b", "after 1 3",  # a failed run does not stop it
        "before 2 c", "run c", "after 2 143",
    ]  # fmt: skip


def test_baseline_runs_without_faults_inside_the_faulty_bundle(tmp_path: Path) -> None:
    options = RunOptions(spec=tmp_path / "faults.yaml", overrides=("seed=3",), out=tmp_path)
    faulty = finished(options, kwh=1.5)
    seen: list[RunOptions] = []

    def run_one(opts: RunOptions) -> RunResult:
        seen.append(opts)
        return finished(opts, kwh=2.0)

    baseline, block = run_baseline(faulty, options, run_one=run_one)
    (opts,) = seen
    assert opts.overrides == ("seed=3", NO_FAULTS) and opts.spec == options.spec
    assert opts.out == faulty.bundle / "baseline"
    assert baseline.bundle.parent == faulty.bundle / "baseline"
    energy = block["metrics"]["energy_traded_kwh"]
    assert energy == {"faults": 1.5, "baseline": 2.0, "difference": -0.5}
    assert block["baseline_status"] == "ok" and block["baseline_bundle"] == str(baseline.bundle)
    written = json.loads((faulty.bundle / "summary.json").read_text())
    assert written["baseline"] == block == faulty.summary["baseline"]
