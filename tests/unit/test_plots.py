"""The paper's figures from bundle-shaped data: valid PNGs of the expected
size, and the data behind them (production/consumption from the dataset,
offers mapped back to their prosumers by content, the producer of Figure 10)."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from market.types import Kind
from orchestrator.reports import data as rd
from orchestrator.reports import figures
from orchestrator.scenario import build_scenario
from orchestrator.spec import load_spec
from tests.conftest import REPO

SMOKE = REPO / "topologies" / "smoke.yaml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_png(path: Path, size: tuple[float, float]) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    width, height = figures.png_size(path)
    assert (width, height) == (round(size[0] * figures.DPI), round(size[1] * figures.DPI))
    assert path.stat().st_size > 10_000  # axes, labels and data, not a blank canvas


def test_png_size_rejects_other_files(tmp_path: Path) -> None:
    other = tmp_path / "x.png"
    other.write_bytes(b"GIF89a" + bytes(30))
    with pytest.raises(ValueError, match="not a PNG"):
        figures.png_size(other)


def test_figure6_and_11_and_9(tmp_path: Path) -> None:
    window = rd.Window(49, 56)
    traded = {t: 1000 * (t - 40) for t in window.intervals}
    series = rd.EnergySeries(window, traded, {t: 30_000 for t in window.intervals},
                             {t: 12_000 for t in window.intervals}, "test")  # fmt: skip
    check_png(figures.figure6(series, tmp_path / "f6.png"), figures.WIDE)
    lat = rd.Latencies([0.01 * i for i in range(1, 60)], 70, "wallclock", 0.5, "test")
    check_png(figures.figure11(lat, tmp_path / "f11.png"), (8.0, 5.0))
    nothing = rd.Latencies([], 3, "lockstep", None, "test")
    check_png(figures.figure11(nothing, tmp_path / "f11-empty.png"), (8.0, 5.0))
    lines = {
        "no battery": [(2.0, 2629.7), (5.0, 2629.7)],
        "with battery": [(2.0, 2629.7), (5.0, 2700.0)],
    }
    check_png(figures.figure9(lines, tmp_path / "f9.png", title="t"), (8.0, 5.0))
    bounds = {"with battery: all offers at once": 2750.0}
    check_png(figures.figure9(lines, tmp_path / "f9b.png", bounds=bounds), (8.0, 5.0))


def test_dataset_energy_counts_every_offer_once_in_its_start_interval() -> None:
    scenario = build_scenario(
        load_spec(SMOKE, ["market.first_interval=1", "market.last_interval=96"])
    )
    window = rd.Window(1, 96)
    production, consumption = rd.dataset_energy(scenario, window)
    assert sum(production.values()) == scenario.dataset.offered_wh
    assert sum(consumption.values()) == scenario.dataset.wanted_wh
    # with battery, energy stored at t is offered t..95: it counts where it was produced
    battery_offer = next(
        o for p in scenario.dataset.producers for o in p.offers if o.start != o.end
    )
    assert production[battery_offer.start] >= battery_offer.energy_wh


def write_offers(path: Path, rows: Sequence[Mapping[str, object]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=["offer_id", "feeder", "kind", "energy_wh", "start", "end"]
        )
        writer.writeheader()
        writer.writerows(rows)


def test_offers_are_mapped_back_to_their_prosumers_by_content(tmp_path: Path) -> None:
    spec = load_spec(SMOKE)
    scenario = build_scenario(spec)
    m = spec.market
    # as the prosumers post them: other ids, ranges clipped to the window, any order
    posted = [
        {
            "offer_id": 1000 + i,
            "feeder": owned.offer.feeder,
            "kind": "sell" if owned.offer.kind is Kind.SELL else "buy",
            "energy_wh": owned.offer.energy,
            "start": max(owned.offer.start, m.first_interval),
            "end": min(owned.offer.end, m.last_interval),
        }
        for i, owned in reversed(list(enumerate(scenario.owned)))
    ]
    write_offers(tmp_path / "offers.csv", posted)
    owners = rd.offer_owners(scenario, rd.rows(tmp_path / "offers.csv"))
    content = {
        int(str(r["offer_id"])): tuple(
            r[k] for k in ("feeder", "kind", "energy_wh", "start", "end")
        )
        for r in posted
    }
    truth = {1000 + i: owned.prosumer for i, owned in enumerate(scenario.owned)}
    assert set(owners) == set(truth)
    # identical offers of two prosumers may swap owners; their content may not
    swapped = {oid for oid in owners if owners[oid] != truth[oid]}
    for oid in swapped:
        twin = [o for o in swapped if truth[o] == owners[oid] and content[o] == content[oid]]
        assert twin, f"offer {oid} given to prosumer {owners[oid]} without an identical offer"
    assert Counter(owners.values()) == Counter(truth.values())


def test_default_producer_is_the_first_prosumer_of_the_first_feeder() -> None:
    scenario = build_scenario(load_spec(SMOKE))
    assert rd.default_producer(scenario) == 101
    consumers_first = build_scenario(
        load_spec(SMOKE, ["microgrid.dataset.prosumers=[103, 104, 701, 702]"])
    )
    assert rd.default_producer(consumers_first) == 701  # 103 buys: the first producer instead


def test_producer_sales_from_bundle_csvs(tmp_path: Path) -> None:
    spec = load_spec(SMOKE)
    scenario = build_scenario(spec)
    owned = {o.prosumer: o.offer for o in reversed(scenario.owned)}  # first offer of each
    seller, buyer = owned[101], owned[103]
    events = tmp_path / "events"
    events.mkdir()
    write_offers(events / "offers.csv", [
        {"offer_id": 7, "feeder": seller.feeder, "kind": "sell", "energy_wh": seller.energy,
         "start": seller.start, "end": min(seller.end, spec.market.last_interval)},
        {"offer_id": 9, "feeder": buyer.feeder, "kind": "buy", "energy_wh": buyer.energy,
         "start": buyer.start, "end": buyer.end},
    ])  # fmt: skip
    with (events / "trades.csv").open("w", newline="") as fh:
        fh.write("interval,seller,buyer,energy_wh\n")
        fh.write(f"{buyer.start},7,9,300\n")
    data = rd.BundleData(tmp_path, spec, scenario, {}, {}, rd.Window(49, 56))
    sales = rd.producer_sales(data)
    assert sales is not None and sales.producer == 101
    assert sales.sold[buyer.start] == {103: 300}
    assert sum(sales.generation.values()) == sum(
        o.energy_wh for o in scenario.dataset.prosumer(101).offers if 49 <= o.start <= 56
    )
    check_png(figures.figure10(sales, tmp_path / "f10.png"), figures.WIDE)
