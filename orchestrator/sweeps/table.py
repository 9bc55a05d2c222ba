"""The sweep table (one row per point) as sweep.json, sweep.csv and sweep.md,
and the paper's Figure 9: total energy traded against the prediction window
L, one line per combination of the other sweep keys (e.g. without and with
battery, one tie-break policy or another), and, where the rows carry it, the
all-offers-at-once optimum of each dataset as a dashed upper bound."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.sweeps.points import SweepPoint, format_value

WINDOW_KEY = "market.prediction_window"
POLICY_KEY = "market.tie_break"
BOUND = "upper_bound_kwh"
FIG9 = "fig9-energy-vs-prediction-window.png"
BATTERY_KEYS = ("microgrid.dataset.battery",)


@dataclass
class SweepTable:
    spec: str
    sweep_id: str
    mode: str  # "run" | "replay"
    keys: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    directory: Path | None = None

    def add(self, point: SweepPoint, result: Mapping[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {"point": point.index, "name": point.name}
        row.update({k: v for k, v in point.values})
        row.update(result)
        self.rows.append(row)
        return row

    @property
    def columns(self) -> list[str]:
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row))
        return list(seen)

    def as_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "sweep_id": self.sweep_id,
            "mode": self.mode,
            "keys": self.keys,
            "points": self.rows,
        }

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns, extrasaction="ignore")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _cell(k, v) for k, v in row.items()})
        return out.getvalue()

    def to_markdown(self, columns: Sequence[str] | None = None) -> str:
        cols = list(columns or [c for c in self.columns if c not in ("name", "bundle")])
        lines = [
            f"# Sweep {self.spec} ({self.mode}, {self.sweep_id})",
            "",
            "| " + " | ".join(cols) + " |",
            "|" + "---|" * len(cols),
        ]
        for row in self.rows:
            lines.append("| " + " | ".join(_cell(c, row.get(c, "")) for c in cols) + " |")
        return "\n".join(lines) + "\n"

    def write(self, directory: Path) -> dict[str, Path]:
        """sweep.json, sweep.csv, sweep.md (and Figure 9 when L is swept)."""
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        paths = {
            "json": directory / "sweep.json",
            "csv": directory / "sweep.csv",
            "markdown": directory / "sweep.md",
        }
        paths["json"].write_text(json.dumps(self.as_dict(), indent=2, default=str) + "\n")
        paths["csv"].write_text(self.to_csv())
        paths["markdown"].write_text(self.to_markdown())
        figure = self.figure9(directory / FIG9)
        if figure is not None:
            paths["fig9"] = figure
        return paths

    def series(self) -> dict[str, list[tuple[float, float]]]:
        """Figure 9's lines: label -> [(L, total kWh)], from the rows with a total."""
        others = [k for k in self.keys if k != WINDOW_KEY]
        lines: dict[str, list[tuple[float, float]]] = {}
        for row in self.rows:
            total = row.get("total_energy_traded_kwh")
            if total is None or row.get(WINDOW_KEY) is None:
                continue
            label = ", ".join(series_label(k, row[k]) for k in others) or "total traded"
            lines.setdefault(label, []).append((float(row[WINDOW_KEY]), float(total)))
        return lines

    def bounds(self) -> dict[str, float]:
        """The all-at-once optimum (kWh) per dataset: label -> bound, from the rows'
        `upper_bound_kwh`; the label names the sweep keys other than L and the policy."""
        others = [k for k in self.keys if k not in (WINDOW_KEY, POLICY_KEY)]
        found: dict[str, float] = {}
        for row in self.rows:
            if row.get(BOUND) is None:
                continue
            label = ", ".join(series_label(k, row[k]) for k in others)
            name = f"{label}: all offers at once" if label else "all offers at once"
            found[name] = max(found.get(name, 0.0), float(row[BOUND]))
        return found

    def figure9(self, path: Path) -> Path | None:
        if WINDOW_KEY not in self.keys:
            return None
        from orchestrator.reports.figures import figure9

        title = f"{self.spec} ({self.mode})"
        return figure9(self.series(), path, title=title, bounds=self.bounds())


def series_label(key: str, value: Any) -> str:
    if key in BATTERY_KEYS and isinstance(value, bool):
        return "with battery" if value else "no battery"
    if key == POLICY_KEY:
        return str(value)
    if key == "microgrid.dataset.path":
        name = format_value(key, value)
        return {"withBattery": "with battery", "noBattery": "no battery"}.get(name, name)
    return f"{key.rsplit('.', 1)[-1]} = {format_value(key, value)}"


def _cell(key: str, value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return format_value(key, value) if value is not None else ""
