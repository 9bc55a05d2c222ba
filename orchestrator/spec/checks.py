"""Step 5: checks the schema cannot express, across keys and sections.

Each check takes the schema-valid data (`given`: as written, `full`: with
defaults) and the document for positions, and returns problems.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.spec.backends import backend_entry
from orchestrator.spec.datasetchecks import scale_problems
from orchestrator.spec.document import Document, KeyPath, Problem
from orchestrator.spec.faultchecks import fault_problems
from orchestrator.spec.model import MINUTES_PER_DAY, SYNTHETIC_ONLY, wh_per_interval
from orchestrator.spec.sweepcheck import sweep_problems

Check = Callable[[Document, dict[str, Any], dict[str, Any]], list[Problem]]


def reference_problems(document: Document, full: dict[str, Any]) -> list[Problem]:
    given = document.data if isinstance(document.data, dict) else {}
    problems: list[Problem] = []
    for check in CHECKS:
        problems += check(document, given, full)
    return problems


def _at(document: Document, path: KeyPath, message: str) -> Problem:
    return Problem(document.origin(path), path, message)


def _at_key(document: Document, path: KeyPath, message: str) -> Problem:
    return Problem(document.origin(path, key=True), path, message)


def check_market(document: Document, given: dict[str, Any], full: dict[str, Any]) -> list[Problem]:
    market = full["market"]
    minutes, first, last = (
        market["interval_minutes"],
        market["first_interval"],
        market["last_interval"],
    )
    problems = []
    if MINUTES_PER_DAY % minutes:
        problems.append(
            _at(document, ("market", "interval_minutes"), "must divide a day (1440 minutes)")
        )
    per_day = MINUTES_PER_DAY // minutes
    for key, value in (("first_interval", first), ("last_interval", last)):
        if value > per_day:
            message = f"must be <= {per_day}, the intervals in a day of {minutes}-minute intervals"
            problems.append(_at(document, ("market", key), message))
    if last < first:
        message = f"must be >= market.first_interval ({first})"
        problems.append(_at(document, ("market", "last_interval"), message))
    window, t_clear = market["prediction_window"], market["t_clear"]
    if t_clear >= window:
        message = (
            f"must be < market.prediction_window ({window}): at interval t the trades of "
            "t + t_clear are finalized, and offers are visible only L - 1 intervals ahead"
        )
        problems.append(_at(document, ("market", "t_clear"), message))
    period, interval = market["solver_period_seconds"], market["simulated_interval_seconds"]
    if period > interval:
        message = (
            f"must be <= market.simulated_interval_seconds ({interval}): "
            "a solver must run at least once per interval"
        )
        problems.append(_at(document, ("market", "solver_period_seconds"), message))
    return problems


def check_feeders(document: Document, given: dict[str, Any], full: dict[str, Any]) -> list[Problem]:
    feeders = full["microgrid"]["feeders"]
    minutes = full["market"]["interval_minutes"]
    base: KeyPath = ("microgrid", "feeders")
    limits: list[tuple[KeyPath, float]] = [
        ((*base, "c_ext_kw"), feeders["c_ext_kw"]),
        ((*base, "c_int_kw"), feeders["c_int_kw"]),
    ]
    problems = []
    seen: dict[int, int] = {}
    selected = full["microgrid"]["dataset"].get("feeders")
    for i, override in enumerate(feeders["overrides"]):
        path: KeyPath = (*base, "overrides", i)
        feeder = override["id"]
        if feeder in seen:
            message = f"feeder {feeder} is already overridden in overrides[{seen[feeder]}]"
            problems.append(_at(document, (*path, "id"), message))
        seen.setdefault(feeder, i)
        if selected is not None and feeder not in selected:
            message = f"feeder {feeder} is not in microgrid.dataset.feeders {selected}"
            problems.append(_at(document, (*path, "id"), message))
        if "c_ext_kw" not in override and "c_int_kw" not in override:
            problems.append(_at(document, path, "sets no limit (give c_ext_kw and/or c_int_kw)"))
        limits += [((*path, k), override[k]) for k in ("c_ext_kw", "c_int_kw") if k in override]
    for path, kw in limits:
        energy = wh_per_interval(kw, minutes)
        if energy.denominator != 1:
            message = (
                f"{kw} kW is {float(energy):.10g} Wh per {minutes}-minute interval, "
                "not a whole number of Wh"
            )
            problems.append(_at(document, path, message))
    return problems


def check_dataset(document: Document, given: dict[str, Any], full: dict[str, Any]) -> list[Problem]:
    base: KeyPath = ("microgrid", "dataset")
    written = given.get("microgrid", {}).get("dataset", {})
    dataset = full["microgrid"]["dataset"]
    problems = []
    if dataset["kind"] == "transax":
        if "path" not in dataset:
            message = "missing required key (kind transax reads a directory of traces)"
            problems.append(_at(document, (*base, "path"), message))
        problems += [
            _at_key(document, (*base, k), "only valid with kind synthetic")
            for k in SYNTHETIC_ONLY
            if k in written
        ]
    elif "path" in written:
        problems.append(_at_key(document, (*base, "path"), "only valid with kind transax"))
    for i, prosumer in enumerate(dataset.get("prosumers") or ()):
        path = (*base, "prosumers", i)
        if prosumer < 101 or prosumer % 100 == 0:
            message = f"{prosumer} is not a prosumer id (feeder * 100 + n, n = 1..99)"
            problems.append(_at(document, path, message))
        elif dataset.get("feeders") is not None and prosumer // 100 not in dataset["feeders"]:
            message = (
                f"prosumer {prosumer} is in feeder {prosumer // 100}, "
                "which microgrid.dataset.feeders leaves out"
            )
            problems.append(_at(document, path, message))
    return problems


def check_names(document: Document, given: dict[str, Any], full: dict[str, Any]) -> list[Problem]:
    problems = []
    for section, key, what in (("solvers", None, "solver"), ("deployment", "hosts", "host")):
        items = full[section] if key is None else full[section][key]
        prefix: KeyPath = (section,) if key is None else (section, key)
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item["name"] in seen:
                message = f"duplicate {what} name {item['name']!r}"
                problems.append(_at(document, (*prefix, i, "name"), message))
            seen.add(item["name"])
    return problems


def check_deployment(
    document: Document, given: dict[str, Any], full: dict[str, Any]
) -> list[Problem]:
    deployment = full["deployment"]
    if not backend_entry(deployment["backend"]).hosts_need_address:
        return []
    return [
        _at(document, ("deployment", "hosts", i), "ssh hosts need an address")
        for i, host in enumerate(deployment["hosts"])
        if "address" not in host
    ]


def check_sweep(document: Document, given: dict[str, Any], full: dict[str, Any]) -> list[Problem]:
    """Every sweep key is a spec path that can be swept; every value is valid
    there (cross-key checks run per point when the sweep is expanded)."""
    return sweep_problems(document, full.get("sweep") or {})


def check_faults(document: Document, given: dict[str, Any], full: dict[str, Any]) -> list[Problem]:
    return fault_problems(document, given, full)


def check_grid(document: Document, given: dict[str, Any], full: dict[str, Any]) -> list[Problem]:
    from orchestrator.spec.gridchecks import grid_problems  # imports this package

    return grid_problems(document, given, full)


CHECKS: list[Check] = [
    check_market,
    check_feeders,
    check_dataset,
    scale_problems,
    check_names,
    check_deployment,
    check_sweep,
    check_faults,
    check_grid,
]
"""Later sections append their own checks here."""
