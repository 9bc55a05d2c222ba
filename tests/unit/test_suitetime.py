"""The suite's own time keeping (tests/suitetime.py, bench/suitetime.py): the CPU of
processes a test starts is counted whether the test reaps them or they outlive
their parent, and the per-module summary adds the tests up."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from bench.suitetime import summary
from tests.suitetime import TreeCpu

BURN_SECONDS = 0.2  # CPU seconds each burner spends (small: the machine may be loaded)
BURN = f"import time\nwhile time.process_time() < {BURN_SECONDS}: pass\n"


def test_a_reaped_child_and_an_orphaned_grandchild_both_count() -> None:
    tree = TreeCpu()
    before, _ = tree.sample()
    subprocess.run([sys.executable, "-c", BURN], check=True)  # reaped: RUSAGE_CHILDREN
    reaped, _ = tree.sample()
    assert reaped - before >= BURN_SECONDS * 0.9
    # the shell starts a burner in the background and exits: the burner is orphaned
    # while alive, after a sample saw it as a descendant
    script = f'{sys.executable} -c "{BURN}" & echo $!; read _'
    shell = subprocess.Popen(
        ["sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert shell.stdout is not None and shell.stdin is not None
    burner = int(shell.stdout.readline())
    tree.sample()
    shell.communicate("\n")  # the shell exits without waiting for the burner
    deadline = time.monotonic() + 300
    while Path(f"/proc/{burner}").exists():
        tree.sample()
        assert time.monotonic() < deadline, "the burner never finished"
        time.sleep(0.05)
    after, _ = tree.sample()
    # at most one sample period of its end can be missed; here samples are frequent
    assert after - reaped >= BURN_SECONDS * 0.5


def test_the_summary_adds_up_per_module(tmp_path: Path) -> None:
    def test(module: str, wall: float, cpu: float) -> dict[str, object]:
        return {
            "nodeid": f"{module}::t",
            "module": module,
            "wall": wall,
            "cpu_self": cpu,
            "cpu_tree": 1.0,
            "cpu_docker": 0.5,
            "machine_busy": 0.0,
            "load1": 2.0,
        }

    part1 = tmp_path / "a.json"
    part2 = tmp_path / "b.json"
    part1.write_text(json.dumps({"tests": [test("m1", 3.0, 1.0), test("m2", 1.0, 0.0)]}))
    part2.write_text(json.dumps({"tests": [test("m1", 2.0, 1.0)]}))
    result = summary([part1, part2], top=1)
    assert list(result["modules"]) == ["m1"]  # the largest wall only
    assert result["modules"]["m1"]["wall"] == 5.0
    assert result["modules"]["m1"]["cpu"] == 5.0  # 2 x (1.0 + 1.0 + 0.5)
    assert result["total"]["tests"] == 3 and result["total"]["cpu"] == 6.5
