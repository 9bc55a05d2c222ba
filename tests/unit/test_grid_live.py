"""The grid step from a bundle's files alone: the recorder's CSVs (chain offer ids,
mapped back by content) give the block replay gives, and the orchestrator's
exporter serves the same power flow per finalized interval as gauges."""

from __future__ import annotations

import csv
from pathlib import Path

import yaml

from market.types import Kind
from orchestrator.grid.bundle import bundle_grid
from orchestrator.grid.flow import comparable, read_csv
from orchestrator.observability.exporter import DatasetExporter
from orchestrator.replay import replay_scenario, run_replay
from orchestrator.scenario import build_scenario
from orchestrator.spec import load_spec
from tests.conftest import REPO

SMOKE = REPO / "topologies" / "smoke.yaml"
CHAIN_ID = 1000  # chain offer ids differ from the scenario's


def write_rows(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def fake_bundle(tmp_path: Path) -> Path:
    """What a lockstep smoke run leaves: its resolved spec and the recorder's
    offers, finalized trades and finalizations (ids as the chain numbers them)."""
    spec = load_spec(SMOKE, env={})
    scenario = build_scenario(spec)
    result = replay_scenario(scenario)
    bundle = tmp_path / "bundle"
    events = bundle / "events"
    events.mkdir(parents=True)
    (bundle / "spec.yaml").write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    offers = [
        [CHAIN_ID + o.id, o.feeder, "sell" if o.kind is Kind.SELL else "buy", o.energy, o.start,
         o.end, o.price]
        for o in reversed(scenario.offers)  # posted in another order than the scenario's
    ]  # fmt: skip
    write_rows(events / "offers.csv", ["offer_id", "feeder", "kind", "energy_wh", "start", "end",
                                       "price"], offers)  # fmt: skip
    trades = [
        [t.interval, CHAIN_ID + t.seller, CHAIN_ID + t.buyer, t.energy, t.price]
        for t in result.trades
    ]
    write_rows(events / "trades.csv", ["interval", "seller", "buyer", "energy_wh", "price"], trades)
    finals = [[t, 1, 0, wh] for t, wh in sorted(result.per_interval_wh.items())]
    write_rows(events / "finalizations.csv", ["interval", "candidate_id", "trades", "energy_wh"],
               finals)  # fmt: skip
    return bundle


def test_bundle_step_gives_the_replay_block_and_the_csv(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path)
    block = bundle_grid(bundle)
    expected = run_replay(build_scenario(load_spec(SMOKE, env={})), "highs")["grid"]
    assert comparable(block) == comparable(expected)
    assert block["csv"] == "grid/grid.csv"
    assert len(read_csv(bundle / "grid" / "grid.csv")) == 16


def test_a_broken_bundle_is_reported_in_the_block_not_raised(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path)
    (bundle / "spec.yaml").write_text("microgrid: {dataset: {kind: nope}}\n")
    block = bundle_grid(bundle)
    assert block["enabled"] and block["error"].startswith("SpecError: ")


def test_exporter_serves_each_finalized_intervals_power_flow(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path)
    block = bundle_grid(bundle)
    rows = {(int(r["interval"]), r["case"]): r for r in read_csv(bundle / "grid" / "grid.csv")}
    exporter = DatasetExporter(bundle / "events", {}, {}, 49, {"spec": "smoke"})
    exporter.poll()
    value = exporter.registry.get_sample_value
    assert value("testbed_finalized_interval") == 56
    assert value("testbed_grid_interval") == 56
    for case in ("market", "no_market"):
        row, labels = rows[(56, case)], {"case": case}
        assert round(value("testbed_grid_vm_min_pu", labels), 6) == float(row["vm_min_pu"])
        assert round(value("testbed_grid_vm_max_pu", labels), 6) == float(row["vm_max_pu"])
        line = value("testbed_grid_line_loading_max_percent", labels)
        assert round(line, 6) == float(row["line_loading_max_percent"])
        assert round(value("testbed_grid_losses_kw", labels), 6) == float(row["losses_kw"])
        violations = value("testbed_grid_violation_intervals_total", labels)
        assert violations == block[case]["intervals_with_violations"]
        assert value("testbed_grid_not_converged_intervals_total", labels) == 0
