"""The backends' fault API on real processes (local) and the fault log / summary /
baseline comparison built from it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from orchestrator.backends.base import BackendError, Unit
from orchestrator.backends.local import LocalBackend
from orchestrator.faults.results import comparison, fault_summary, report_lines, write_fault_log
from orchestrator.spec.backends import NAMES as BACKEND_NAMES
from orchestrator.spec.backends import backend_entry

TICKER = "import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.02)\n"


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_local_kill_restart_pause_resume(tmp_path: Path) -> None:
    backend = LocalBackend("fault-test", root=tmp_path / "state")
    log = tmp_path / "ticker.log"
    backend.start(Unit("ticker", "solver", ("python", "-c", TICKER), log))
    try:
        wait_until(lambda: log.read_text().count("tick") > 2)
        backend.pause("ticker")
        pid = backend.pid("ticker")
        wait_until(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED)
        frozen = log.read_text().count("tick")
        time.sleep(0.2)
        assert log.read_text().count("tick") == frozen
        backend.resume("ticker")
        wait_until(lambda: log.read_text().count("tick") > frozen)

        backend.kill("ticker")
        status = backend.status()["ticker"]
        assert (status.state, status.returncode) == ("exited", -9)
        with pytest.raises(BackendError, match="ticker: not running"):
            backend.pause("ticker")
        backend.restart("ticker")  # the same unit again: same argv, same log
        assert backend.status()["ticker"].state == "running"
        assert backend.pid("ticker") != pid
        before = log.read_text().count("tick")
        wait_until(lambda: log.read_text().count("tick") > before)
        recorded = json.loads((backend.pid_dir / "ticker.json").read_text())
        assert recorded["pid"] == backend.pid("ticker")
        backend.pause("ticker")  # a paused unit still stops at teardown, promptly
        assert backend.stop(["ticker"], timeout=5) == {"ticker": -15}
    finally:
        backend.stop_all(timeout=2)
        backend.cleanup()
    with pytest.raises(BackendError, match="ticker: not started"):
        LocalBackend("other", root=tmp_path / "state").kill("ticker")


def test_the_base_backend_refuses_what_it_cannot_do() -> None:
    from orchestrator.backends.base import Backend

    class Bare(LocalBackend):
        name = "bare"

    bare = Bare.__new__(Bare)  # not a registered backend: no state dir to compute
    for call in (
        lambda: Backend.partition(bare, "a", True),
        lambda: Backend.netem(bare, "a", 10),
        lambda: Backend.kill(bare, "a"),
    ):
        with pytest.raises(BackendError, match="not supported by the bare backend"):
            call()
    assert backend_entry("local").fault_actions == {"kill", "restart", "pause", "resume"}


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_registry_fault_actions_are_the_ones_the_backend_implements(name: str) -> None:
    """An action listed in the registry is overridden by the backend's class; the
    others are the base class's refusal (heal is partition(cut=False); node
    actions drain and stop are drain_node and stop_node)."""
    from orchestrator.backends import backend_class
    from orchestrator.backends.base import Backend

    cls = backend_class(name)
    methods = {a: a for a in ("kill", "restart", "pause", "resume", "partition", "netem")}
    methods |= {"drain": "drain_node", "stop": "stop_node"}
    implemented = {
        action
        for action, method in methods.items()
        if getattr(cls, method) is not getattr(Backend, method)
    }
    listed = backend_entry(name).fault_actions
    assert implemented == listed - {"heal"}
    assert ("heal" in listed) == ("partition" in listed)


def test_fault_log_merges_injector_config_and_agent_reports(tmp_path: Path) -> None:
    (tmp_path / "agents" / "liar").mkdir(parents=True)
    (tmp_path / "agents" / "liar" / "behaviour.jsonl").write_text(
        '{"time": 5.0, "interval": 3, "behaviour": "infeasible", "result": "reverted: X"}\n'
        '{"time": 6.0, "interv'  # cut short by a kill: skipped
    )
    records = [
        {
            "action": "kill",
            "unit": "s1",
            "at_interval": 3,
            "time": 4.0,
            "clock_interval": 3,
            "ok": True,
        },
        {
            "action": "heal",
            "unit": "h1",
            "at_interval": 4,
            "time": 7.0,
            "clock_interval": 4,
            "ok": False,
            "error": "BackendError: no",
        },
    ]
    configured = [{"entry": 1, "agent": "liar", "behaviour": "infeasible", "from_interval": 3}]
    rows = write_fault_log(tmp_path, records, configured)
    assert [(r["source"], r.get("time")) for r in rows] == [
        ("config", None),
        ("injector", 4.0),
        ("agent", 5.0),
        ("injector", 7.0),
    ]
    lines = (tmp_path / "faults.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == rows
    summary = fault_summary(rows, down=["s1"], crashed=["dso"])
    assert summary["actions_planned"] == 2 and summary["actions_applied"] == 1
    assert summary["actions_failed"] == ["heal h1: BackendError: no"]
    assert summary["killed_by_faults"] == ["s1"] and summary["down_at_end"] == ["s1"]
    assert summary["crashed"] == ["dso"]
    assert summary["agent_behaviour"] == {"liar:infeasible": 1}


def test_comparison_with_a_baseline() -> None:
    faulty = {
        "total_energy_traded_kwh": 80.1,
        "offers": 55,
        "offer_to_trade_seconds": {"p50": 0.5, "p99": 2.0},
        "solutions": {"accepted": 6, "rejected": 4},
        "faults": {"actions_planned": 1, "actions_applied": 1, "killed_by_faults": ["s"]},
    }
    baseline = {
        "status": "ok",
        "total_energy_traded_kwh": 89.8,
        "offers": 55,
        "offer_to_trade_seconds": {"p50": 0.25},
        "solutions": {"accepted": 7, "rejected": 0},
    }
    block = comparison(faulty, baseline, Path("/b"))
    m = block["metrics"]
    assert m["energy_traded_kwh"] == {"faults": 80.1, "baseline": 89.8, "difference": -9.7}
    assert m["offer_to_trade_p50_s"]["difference"] == 0.25
    assert m["offer_to_trade_p99_s"] == {"faults": 2.0, "baseline": None, "difference": None}
    assert m["solutions_rejected"]["difference"] == 4
    assert block["baseline_bundle"] == "/b" and block["baseline_status"] == "ok"
    text = "\n".join(report_lines({**faulty, "baseline": block}))
    assert "1/1 actions applied; killed by faults: s; crashed on their own: none" in text
    assert "energy_traded_kwh" in text and "(-9.700)" in text and "(+4)" in text
    assert "80.100 vs     89.800" in text
