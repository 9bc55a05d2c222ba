"""`testbed run SPEC --baseline`: the faulty run, then the same spec without
`faults:` (its bundle inside the first), and the comparison in summary.json and
in the printed summary."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import require_tool, start_cli
from tests.integration.test_faults_local import finalized_wh, replay_wh, smoke_spec


@pytest.mark.usefixtures("state_dir")
def test_baseline_run_and_comparison(tmp_path: Path) -> None:
    require_tool("anvil")
    spec = smoke_spec(
        tmp_path,
        [{"name": "solver-1", "engine": "highs"}],
        [
            {"at_interval": 50, "for_intervals": 2, "target": "solver-1", "action": "kill"},
            {"at_interval": 51, "for_intervals": 1, "target": "prosumers-02", "action": "pause"},
        ],
    )
    out = tmp_path / "results"
    cli = start_cli(
        "run", str(spec), "--baseline", "--quiet", "--out", str(out), env=dict(os.environ)
    )
    stdout, stderr = cli.communicate(timeout=300)
    assert cli.returncode == 0, stderr
    (bundle,) = (p.parent for p in out.glob("*/*/summary.json"))
    (baseline,) = (p.parent for p in (bundle / "baseline").glob("*/*/summary.json"))
    summary = json.loads((bundle / "summary.json").read_text())
    base = json.loads((baseline / "summary.json").read_text())
    assert "faults" not in base and summary["faults"]["actions_applied"] == 4
    assert finalized_wh(baseline) == replay_wh(spec)  # the baseline is the fault-free market
    block = summary["baseline"]
    assert block["baseline_bundle"] == str(baseline) and block["baseline_status"] == "ok"
    energy = block["metrics"]["energy_traded_kwh"]
    assert energy["baseline"] == base["total_energy_traded_kwh"]
    assert energy["faults"] == summary["total_energy_traded_kwh"] < energy["baseline"]
    assert energy["difference"] == pytest.approx(energy["faults"] - energy["baseline"])
    for name in (
        "offer_to_trade_p50_s",
        "offer_to_trade_p99_s",
        "solutions_accepted",
        "solutions_rejected",
    ):
        row = block["metrics"][name]
        assert row["faults"] is not None and row["baseline"] is not None, name
    assert "vs baseline (faults - baseline" in stdout and "energy_traded_kwh" in stdout
    assert "faults: 4/4 actions applied; killed by faults: solver-1" in stdout
