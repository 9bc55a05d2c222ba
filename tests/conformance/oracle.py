"""What a run must finalize, read from its bundle and from `market.replay`.

The correctness oracle shared by the conformance suite and the backend-specific
tests: a lockstep run finalizes exactly what `market.replay` finalizes, trade for
trade (by offer content: ids differ) and Wh for Wh, interval by interval.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from orchestrator.replay import replay_scenario
from orchestrator.scenario import build_scenario
from orchestrator.spec import load_spec
from tests.conftest import REPO

SMOKE = REPO / "topologies" / "smoke.yaml"
SMOKE_LAST = 56  # smoke.yaml's market.last_interval

OfferKey = tuple[int, str, int, int, int, int]


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def finalized_by_content(events: Path, last: int) -> Counter[tuple[Any, ...]]:
    """Finalized trades keyed by the content of their offers (ids differ; an
    offer reaching past the last traded interval is posted with end = last)."""
    offers: dict[str, OfferKey] = {
        r["offer_id"]: (
            int(r["feeder"]),
            r["kind"],
            int(r["energy_wh"]),
            int(r["start"]),
            min(int(r["end"]), last),
            int(r["price"]),
        )
        for r in rows(events / "offers.csv")
    }
    return Counter(
        (offers[r["seller"]], offers[r["buyer"]], int(r["interval"]), int(r["energy_wh"]))
        for r in rows(events / "trades.csv")
    )


def replayed(
    spec_path: Path, overrides: list[str], clip: bool
) -> tuple[dict[int, int], Counter[Any]]:
    """market.replay of the spec: Wh per interval and trades by offer content.
    `clip`: offers cut to the traded window first, as the prosumers post them
    (the contract takes no interval outside it); the LP has the same free cells
    either way, so totals agree, but where the optimum is degenerate the
    clipped problem is the one whose trades the run reproduces exactly."""
    spec = load_spec(spec_path, overrides, env=os.environ)
    scenario = build_scenario(spec)
    m = spec.market
    offers = list(scenario.offers)
    if clip:
        offers = [
            dataclasses.replace(
                o, start=max(o.start, m.first_interval), end=min(o.end, m.last_interval)
            )
            for o in offers
        ]
    result = replay_scenario(scenario, offers=offers)
    by_id = {
        o.id: (o.feeder, o.kind.name.lower(), o.energy, o.start, o.end, o.price) for o in offers
    }
    content = Counter(
        (by_id[t.seller], by_id[t.buyer], t.interval, t.energy) for t in result.trades
    )
    return result.per_interval_wh, content


def replay_wh(spec_path: Path) -> dict[int, int]:
    """Wh finalized per interval by market.replay of the spec (HiGHS, unclipped)."""
    spec = load_spec(spec_path, [], env=os.environ)
    result = replay_scenario(build_scenario(spec), engine="highs")
    return dict(result.per_interval_wh)


def finalized_wh(bundle: Path) -> dict[int, int]:
    return {
        int(r["interval"]): int(r["energy_wh"]) for r in rows(bundle / "events/finalizations.csv")
    }


def finalizations(bundle: Path | None) -> int:
    """Intervals the recorder has written as finalized so far (0 before it starts)."""
    path = bundle / "events" / "finalizations.csv" if bundle else None
    return len(rows(path)) if path is not None and path.exists() else 0


def injector_rows(bundle: Path) -> list[dict[str, Any]]:
    lines = (bundle / "faults.jsonl").read_text().splitlines()
    return [row for row in map(json.loads, lines) if row["source"] == "injector"]


def smoke_spec(tmp_path: Path, solvers: list[dict[str, Any]], faults: list[dict[str, Any]]) -> Path:
    """smoke.yaml with these solvers and faults, Prometheus off, written to tmp_path."""
    data = yaml.safe_load(SMOKE.read_text())
    data["name"] = "faults-test"
    data["solvers"] = solvers
    data["faults"] = faults
    data["metrics"] = {"prometheus": {"enabled": False}}
    path = tmp_path / "faults-test.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
