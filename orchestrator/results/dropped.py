"""Offers the prosumer hosts could not post, and what that makes of a run.

A host that gets no answer from the DSO to its withdraw request (three tries,
agents.prosumer) drops that tick's offers and carries on; an honest postOffer
that reverts is lost too. Each host appends such losses to its
`agents/<host>/dropped.jsonl` (agents.prosumer.host.DROPPED_FILE):

    {"time": 1764180000.1, "interval": 44, "reason": "dsoUnreachable",
     "offers": 120, "detail": "no reply from tcp://... to withdrawBatch after 3 x 30 s"}

summary.json `dropped_offers` counts them by host and by reason (total 0 for a
clean run). The market of such a run is not the one the spec describes, so a
run that otherwise ended ok is `degraded` (orchestrator.lifecycle.degraded).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agents.prosumer.host import DROPPED_FILE
REASONS = {
    "dsoUnreachable": "DSO did not answer the withdraw request",
    "reverted": "postOffer reverted",
}


def dropped_offers(bundle: Path) -> dict[str, Any]:
    """{"total", "by_reason": {reason: offers}, "by_host": {host: {reason: offers}}}."""
    by_host: dict[str, Counter[str]] = {}
    for path in sorted((bundle / "agents").glob(f"*/{DROPPED_FILE}")):
        for line in path.read_text().splitlines():
            try:
                item = json.loads(line)
                reason, offers = str(item["reason"]), int(item["offers"])
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a kill
            by_host.setdefault(path.parent.name, Counter())[reason] += offers
    by_reason: Counter[str] = Counter()
    for counts in by_host.values():
        by_reason.update(counts)
    return {
        "total": sum(by_reason.values()),
        "by_reason": dict(sorted(by_reason.items())),
        "by_host": {host: dict(sorted(c.items())) for host, c in sorted(by_host.items())},
    }


def describe(dropped: Mapping[str, Any]) -> str:
    """`1,234 offers dropped: prosumers-03 1,200 (DSO did not answer ...), ...`
    (empty when none was)."""
    if not dropped.get("total"):
        return ""
    hosts = [
        f"{host} {n:,} ({REASONS.get(reason, reason)})"
        for host, counts in (dropped.get("by_host") or {}).items()
        for reason, n in counts.items()
    ]
    return f"{dropped['total']:,} offers dropped: {', '.join(hosts)}"
