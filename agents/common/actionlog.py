"""`<out_dir>/behaviour.jsonl`: what an agent's adversarial behaviour actually did.

One JSON object per line, appended and flushed as it happens (a killed agent keeps what
it wrote); the orchestrator merges the agents' files into the run bundle:

    {"time": 1764180000.123,        unix seconds when it took effect
     "interval": 7,                 clock interval t (Solve(t)/Tick(t), or interval_at(now))
     "agent": "solver-2",
     "behaviour": "infeasible",     the behaviour (solver) or misbehaviour (prosumer)
     "action": "submit",            "switch" | "submit" | "post_offer"
     "detail": "...",               human-readable: what was built / posted
     "result": "reverted: SellEnergyExceeded"}
                                    "accepted" | "reverted: <ErrorName>" | "scheduled" |
                                    "skipped: <why>" | "dropped: <why>" | "switched"

Extra keys may follow (solver: "expected", "objective", "candidate", "trades",
"delay_seconds"; prosumer: "prosumer"). Pure stdlib: the prosumer host imports it too.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

FILENAME = "behaviour.jsonl"


class ActionLog:
    """Appends records to `<out_dir>/behaviour.jsonl` (nothing is written when out_dir is
    None); `records` keeps them in memory as well."""

    def __init__(self, out_dir: Path | None, agent: str) -> None:
        self.path = None if out_dir is None else Path(out_dir) / FILENAME
        self.agent = agent
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def write(
        self,
        interval: int | None,
        behaviour: str,
        action: str,
        detail: str,
        result: str,
        **extra: Any,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "time": round(time.time(), 3),
            "interval": interval,
            "agent": self.agent,
            "behaviour": behaviour,
            "action": action,
            "detail": detail,
            "result": result,
            **extra,
        }
        with self._lock:
            self.records.append(record)
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a") as fh:
                    fh.write(json.dumps(record, sort_keys=False) + "\n")
        return record


def read(path: Path) -> list[dict[str, Any]]:
    """The records of a behaviour.jsonl file (empty if it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
