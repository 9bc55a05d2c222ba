"""The TRANSAX loader and writer: public traces, bad files with exact messages."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from orchestrator.datasets import (
    Dataset,
    ProsumerTrace,
    TraceOffer,
    add_battery,
    charge_start,
    format_kwh,
    load_transax,
    write_transax,
)
from orchestrator.errors import DatasetError

FEEDER_SIZES = {1: 9, 2: 17, 3: 5, 4: 13, 5: 8, 6: 1, 7: 10, 8: 17, 9: 5, 10: 13, 11: 4}
PRODUCERS = [101, 102, 701, 801, 1001]
HEADER = "startTime,endTime,energy\n"


@pytest.mark.parametrize("subdir", ["noBattery", "withBattery"])
def test_public_traces_match_their_readme(transax_dir: Path, subdir: str) -> None:
    dataset = load_transax(transax_dir / subdir)
    assert len(dataset.prosumers) == 102
    assert dict(Counter(p.feeder for p in dataset.prosumers)) == FEEDER_SIZES
    assert [p.id for p in dataset.producers] == PRODUCERS
    assert dataset.offered_wh == 4_544_100  # 4544.1 kWh offered for sale
    assert dataset.wanted_wh == 8_312_200  # 8312.2 kWh wanted
    assert all(p.feeder == p.id // 100 for p in dataset.prosumers)
    assert [p.id for p in dataset.prosumers] == sorted(p.id for p in dataset.prosumers)
    rows = [o for p in dataset.prosumers for o in p.offers]
    assert all(1 <= o.start <= o.end <= 96 for o in rows)
    multi = [o for o in rows if o.start != o.end]
    if subdir == "noBattery":
        assert multi == []
    else:
        assert {o.end for o in multi} == {95}
        assert {o.start for o in multi} == set(range(50, 60))
        for producer in dataset.producers:
            stored = sum(o.energy_wh for o in producer.offers if o.start != o.end)
            assert stored == 90_000  # each producer's 90 kWh battery


def test_first_rows_in_wh(transax_dir: Path) -> None:
    producer = load_transax(transax_dir / "withBattery").prosumer(101)
    assert producer.offers[:2] == (TraceOffer(28, 28, 100), TraceOffer(29, 29, 300))
    assert TraceOffer(59, 59, 1000) in producer.offers
    assert TraceOffer(59, 95, 8300) in producer.offers


def test_battery_rule_turns_no_battery_into_with_battery_exactly(transax_dir: Path) -> None:
    """The synthetic generator's battery rule is the one behind the public traces."""
    no_battery = load_transax(transax_dir / "noBattery")
    assert charge_start(no_battery) == 50
    assert add_battery(no_battery) == load_transax(transax_dir / "withBattery")


def test_public_traces_survive_a_write_read_round_trip(transax_dir: Path, tmp_path: Path) -> None:
    dataset = load_transax(transax_dir / "withBattery")
    write_transax(dataset, tmp_path / "copy")
    assert load_transax(tmp_path / "copy") == dataset
    original = (transax_dir / "withBattery" / "prosumer_101.csv").read_text().split()
    written = (tmp_path / "copy" / "prosumer_101.csv").read_text().split()
    assert written[0] == original[0] == "startTime,endTime,energy"
    as_numbers = [[Decimal(x) for x in row.split(",")] for row in original[1:]]
    assert [[Decimal(x) for x in row.split(",")] for row in written[1:]] == as_numbers


@pytest.mark.parametrize(
    ("wh", "text"), [(8400, "8.4"), (-300, "-0.3"), (10_000, "10"), (1, "0.001"), (0, "0")]
)
def test_format_kwh_is_exact(wh: int, text: str) -> None:
    assert format_kwh(wh) == text


def make_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    directory = tmp_path / "traces"
    directory.mkdir()
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def load_error(tmp_path: Path, files: dict[str, str]) -> tuple[Path, str]:
    directory = make_dir(tmp_path, files)
    with pytest.raises(DatasetError) as caught:
        load_transax(directory)
    assert caught.value.exit_code == 2
    return directory, str(caught.value)


def test_loader_reads_columns_by_name_rounds_to_wh_and_skips_blank_lines(tmp_path: Path) -> None:
    directory = make_dir(
        tmp_path,
        {
            "prosumer_201.csv": "energy, endTime ,startTime\n-0.2345,3,3\n\n0.0005,4,4\n",
            "prosumer_101.csv": HEADER + "1,2,1.5\n",
            "notes.txt": "ignored",
        },
    )
    dataset = load_transax(directory)
    assert dataset == Dataset(
        (
            ProsumerTrace(101, 1, (TraceOffer(1, 2, 1500),)),
            ProsumerTrace(201, 2, (TraceOffer(3, 3, -234), TraceOffer(4, 4, 0))),
        )
    )
    # the row that rounds to 0 Wh is no offer: kept out of the market and noted at its line
    assert dataset.warnings == (
        f"{directory / 'prosumer_201.csv'}:4: energy 0.0005 kWh is 0 Wh: no offer, row skipped",
    )
    assert dataset.select(prosumers=[101]).warnings == ()


def test_implausible_energies_are_refused_at_their_line(tmp_path: Path) -> None:
    rows = "49,49,-1e12\n50,50,10000\n51,51,-10000.001\n52,52,1E+5\n"
    directory, message = load_error(tmp_path, {"prosumer_101.csv": HEADER + rows})
    file = directory / "prosumer_101.csv"
    bound = "(|energy| <= 10000 kWh; a unit slip? the column is kWh per offer)"
    assert message.splitlines() == [
        f"{file}:2: energy: -1e12 kWh is implausible for one prosumer's offer {bound}",
        f"{file}:4: energy: -10000.001 kWh is implausible for one prosumer's offer {bound}",
        f"{file}:5: energy: 1E+5 kWh is implausible for one prosumer's offer {bound}",
    ]


def test_missing_columns(tmp_path: Path) -> None:
    directory, message = load_error(tmp_path, {"prosumer_101.csv": "startTime,energy\n1,1\n"})
    file = directory / "prosumer_101.csv"
    assert message == (
        f"{file}:1: missing column 'endTime' (header must be startTime,endTime,energy)"
    )
    directory = tmp_path / "traces"
    (directory / "prosumer_101.csv").write_text("start,end\n")
    with pytest.raises(DatasetError, match="missing columns 'startTime', 'endTime', 'energy'"):
        load_transax(directory)


def test_every_bad_row_is_reported_with_file_and_line(tmp_path: Path) -> None:
    rows = "1,1,0.5\n2,x,0.5\n3,3,abc\n5,4,1\n0,1,1\n96,97,1\n1,1\n7,7,nan\n"
    directory, message = load_error(tmp_path, {"prosumer_305.csv": HEADER + rows})
    file = directory / "prosumer_305.csv"
    assert message.splitlines() == [
        f"{file}:3: endTime: 'x' is not an integer interval",
        f"{file}:4: energy: 'abc' is not a number of kWh",
        f"{file}:5: endTime 4 is before startTime 5",
        f"{file}:6: startTime: interval 0 is outside the day (1..96)",
        f"{file}:7: endTime: interval 97 is outside the day (1..96)",
        f"{file}:8: expected 3 fields, got 2",
        f"{file}:9: energy: 'nan' is not a number of kWh",
    ]


def test_bad_file_names_and_ids(tmp_path: Path) -> None:
    files = {
        "prosumer_abc.csv": HEADER,
        "prosumer_0101.csv": HEADER,
        "prosumer_100.csv": HEADER,
        "prosumer_42.csv": HEADER,
        "prosumer_102.csv": "",
    }
    directory, message = load_error(tmp_path, files)
    assert message.splitlines() == [
        f"{directory / 'prosumer_0101.csv'}: malformed prosumer id in file name "
        "(expected prosumer_<ID>.csv, ID = feeder * 100 + n)",
        f"{directory / 'prosumer_100.csv'}: unknown prosumer id 100 "
        "(ID = feeder * 100 + n with feeder >= 1 and n = 1..99)",
        f"{directory / 'prosumer_102.csv'}:1: empty file (expected header "
        "startTime,endTime,energy)",
        f"{directory / 'prosumer_42.csv'}: unknown prosumer id 42 "
        "(ID = feeder * 100 + n with feeder >= 1 and n = 1..99)",
        f"{directory / 'prosumer_abc.csv'}: malformed prosumer id in file name "
        "(expected prosumer_<ID>.csv, ID = feeder * 100 + n)",
    ]


def test_not_a_trace_directory(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        load_transax(tmp_path / "missing")
    assert str(caught.value) == (
        f"{tmp_path / 'missing'}: not a directory of prosumer_<ID>.csv files"
    )
    with pytest.raises(DatasetError) as caught:
        load_transax(tmp_path)
    assert str(caught.value) == f"{tmp_path}: no prosumer_<ID>.csv files"


def test_many_problems_are_summarised(tmp_path: Path) -> None:
    rows = "".join(f"{t},{t},x\n" for t in range(1, 31))
    _, message = load_error(tmp_path, {"prosumer_101.csv": HEADER + rows})
    lines = message.splitlines()
    assert len(lines) == 21
    assert lines[-1] == "... and 10 more problems"


def test_writer_refuses_to_mix_with_existing_traces(tmp_path: Path) -> None:
    small = Dataset((ProsumerTrace(101, 1, (TraceOffer(1, 1, 100),)),))
    other = Dataset((ProsumerTrace(201, 2, (TraceOffer(2, 3, -1234),)),))
    write_transax(small, tmp_path)
    with pytest.raises(DatasetError) as caught:
        write_transax(other, tmp_path)
    assert str(caught.value) == (
        f"{tmp_path}: already holds 1 prosumer_<ID>.csv files; "
        "choose an empty directory or overwrite them (--force)"
    )
    write_transax(other, tmp_path, overwrite=True)
    assert load_transax(tmp_path) == other
    assert (tmp_path / "prosumer_201.csv").read_text() == HEADER + "2,3,-1.234\n"
