"""The TRANSAX trace format: a directory of `prosumer_<ID>.csv` files.

Each file has the header `startTime,endTime,energy`; one row is one offer over
the inclusive interval range startTime..endTime (1..96, 15 minutes each) with
`energy` kWh for the whole offer, positive = sell, negative = buy. The feeder
of prosumer ID is ID // 100. Energy becomes integer Wh (round(kWh * 1000)).

An energy beyond MAX_OFFER_KWH is an error (no prosumer of a microgrid offers
that; it is a unit or sign slip); a row with energy 0 is no offer: it is kept
out of the market and noted (`Dataset.warnings`, `file:line: ...`).
"""

from __future__ import annotations

import csv
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

from orchestrator.datasets.model import (
    INTERVALS_PER_DAY,
    Dataset,
    ProsumerTrace,
    TraceOffer,
    feeder_of,
    is_valid_prosumer_id,
)
from orchestrator.errors import DatasetError

COLUMNS = ("startTime", "endTime", "energy")
FILE_GLOB = "prosumer_*.csv"
_FILE_NAME = re.compile(r"prosumer_(?P<id>[1-9][0-9]*)\.csv")
MAX_OFFER_KWH = Decimal(10_000)
"""Largest |energy| of one trace row: 10 MWh, i.e. 40 MW for a 15-minute interval,
far above any prosumer of a low-voltage feeder (the paper's largest consumer buys
540 kWh a day)."""
MAX_REPORTED = 20
"""More problems than this are summarised, not listed: a wrong directory
would otherwise print thousands of lines."""


def load_transax(path: str | Path) -> Dataset:
    """Read every `prosumer_<ID>.csv` of directory `path`.

    Raises DatasetError listing every problem found, one `file:line: message`
    per line (file-level problems have no line)."""
    directory = Path(path)
    if not directory.is_dir():
        raise DatasetError(f"{directory}: not a directory of prosumer_<ID>.csv files")
    files = sorted(directory.glob(FILE_GLOB))
    if not files:
        raise DatasetError(f"{directory}: no prosumer_<ID>.csv files")
    problems: list[str] = []
    prosumers: list[ProsumerTrace] = []
    for file in files:
        prosumer_id = _prosumer_id(file, problems)
        notes: list[str] = []
        offers = _read_offers(file, problems, notes)
        if prosumer_id is not None and offers is not None:
            trace = ProsumerTrace(prosumer_id, feeder_of(prosumer_id), offers, tuple(notes))
            prosumers.append(trace)
    if problems:
        raise DatasetError(_summarise(problems))
    prosumers.sort(key=lambda p: p.id)
    return Dataset(tuple(prosumers))


def transax_prosumer_ids(path: str | Path) -> list[int] | None:
    """The prosumer ids of a trace directory's file names (None: not a directory);
    malformed names are left to `load_transax` to report."""
    directory = Path(path)
    if not directory.is_dir():
        return None
    names = (_FILE_NAME.fullmatch(f.name) for f in directory.glob(FILE_GLOB))
    return sorted(int(m["id"]) for m in names if m is not None)


def write_transax(dataset: Dataset, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write `dataset` as `out_dir/prosumer_<ID>.csv` files (created if needed).

    Existing prosumer files in `out_dir` would mix with the new ones when the
    directory is read back, so they are an error unless `overwrite`, which
    removes them first."""
    directory = Path(out_dir)
    stale = sorted(directory.glob(FILE_GLOB)) if directory.is_dir() else []
    if stale and not overwrite:
        raise DatasetError(
            f"{directory}: already holds {len(stale)} prosumer_<ID>.csv files; "
            "choose an empty directory or overwrite them (--force)"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for file in stale:
            file.unlink()
        for prosumer in dataset.prosumers:
            rows = [",".join(COLUMNS)]
            rows += [f"{o.start},{o.end},{format_kwh(o.energy_wh)}" for o in prosumer.offers]
            target = directory / f"prosumer_{prosumer.id}.csv"
            target.write_text("\n".join(rows) + "\n", encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"{directory}: cannot write dataset: {exc.strerror or exc}") from exc
    return directory


def format_kwh(energy_wh: int) -> str:
    """Exact decimal kWh of an integer Wh amount: 8400 -> '8.4', -10000 -> '-10'."""
    sign = "-" if energy_wh < 0 else ""
    whole, fraction = divmod(abs(energy_wh), 1000)
    digits = f"{fraction:03d}".rstrip("0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


def _prosumer_id(file: Path, problems: list[str]) -> int | None:
    match = _FILE_NAME.fullmatch(file.name)
    if match is None:
        problems.append(
            f"{file}: malformed prosumer id in file name (expected prosumer_<ID>.csv, "
            "ID = feeder * 100 + n)"
        )
        return None
    prosumer_id = int(match["id"])
    if not is_valid_prosumer_id(prosumer_id):
        problems.append(
            f"{file}: unknown prosumer id {prosumer_id} "
            "(ID = feeder * 100 + n with feeder >= 1 and n = 1..99)"
        )
        return None
    return prosumer_id


def _read_offers(
    file: Path, problems: list[str], notes: list[str]
) -> tuple[TraceOffer, ...] | None:
    before = len(problems)
    offers: list[TraceOffer] = []
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            columns = _columns(file, header, problems)
            if columns is None:
                return None
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue
                offer = _parse_row(f"{file}:{reader.line_num}", row, columns, len(header or ()))
                if isinstance(offer, str):
                    problems.append(offer)
                    continue
                if offer.energy_wh == 0:
                    energy = row[columns["energy"]].strip()
                    where = f"{file}:{reader.line_num}"
                    notes.append(f"{where}: energy {energy} kWh is 0 Wh: no offer, row skipped")
                offers.append(offer)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.append(f"{file}: cannot read: {exc}")
        return None
    return tuple(offers) if len(problems) == before else None


def _columns(file: Path, header: list[str] | None, problems: list[str]) -> dict[str, int] | None:
    if header is None:
        problems.append(f"{file}:1: empty file (expected header {','.join(COLUMNS)})")
        return None
    names = [name.strip() for name in header]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        listed = ", ".join(repr(c) for c in missing)
        problems.append(
            f"{file}:1: missing column{'s' if len(missing) > 1 else ''} {listed} "
            f"(header must be {','.join(COLUMNS)})"
        )
        return None
    return {c: names.index(c) for c in COLUMNS}


def _parse_row(where: str, row: list[str], columns: dict[str, int], width: int) -> TraceOffer | str:
    """The offer of one CSV row, or the problem with it as `where: message`."""
    if len(row) < width:
        return f"{where}: expected {width} fields, got {len(row)}"
    start = _interval(row[columns["startTime"]], "startTime")
    if isinstance(start, str):
        return f"{where}: {start}"
    end = _interval(row[columns["endTime"]], "endTime")
    if isinstance(end, str):
        return f"{where}: {end}"
    if end < start:
        return f"{where}: endTime {end} is before startTime {start}"
    text = row[columns["energy"]].strip()
    try:
        kwh = Decimal(text)
    except InvalidOperation:
        kwh = Decimal("NaN")
    if not kwh.is_finite():
        return f"{where}: energy: {text!r} is not a number of kWh"
    if abs(kwh) > MAX_OFFER_KWH:
        return (
            f"{where}: energy: {text} kWh is implausible for one prosumer's offer "
            f"(|energy| <= {MAX_OFFER_KWH} kWh; a unit slip? the column is kWh per offer)"
        )
    return TraceOffer(start, end, round(kwh * 1000))


def _interval(text: str, column: str) -> int | str:
    value = text.strip()
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        return f"{column}: {value!r} is not an integer interval"
    interval = int(value)
    if not 1 <= interval <= INTERVALS_PER_DAY:
        return f"{column}: interval {interval} is outside the day (1..{INTERVALS_PER_DAY})"
    return interval


def _summarise(problems: list[str]) -> str:
    if len(problems) <= MAX_REPORTED:
        return "\n".join(problems)
    hidden = len(problems) - MAX_REPORTED
    return "\n".join([*problems[:MAX_REPORTED], f"... and {hidden} more problems"])
