"""Network faults under the docker backend (real Engine, images built offline):
a prosumer host cut off the run's network for two intervals (the Engine API's
disconnect/connect at its fixed address) posts nothing while cut off, the
others trade on, and it rejoins after healing; in the same run a solver
container is killed and started again, the recorder's frozen and thawed, and
netem is set on a live container for a span."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from orchestrator.images import ImageSet
from orchestrator.run import RunOptions, run
from tests.conformance.oracle import injector_rows, rows
from tests.conftest import REPO
from tests.integration.docker_support import docker_engine, docker_images, labelled

__all__ = ["docker_engine", "docker_images"]  # fixtures used below

SMOKE = REPO / "topologies" / "smoke.yaml"


def spec_with(tmp_path: Path, faults: list[dict[str, Any]]) -> Path:
    data = yaml.safe_load(SMOKE.read_text())
    data["name"] = "faults-docker"
    data["deployment"] = {
        "backend": "docker",
        # one host per feeder: a feeder's offers tell which host posted them
        "hosts": [
            {"name": "north", "prosumers": [101, 103, 104]},
            {"name": "south", "prosumers": [701, 702, 703]},
        ],
    }
    data["solvers"] = [{"name": "solver-1"}, {"name": "solver-2", "engine": "glpk"}]
    data["metrics"] = {"prometheus": {"enabled": False}}
    data["faults"] = faults
    path = tmp_path / "faults-docker.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_partitioned_host_misses_its_intervals_and_rejoins_after_healing(
    tmp_path: Path, docker_engine: Any, docker_images: ImageSet, state_dir: Path
) -> None:
    cut_at, heal_at = 50, 52
    spec = spec_with(
        tmp_path,
        [
            {
                "at_interval": cut_at,
                "until_interval": heal_at,
                "target": "south",
                "action": "partition",
            },
            {
                "at_interval": 53,
                "for_intervals": 2,
                "target": "north",
                "action": "netem",
                "netem": {"latency_ms": 30},
            },
            {"at_interval": 49, "for_intervals": 3, "target": "solver-1", "action": "kill"},
            {"at_interval": 51, "for_intervals": 1, "target": "recorder", "action": "pause"},
        ],
    )
    result = run(RunOptions(spec=spec, out=tmp_path / "results"))
    assert result.exit_code == 0, result.outcome.message
    steps = [
        (r["action"], r["unit"], r["clock_interval"], r["ok"]) for r in injector_rows(result.bundle)
    ]
    assert steps == [
        ("kill", "solver-1", 49, True),
        ("partition", "south", cut_at, True),
        ("pause", "recorder", 51, True),
        ("heal", "south", heal_at, True),
        ("restart", "solver-1", heal_at, True),
        ("resume", "recorder", heal_at, True),
        ("netem", "north", 53, True),
        ("netem", "north", 55, True),
    ], steps
    assert result.summary["faults"]["crashed"] == []
    shaped = [r.get("detail") for r in injector_rows(result.bundle) if r["action"] == "netem"]
    assert shaped[0] in ("kernel", "userspace") and shaped[1] == "none"  # set, then undone
    events = result.bundle / "events"
    final_block = {int(r["interval"]): int(r["block"]) for r in rows(events / "finalizations.csv")}
    assert sorted(final_block) == list(range(49, 57))  # the market went on
    cut, healed = final_block[cut_at], final_block[heal_at]  # last blocks before the fault
    offers = rows(events / "offers.csv")
    during = [o for o in offers if cut < int(o["block"]) <= healed]
    # while cut off, south (feeder 7) posted nothing; north (feeder 1) went on
    assert during and {o["feeder"] for o in during} == {"1"}
    # after healing, south posts again and its offers are traded
    after = [o for o in offers if int(o["block"]) > healed and o["feeder"] == "7"]
    assert after
    south_ids = {o["offer_id"] for o in after}
    trades = rows(events / "trades.csv")
    assert any(t["seller"] in south_ids or t["buyer"] in south_ids for t in trades)
    clock_log = (result.bundle / "logs" / "clock.log").read_text()
    assert "expect south: False" in clock_log and "expect south: True" in clock_log
    # (the ticks it missed may still arrive after healing, over the same TCP
    # connection: the DSO then refuses withdrawals for finalized intervals)
    summary = json.loads((result.bundle / "summary.json").read_text())
    assert summary["faults"]["actions_applied"] == 8
    assert summary["faults"]["killed_by_faults"] == ["solver-1"]
    # the restarted container's log continues its file (the engine's log from then on)
    solver_log = (result.bundle / "logs" / "solver-1.log").read_text()
    assert solver_log.count("solver solver-1: engine") == 2
    assert summary["processes"]["solver-1"]["exit_code"] == 0  # stopped as usual at the end
    assert labelled(docker_engine, result.run_id) == []
