"""`testbed validate` at the limits: sizes this machine cannot run, implausible
trace values, references the dataset lacks, and `--json` for all of it.
Every error names file:line(:col) and the culprit; nothing runs."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import REPO
from tests.e2e.test_cli import SMOKE, run_testbed

HEADER = "startTime,endTime,energy\n"


def transax_spec(tmp_path: Path, rows: dict[int, str], dataset: str = "") -> Path:
    traces = tmp_path / "traces"
    traces.mkdir()
    for prosumer, text in rows.items():
        (traces / f"prosumer_{prosumer}.csv").write_text(HEADER + text)
    spec = tmp_path / "mine.yaml"
    spec.write_text(
        "microgrid:\n  dataset:\n    kind: transax\n    path: traces\n"
        f"{dataset}"
        "market: {first_interval: 49, last_interval: 50}\n"
    )
    return spec


def test_validate_json_reports_the_facts_and_no_warnings() -> None:
    result = run_testbed("validate", SMOKE, "--json")
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    cost = facts.pop("cost")
    assert facts == {
        "spec": str(SMOKE),
        "ok": True,
        "name": "smoke",
        "prosumers": 6,
        "feeders": 2,
        "offers": 55,
        "intervals": [49, 56],
        "prediction_window": 3,
        "clock": "lockstep",
        "backend": "local",
        "sweep_points": 0,
        "warnings": [],
    }
    assert cost["backend"] == "local" and cost["offers"] == 55
    assert cost["processes"] == 11 and cost["prosumer_hosts"] == 3
    assert 500 < cost["memory_mb"] < cost["memory_available_mb"]
    assert 10 < cost["wall_seconds"] < 120
    text = run_testbed("validate", SMOKE)
    assert text.stdout.splitlines()[1].startswith(
        f"  a run: {cost['memory_mb']:.0f} MB of memory, 11 processes ("
    )


def test_a_run_this_machine_cannot_hold_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    """Ten times the paper with one interpreter per prosumer: 1,020 processes of
    ~50 MB, more memory than this machine (or any test machine) has."""
    spec = REPO / "topologies" / "paper-c.yaml"
    big = ["--set", "microgrid.dataset.scale=10", "--set", "deployment.prosumers_per_host=1"]
    started = time.monotonic()
    refused = run_testbed("validate", spec, *big)
    assert refused.returncode == 2
    [line] = refused.stderr.splitlines()
    assert line.startswith(
        "--set deployment.prosumers_per_host=1: deployment.prosumers_per_host: a run needs about "
    )
    assert "1028 processes (prosumer hosts " in line and line.endswith("--force runs it anyway")
    forced = run_testbed("validate", spec, *big, "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    report = json.loads(forced.stdout)
    needs = line.split(" this machine has ")[0]  # the memory available varies
    assert [w.split(" this machine has ")[0] for w in report["warnings"]] == [needs]
    assert report["cost"]["prosumer_hosts"] == 1020
    out = tmp_path / "results"
    run = run_testbed("run", spec, *big, "--out", out)
    assert run.returncode == 2
    assert run.stderr.split(" this machine has ")[0] == needs
    assert not out.exists()  # nothing started, no bundle
    assert time.monotonic() - started < 240


def test_a_scale_beyond_this_machine_is_refused_at_once_and_a_large_one_warned() -> None:
    refused = run_testbed("validate", SMOKE, "--set", "microgrid.dataset.scale=100000", "--json")
    assert refused.returncode == 2
    report = json.loads(refused.stdout)
    assert report["ok"] is False
    assert report["problems"] == [
        "--set microgrid.dataset.scale=100000: microgrid.dataset.scale: scale 100000 means "
        "10,200,000 prosumers; this testbed runs at most scale 100 (10,200 prosumers) on one "
        "machine (each scale step adds the 102-prosumer, 11-feeder block)"
    ]
    large = run_testbed("validate", SMOKE, "--set", "microgrid.dataset.scale=11")
    assert large.returncode == 0, large.stderr
    assert large.stderr == (
        "warning: --set microgrid.dataset.scale=11: microgrid.dataset.scale: scale 11 is large: "
        "1,122 prosumers generated, 6 of them run; above scale 10 (the 10x benchmark size) "
        "expect a long start-up\n"
    )


def test_implausible_energy_is_an_error_and_energy_0_a_warning_at_file_line(
    tmp_path: Path,
) -> None:
    spec = transax_spec(tmp_path, {101: "49,49,5\n49,49,-1e12\n", 102: "49,49,0\n50,50,-2\n"})
    result = run_testbed("validate", spec)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"{tmp_path / 'traces' / 'prosumer_101.csv'}:3: energy: -1e12 kWh is implausible"
    )
    (tmp_path / "traces" / "prosumer_101.csv").write_text(HEADER + "49,49,5\n")
    result = run_testbed("validate", spec)
    assert result.returncode == 0, result.stderr
    zero = (
        f"{tmp_path / 'traces' / 'prosumer_102.csv'}:2: energy 0 kWh is 0 Wh: no offer, row skipped"
    )
    assert result.stderr == f"warning: {zero}\n"
    assert "2 offers" in result.stdout
    assert json.loads(run_testbed("validate", spec, "--json").stdout)["warnings"] == [zero]


def test_dataset_references_name_the_spec_line_and_the_culprit(tmp_path: Path) -> None:
    spec = transax_spec(
        tmp_path, {101: "49,49,5\n", 102: "50,50,-2\n"}, "    prosumers: [101, 105]\n"
    )
    result = run_testbed("validate", spec)
    assert result.returncode == 2
    assert result.stderr == (
        f"{spec}:5:22: microgrid.dataset.prosumers[1]: prosumer 105 is not in "
        f"{tmp_path / 'traces'} (ids are feeder * 100 + n; feeder 1 has 101, 102)\n"
    )
    missing = run_testbed("validate", spec, "--set", "microgrid.dataset.path=/nonexistent/x")
    assert missing.returncode == 2
    assert missing.stderr == (
        "--set microgrid.dataset.path=/nonexistent/x: microgrid.dataset.path: "
        "no such directory /nonexistent/x\n"
    )
    spec.write_text(spec.read_text().replace("[101, 105]", "[101, 102, 101]"))
    duplicate = run_testbed("validate", spec)
    assert duplicate.returncode == 2
    assert duplicate.stderr == (
        f"{spec}:5:27: microgrid.dataset.prosumers[2]: duplicate integer 101 (also item 0)\n"
    )
