"""What a faults run leaves in its bundle, and the comparison with a baseline.

- `faults.jsonl`: one JSON object per line, sorted by time: every injector
  step as planned and as it took effect (`source: injector`: unix time, clock
  interval, ok/error), every configured adversary (`source: config`), and
  what the agents report took effect (`source: agent`, from each agent's
  `behaviour.jsonl`).
- summary.json `faults`: counts of the above, the agents killed by faults and
  the agents that crashed on their own.
- `comparison(faulty, baseline)`: energy traded, offer-to-trade p50/p99,
  solutions accepted/rejected, each with the difference (faults - baseline).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

FAULTS_FILE = "faults.jsonl"
BEHAVIOUR_FILE = "behaviour.jsonl"


def agent_behaviour(bundle: Path) -> list[dict[str, Any]]:
    """Every agent's behaviour.jsonl lines, each with `agent` and `source: agent`."""
    out: list[dict[str, Any]] = []
    for path in sorted((bundle / "agents").glob(f"*/{BEHAVIOUR_FILE}")):
        for line in path.read_text().splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill
            if isinstance(item, dict):
                out.append({"source": "agent", "agent": path.parent.name, **item})
    return out


def write_fault_log(
    bundle: Path, records: Iterable[Mapping[str, Any]], configured: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    rows = [{"source": "injector", **r} for r in records]
    rows += [{"source": "config", "time": None, **c} for c in configured]
    rows += agent_behaviour(bundle)
    rows.sort(key=lambda r: (r.get("time") is not None, r.get("time") or 0))
    with open(bundle / FAULTS_FILE, "w") as out:
        for row in rows:
            out.write(json.dumps(row, sort_keys=False, default=str) + "\n")
    return rows


def fault_summary(
    rows: list[dict[str, Any]], down: Iterable[str], crashed: Iterable[str]
) -> dict[str, Any]:
    """`down`: units a fault killed that were never restarted; `crashed`: units
    that exited non-zero on their own."""
    applied = [r for r in rows if r["source"] == "injector"]
    return {
        "actions_planned": len(applied),
        "actions_applied": sum(1 for r in applied if r.get("ok")),
        "actions_failed": [
            f"{r['action']} {_what(r)}: {r.get('error')}" for r in applied if not r.get("ok")
        ],
        "timeline": [
            {
                k: r.get(k)
                for k in ("action", "unit", "at_interval", "at_seconds", "clock_interval", "ok")
            }
            | ({"node": r["node"], "lost": r.get("lost")} if r.get("node") else {})
            for r in applied
        ],
        "adversaries_configured": sum(1 for r in rows if r["source"] == "config"),
        "agent_behaviour": dict(
            Counter(f"{r['agent']}:{r.get('behaviour')}" for r in rows if r["source"] == "agent")
        ),
        "killed_by_faults": sorted(
            {r["unit"] for r in applied if r["action"] == "kill" and r.get("ok")}
        ),
        # node faults: the units each drained or stopped node took with it
        "lost_with_nodes": {
            r["node"]: r.get("lost") or [] for r in applied if r.get("node") and r.get("ok")
        },
        "down_at_end": sorted(down),
        "crashed": sorted(crashed),
    }


def _what(record: Mapping[str, Any]) -> str:
    if record.get("node") or record.get("action") in ("drain", "stop"):
        return f"node {record.get('node') or record.get('target')}"
    return str(record.get("unit") or record.get("target"))


def _get(summary: Mapping[str, Any], *path: str) -> float | None:
    node: Any = summary
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, int | float) else None


METRICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("energy_traded_kwh", ("total_energy_traded_kwh",)),
    ("offers", ("offers",)),
    ("offer_to_trade_p50_s", ("offer_to_trade_seconds", "p50")),
    ("offer_to_trade_p99_s", ("offer_to_trade_seconds", "p99")),
    ("solutions_accepted", ("solutions", "accepted")),
    ("solutions_rejected", ("solutions", "rejected")),
)


def comparison(
    faulty: Mapping[str, Any], baseline: Mapping[str, Any], baseline_bundle: Path | None = None
) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for name, path in METRICS:
        a, b = _get(faulty, *path), _get(baseline, *path)
        diff = None if a is None or b is None else round(a - b, 6)
        rows[name] = {"faults": a, "baseline": b, "difference": diff}
    out: dict[str, Any] = {"metrics": rows, "baseline_status": baseline.get("status")}
    if baseline_bundle is not None:
        out["baseline_bundle"] = str(baseline_bundle)
    return out


def report_lines(summary: Mapping[str, Any]) -> list[str]:
    """The faults part of `testbed run`'s printed summary."""
    lines: list[str] = []
    faults = summary.get("faults") or {}
    if faults:
        killed = ", ".join(faults.get("killed_by_faults") or []) or "none"
        crashed = ", ".join(faults.get("crashed") or []) or "none"
        applied = f"{faults.get('actions_applied', 0)}/{faults.get('actions_planned', 0)}"
        lines.append(
            f"  faults: {applied} actions applied; killed by faults: {killed}; "
            f"crashed on their own: {crashed}"
        )
        lines += [f"    failed: {f}" for f in faults.get("actions_failed") or []]
    if summary.get("baseline"):
        lines += comparison_lines(summary["baseline"])
    return lines


def comparison_lines(block: Mapping[str, Any]) -> list[str]:
    lines = [f"  vs baseline (faults - baseline; {block.get('baseline_bundle', '')}):"]
    for name, row in block.get("metrics", {}).items():
        a, b, d = row["faults"], row["baseline"], row["difference"]
        sign = "" if d is None or d < 0 else "+"
        lines.append(f"    {name:<22} {_fmt(a):>10} vs {_fmt(b):>10}  ({sign}{_fmt(d)})")
    return lines


def _fmt(value: float | None) -> str:
    """Counts as integers, the rest with three decimals (kWh, seconds)."""
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"
