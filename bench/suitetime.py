"""Where the test suite's time goes, per module: wall and CPU seconds.

Reads the per-test reports tests/suitetime.py writes (by default
.pytest_cache/suitetime.json; a suite run in parts, e.g. the swarm part under
its lock apart from the rest, gives one file per part) and prints JSON: per
module its tests, wall seconds, and CPU seconds of pytest itself, of the
processes the tests start and of this session's containers, the largest first.

CPU seconds barely depend on what else the machine runs; wall seconds do, so
the load average during each part is reported beside them. With --before, the
same table for an earlier run and the change per module.

Usage: python -m bench.suitetime [REPORT ...] [--before REPORT ...] [--top N] [--table]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

DEFAULT = Path(".pytest_cache/suitetime.json")
CPU_PARTS = ("cpu_self", "cpu_tree", "cpu_docker")


def load(paths: list[Path]) -> list[dict[str, Any]]:
    """Every test record of `paths`, each file's load averages kept per record."""
    return [test for path in paths for test in json.loads(path.read_text())["tests"]]


def per_module(tests: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Sums per module: tests, wall, each CPU part and their total; mean load."""
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    loads: dict[str, list[float]] = defaultdict(list)
    for test in tests:
        row = sums[test["module"]]
        row["tests"] += 1
        row["wall"] += test["wall"]
        for part in CPU_PARTS:
            row[part] += test[part]
        row["cpu"] += sum(test[part] for part in CPU_PARTS)
        loads[test["module"]].append(test["load1"])
    return {
        module: {k: round(v, 1) for k, v in row.items()}
        | {"load1": round(statistics.mean(loads[module]), 1)}
        for module, row in sums.items()
    }


def totals(tests: list[dict[str, Any]]) -> dict[str, float]:
    out = {
        "tests": len(tests),
        "wall": round(sum(t["wall"] for t in tests), 1),
        "cpu": round(sum(t[p] for t in tests for p in CPU_PARTS), 1),
    }
    out |= {p: round(sum(t[p] for t in tests), 1) for p in CPU_PARTS}
    if tests:
        out["load1_mean"] = round(statistics.mean(t["load1"] for t in tests), 1)
    return out


def summary(paths: list[Path], top: int) -> dict[str, Any]:
    tests = load(paths)
    modules = per_module(tests)
    ranked = sorted(modules.items(), key=lambda kv: -kv[1]["wall"])
    return {
        "reports": [str(p) for p in paths],
        "total": totals(tests),
        "modules": dict(ranked[:top]),
    }


def compare(after: dict[str, Any], before: dict[str, Any], top: int) -> dict[str, Any]:
    """[before, after] wall and CPU of the `top` modules of each run by wall."""
    out: dict[str, Any] = {}
    ranked = [*list(before["modules"])[:top], *list(after["modules"])[:top]]
    for module in dict.fromkeys(ranked):
        b = before["modules"].get(module, {})
        a = after["modules"].get(module, {})
        out[module] = {
            "wall": [b.get("wall"), a.get("wall")],
            "cpu": [b.get("cpu"), a.get("cpu")],
        }
    return out


def table(result: dict[str, Any]) -> str:
    lines = [f"{'wall s':>8} {'cpu s':>8} {'tests':>5} {'load':>6}  module"]
    rows = [(m, r["wall"], r["cpu"], r["tests"], r["load1"]) for m, r in result["modules"].items()]
    t = result["total"]
    rows.append(("all", t["wall"], t["cpu"], t["tests"], t.get("load1_mean", 0.0)))
    for module, wall, cpu, tests, load1 in rows:
        lines.append(f"{wall:8.1f} {cpu:8.1f} {int(tests):5d} {load1:6.1f}  {module}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="*", type=Path, default=[DEFAULT])
    parser.add_argument("--before", nargs="+", type=Path, default=[])
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--table", action="store_true", help="a text table, not JSON")
    args = parser.parse_args(argv)
    result = summary(args.reports, args.top)
    if args.before:
        before = summary(args.before, 10**6)
        result["before_total"] = before["total"]
        result["change"] = compare(summary(args.reports, 10**6), before, args.top)
    if args.table:
        print(table(result))
        if args.before:
            print(f"before: {json.dumps(result['before_total'])}")
    else:
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
