"""Progress (incremental CSV tails, metrics parsing, one line per finalized
interval), bundles (create, list), summary from event CSVs, manifest facts."""

from __future__ import annotations

import io
import json
from pathlib import Path

from agents.chain.artifact import abi
from agents.recorder.records import (
    BlockStamp,
    EventLog,
    FinalizationRow,
    OfferRow,
    SolutionRow,
    TradeRow,
)
from orchestrator.progress import CsvTail, Progress, parse_metrics
from orchestrator.results.bundle import Bundle, list_bundles, new_run_id
from orchestrator.results.gas import function_selectors
from orchestrator.results.manifest import build_manifest
from orchestrator.results.summary import build_summary


def stamp(block: int, seconds: float) -> BlockStamp:
    return BlockStamp(block, int(seconds * 1000), 1000 + block, f"0x{block:064x}")


def record_interval(log: EventLog, interval: int, t0: float) -> None:
    """Two offers, an accepted solution trading them, the finalized trade."""
    seller, buyer = 2 * interval, 2 * interval + 1
    log.write(OfferRow(seller, 1, "sell", 500, interval, interval, 100, "0xa", stamp(seller, t0)))
    log.write(OfferRow(buyer, 2, "buy", 400, interval, interval, 200, "0xb", stamp(buyer, t0 + 1)))
    log.write(
        SolutionRow(
            "accepted", interval, "0xs", 400, 1, frozenset({seller, buyer}), 9, stamp(50, t0 + 3)
        )
    )
    log.write(TradeRow(interval, seller, buyer, 400, 150, 1, 2, stamp(60, t0 + 4)))
    log.write(FinalizationRow(interval, interval, 1, 400, stamp(60, t0 + 4)))


def test_metrics_parsing() -> None:
    text = (
        "# HELP testbed_agent_ready 1 once ready\n"
        "# TYPE testbed_agent_ready gauge\n"
        "testbed_agent_ready 1.0\n"
        'testbed_gas_used_total{function="postOffer"} 12345.0\n'
        "testbed_current_interval 7\n"
    )
    m = parse_metrics(text)
    assert m["testbed_agent_ready"] == 1.0
    assert m['testbed_gas_used_total{function="postOffer"}'] == 12345.0
    assert m["testbed_current_interval"] == 7.0


def test_csv_tail_returns_complete_new_rows_only(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    tail = CsvTail(path)
    assert tail.read_new() == []  # not there yet
    path.write_text("a,b\n1,2\n3,")
    assert tail.read_new() == [{"a": "1", "b": "2"}]
    with path.open("a") as f:
        f.write("4\n5,6\n")
    assert tail.read_new() == [{"a": "3", "b": "4"}, {"a": "5", "b": "6"}]
    assert tail.read_new() == []


def test_progress_prints_one_line_per_finalized_interval(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    out = io.StringIO()
    progress = Progress(tmp_path, out, last_interval=3, tty=False)
    record_interval(log, 1, 100.0)
    record_interval(log, 2, 200.0)
    progress.update()
    record_interval(log, 3, 300.0)
    snap = progress.close()
    log.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        f"interval {t}/3  offers {o}  trades {t}  energy {0.4 * t:.1f} kWh  "
        f"offer->trade p50 {p50:.2f}s p95 {p95:.2f}s  (+1 trades, 0.4 kWh)"
        for t, o, p50, p95 in ((1, 4, 2.5, 3.0), (2, 4, 2.5, 3.0), (3, 6, 2.5, 3.0))
    ]
    assert (snap.offers, snap.trades, snap.energy_wh, snap.finalized) == (6, 3, 1200, 3)


def test_progress_on_a_tty_redraws_one_line(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    out = io.StringIO()
    progress = Progress(
        tmp_path, out, tty=True, scraper=lambda url: {"testbed_current_interval": 5}
    )
    progress.clock_metrics_url = "http://clock/metrics"
    record_interval(log, 1, 100.0)
    progress.update()
    progress.close()
    log.close()
    text = out.getvalue()
    assert text.startswith("\rinterval 5  offers 2  trades 1  energy 0.4 kWh")
    assert text.endswith("\n") and text.count("\n") == 1


def test_the_tty_status_line_ends_at_the_last_interval(tmp_path: Path) -> None:
    """The clock's last reading is an interval early and it is gone at the end;
    the finalizations say the last interval is done."""
    log = EventLog(tmp_path)
    out = io.StringIO()
    readings: list[dict[str, float] | None] = [{"testbed_current_interval": 2}, None]
    progress = Progress(
        tmp_path, out, last_interval=3, tty=True, scraper=lambda url: readings.pop(0)
    )
    progress.clock_metrics_url = "http://clock/metrics"
    record_interval(log, 1, 100.0)
    progress.update()
    log.write(FinalizationRow(2, 0, 0, 0, stamp(70, 205.0)))  # no trades in interval 2
    record_interval(log, 3, 300.0)
    snap = progress.close()
    log.close()
    assert out.getvalue().rsplit("\r", 1)[-1].startswith("interval 3/3  offers 4  trades 2")
    assert snap.interval == 3 and snap.finalized == 3


def test_summary_from_events(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    record_interval(log, 1, 100.0)
    record_interval(log, 2, 200.0)
    log.close()
    with (tmp_path / "trades.csv").open("a") as f:
        f.write("3,99,98,7")  # a row the recorder was killed in the middle of
    summary = build_summary(
        tmp_path,
        intervals=range(1, 4),
        outcome={"status": "interrupted", "exit_code": 130, "message": "x"},
        gas={"postOffer": {"count": 4, "total": 400, "mean": 100.0}},
        processes={"prosumers-01": {"peak_rss_mb": 30.0}},
    )
    assert summary["status"] == "interrupted" and summary["exit_code"] == 130
    assert summary["total_energy_traded_wh"] == 800
    assert summary["total_energy_traded_kwh"] == 0.8
    assert summary["per_interval_kwh"] == {"1": 0.4, "2": 0.4, "3": 0.0}
    assert summary["offer_to_trade_seconds"]["count"] == 4
    assert summary["offer_to_trade_seconds"]["max"] == 3.0
    assert summary["solutions"] == {"accepted": 2, "rejected": 0}
    assert summary["gas"]["postOffer"]["count"] == 4
    assert summary["processes"]["prosumers-01"]["peak_rss_mb"] == 30.0


def test_bundles_are_listed_with_their_outcome(tmp_path: Path) -> None:
    a = Bundle.create(tmp_path, "smoke", new_run_id(1_000_000_000))
    b = Bundle.create(tmp_path, "paper-c", new_run_id(1_000_000_100))
    a.write_manifest({"run_id": a.path.name, "spec_name": "smoke"})
    a.update_manifest(outcome={"status": "ok", "exit_code": 0, "wall_seconds": 9.5})
    a.write_summary({"total_energy_traded_kwh": 89.8})
    b.write_manifest({"run_id": b.path.name, "spec_name": "paper-c"})  # still running / killed
    (tmp_path / "not-a-bundle").mkdir()
    listed = list_bundles(tmp_path)
    assert [x.spec_name for x in listed] == ["smoke", "paper-c"]
    assert listed[0].as_dict() | {"path": None} == {
        "path": None,
        "spec": "smoke",
        "run_id": a.path.name,
        "status": "ok",
        "exit_code": 0,
        "total_energy_traded_kwh": 89.8,
        "wall_seconds": 9.5,
        "rerun_of": None,
    }
    assert listed[1].status is None
    assert [x.run_id for x in list_bundles(tmp_path / "smoke")] == [a.path.name]
    assert [x.run_id for x in list_bundles(a.path)] == [a.path.name]
    assert list_bundles(tmp_path / "missing") == []


def test_manifest_and_selectors() -> None:
    m = build_manifest(
        run_id="r", spec_name="s", spec_file="x.yaml", seed=3, backend="local", argv=["testbed"]
    )
    assert m["seed"] == 3 and m["tools"]["python"]
    assert {"anvil", "solc", "glpsol", "python"} <= set(m["tools"])
    assert m["host"]["cpus"] >= 1
    json.dumps(m)
    names = set(function_selectors(abi()).values())
    assert {"postOffer", "submitSolution", "finalize", "addEnergy"} <= names
