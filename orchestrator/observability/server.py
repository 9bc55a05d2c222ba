"""The Prometheus server: its command line and its HTTP API.

The binary is the Debian package's (`prometheus` on PATH, installed by
scripts/setup.sh) or $TESTBED_PROMETHEUS. Who starts the process (a backend
unit with a pidfile, or `testbed metrics` in the foreground) is the caller's
business; this module only builds argv and talks HTTP.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import TestbedError

HTTP_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.1
# Stored data never expires: a bundle's snapshot is explored months later.
RETENTION = "100y"


class PrometheusError(TestbedError):
    """Prometheus is missing, did not start, or answered with an error."""

    exit_code = 1


def prometheus_binary() -> str | None:
    """$TESTBED_PROMETHEUS, else `prometheus` on PATH."""
    configured = os.environ.get("TESTBED_PROMETHEUS")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("prometheus")


def require_binary() -> str:
    binary = prometheus_binary()
    if binary is None:
        raise PrometheusError(
            "prometheus: executable not found (install the Debian package `prometheus`, "
            "e.g. with scripts/setup.sh, or point TESTBED_PROMETHEUS at one)"
        )
    return binary


def prometheus_argv(
    binary: str, *, config: str, tsdb: str, listen: str, admin_api: bool = True
) -> list[str]:
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tsdb}",
        f"--storage.tsdb.retention.time={RETENTION}",
        f"--web.listen-address={listen}",
        "--log.level=info",
    ]
    if admin_api:
        argv.append("--web.enable-admin-api")  # POST /api/v1/admin/tsdb/snapshot
    return argv


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a query result: its labels and (unix time, value) samples."""

    labels: dict[str, str]
    samples: list[tuple[float, float]]

    @property
    def finite(self) -> list[float]:
        return [v for _, v in self.samples if v == v and abs(v) != float("inf")]


class PrometheusApi:
    """The HTTP API of one Prometheus server at `url` (http://host:port)."""

    def __init__(self, url: str, timeout: float = HTTP_TIMEOUT_SECONDS) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    # -- plumbing --------------------------------------------------------------
    def _request(self, path: str, params: dict[str, Any] | None = None, post: bool = False) -> Any:
        query = urllib.parse.urlencode(params or {}, doseq=True)
        url = f"{self.url}{path}"
        data = None
        if post:
            data = query.encode()
        elif query:
            url += "?" + query
        request = urllib.request.Request(url, data=data, method="POST" if post else "GET")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise PrometheusError(
                f"prometheus {path}: HTTP {exc.code}: {_error_of(detail)}"
            ) from exc
        except (OSError, urllib.error.URLError) as exc:
            raise PrometheusError(f"prometheus at {self.url} not answering: {exc}") from exc
        if path.startswith("/-/"):
            return body.decode("utf-8", "replace")
        doc = json.loads(body)
        if doc.get("status") != "success":
            raise PrometheusError(f"prometheus {path}: {doc.get('error', doc)}")
        return doc.get("data")

    # -- health ----------------------------------------------------------------
    def ready(self) -> bool:
        try:
            self._request("/-/ready")
        except PrometheusError:
            return False
        return True

    def wait_ready(self, timeout: float, alive: Callable[[], None] = lambda: None) -> None:
        """Until /-/ready answers; `alive()` raises when the process died."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            alive()
            if time.monotonic() > deadline:
                raise PrometheusError(f"prometheus at {self.url}: not ready after {timeout:g} s")
            time.sleep(POLL_SECONDS)

    def active_targets(self) -> list[dict[str, Any]]:
        data = self._request("/api/v1/targets", {"state": "active"})
        return list(data.get("activeTargets", []))

    def wait_targets(
        self, count: int, timeout: float, *, moving: bool = False, poll: float = POLL_SECONDS * 2
    ) -> None:
        """Until `count` targets are discovered (Prometheus applies a static
        config's targets only after its discovery manager's first update, ~5 s).
        `moving`: the timeout runs from the last time more were found (a swarm's
        hosts are found as their tasks are made); asked every `poll` seconds."""
        deadline = time.monotonic() + timeout
        found = best = len(self.active_targets())
        while found < count:
            if time.monotonic() > deadline:
                raise PrometheusError(
                    f"prometheus at {self.url}: {found} of {count} scrape targets "
                    f"discovered after {timeout:g} s" + (" without more found" if moving else "")
                )
            time.sleep(poll)
            found = len(self.active_targets())
            if moving and found > best:
                best, deadline = found, time.monotonic() + timeout

    def build_info(self) -> dict[str, Any]:
        return dict(self._request("/api/v1/status/buildinfo"))

    # -- data ------------------------------------------------------------------
    def query(self, expr: str, at: float | None = None) -> list[Series]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return _series(self._request("/api/v1/query", params))

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step}"}
        return _series(self._request("/api/v1/query_range", params))

    def label_values(
        self,
        label: str,
        match: Sequence[str] = (),
        start: float | None = None,
        end: float | None = None,
    ) -> list[str]:
        params: dict[str, Any] = {}
        if match:
            params["match[]"] = list(match)
        if start is not None and end is not None:
            params["start"], params["end"] = f"{start:.3f}", f"{end:.3f}"
        return [str(v) for v in self._request(f"/api/v1/label/{label}/values", params)]

    def snapshot(self) -> str:
        """Snapshot the TSDB (head included); the name of the folder made under
        <tsdb>/snapshots/."""
        return str(self._request("/api/v1/admin/tsdb/snapshot", post=True)["name"])


def _series(data: dict[str, Any]) -> list[Series]:
    kind, result = data.get("resultType"), data.get("result", [])
    if kind == "matrix":
        return [
            Series(dict(r["metric"]), [(float(t), float(v)) for t, v in r["values"]])
            for r in result
        ]
    if kind == "vector":
        return [
            Series(dict(r["metric"]), [(float(r["value"][0]), float(r["value"][1]))])
            for r in result
        ]
    if kind == "scalar":
        return [Series({}, [(float(result[0]), float(result[1]))])]
    return []


def _error_of(body: str) -> str:
    try:
        return str(json.loads(body).get("error", body))
    except ValueError:
        return body.strip()[:200]
