"""Prometheus text exposition: parse it, and scrape an endpoint (readiness
probes, progress lines, tests)."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

SCRAPE_TIMEOUT_SECONDS = 1.0

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition -> {"name{labels}": value} (comments skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            continue
        try:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
        except ValueError:
            continue
    return out


def scrape(url: str, timeout: float = SCRAPE_TIMEOUT_SECONDS) -> dict[str, float] | None:
    """The metrics at `url`, or None when the endpoint does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return parse_metrics(resp.read().decode("utf-8", "replace"))
    except (OSError, urllib.error.URLError, ValueError):
        return None
