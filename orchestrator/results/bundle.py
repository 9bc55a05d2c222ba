"""The results bundle on disk: `results/<spec name>/<run id>/`.

Layout (ARCHITECTURE.md "Results bundle"):
    spec.yaml        the resolved spec
    manifest.json    what produced it (see manifest.py), updated with the outcome
    config/          every agent's rendered config
    events/          the recorder's CSVs (offers, solutions, trades), written as they happen
    agents/<name>/   other agents' own output
    logs/<agent>.log one log per process (chain.log for the node)
    summary.json     built from events/ when the run ends, whatever the outcome
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.common.config import REDACTED

DEFAULT_RESULTS_DIR = Path("results")
CONFIG_DIR, EVENTS_DIR, LOGS_DIR, AGENTS_DIR = "config", "events", "logs", "agents"
RECORDER = "recorder"  # the role whose output folder is the run's events/


def new_run_id(now: float | None = None) -> str:
    """Sortable and unique enough: UTC time to the second plus 4 random hex digits."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    return f"{stamp}-{secrets.token_hex(2)}"


def write_json(path: Path, data: Any) -> None:
    """Write atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True, slots=True)
class Bundle:
    path: Path

    @classmethod
    def create(cls, out: Path, spec_name: str, run_id: str) -> Bundle:
        path = out / spec_name / run_id
        path.mkdir(parents=True, exist_ok=False)
        return cls(path.resolve()).make_dirs()

    def make_dirs(self) -> Bundle:
        """The folders every run writes into (backends call it again: idempotent)."""
        for sub in (CONFIG_DIR, EVENTS_DIR, LOGS_DIR):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        return self

    @property
    def events(self) -> Path:
        return self.path / EVENTS_DIR

    @property
    def logs(self) -> Path:
        return self.path / LOGS_DIR

    @property
    def config_dir(self) -> Path:
        return self.path / CONFIG_DIR

    def config_file(self, agent: str) -> Path:
        """Agent `agent`'s rendered config."""
        return self.config_dir / f"{agent}.json"

    def log_file(self, unit: str) -> Path:
        """Unit `unit`'s stdout and stderr (chain.log for the node)."""
        return self.logs / f"{unit}.log"

    def out_dir(self, agent: str, role: str) -> Path:
        """Agent `agent`'s output folder (the recorder writes the run's events)."""
        return self.events if role == RECORDER else self.path / AGENTS_DIR / agent

    @property
    def manifest_file(self) -> Path:
        return self.path / "manifest.json"

    @property
    def summary_file(self) -> Path:
        return self.path / "summary.json"

    def write_spec(self, text: str) -> None:
        (self.path / "spec.yaml").write_text(text)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json(self.manifest_file, manifest)

    def update_manifest(self, **fields: Any) -> None:
        manifest = read_json(self.manifest_file) or {}
        manifest.update(fields)
        write_json(self.manifest_file, manifest)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.summary_file, summary)


KILLED_MESSAGE = "the orchestrator was killed; `testbed clean` stopped what it left running"


def redact_key_secrets(path: Path) -> list[Path]:
    """Overwrite the key secret in every agent config of bundle `path` (what a run's
    teardown does: orchestrator.render.redact_secrets); returns the files changed."""
    changed = []
    for config in sorted((path / CONFIG_DIR).glob("*.json")):
        data = read_json(config)
        if data is None or data.get("key_secret") in (None, "", REDACTED):
            continue
        data["key_secret"] = REDACTED
        tmp = config.with_name(config.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        tmp.replace(config)
        changed.append(config)
    return changed


def mark_killed(path: Path) -> bool:
    """Record outcome `killed` in the manifest of a bundle whose run never
    finished (no outcome yet), and redact the key secret its teardown never
    redacted (`testbed clean` calls it once the run's processes are stopped);
    False if it has an outcome or is no bundle."""
    manifest = read_json(path / "manifest.json")
    if manifest is None or manifest.get("outcome"):
        return False
    redact_key_secrets(path)
    outcome = {"status": "killed", "exit_code": None, "message": KILLED_MESSAGE}
    Bundle(path).update_manifest(outcome={**outcome, "cleaned": time.time()})
    return True


@dataclass(frozen=True, slots=True)
class BundleInfo:
    path: Path
    spec_name: str
    run_id: str
    status: str | None
    exit_code: int | None
    total_energy_traded_kwh: float | None
    wall_seconds: float | None
    rerun_of: str | None = None  # the run id a `testbed rerun` repeated

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "spec": self.spec_name,
            "run_id": self.run_id,
            "status": self.status,
            "exit_code": self.exit_code,
            "total_energy_traded_kwh": self.total_energy_traded_kwh,
            "wall_seconds": self.wall_seconds,
            "rerun_of": self.rerun_of,
        }


def bundle_info(path: Path) -> BundleInfo | None:
    manifest = read_json(path / "manifest.json")
    if manifest is None:
        return None
    summary = read_json(path / "summary.json") or {}
    outcome = manifest.get("outcome") or {}
    return BundleInfo(
        path=path,
        spec_name=str(manifest.get("spec_name", path.parent.name)),
        run_id=str(manifest.get("run_id", path.name)),
        status=outcome.get("status"),
        exit_code=outcome.get("exit_code"),
        total_energy_traded_kwh=summary.get("total_energy_traded_kwh"),
        wall_seconds=outcome.get("wall_seconds"),
        rerun_of=(manifest.get("rerun_of") or {}).get("run_id"),
    )


def list_bundles(root: Path) -> list[BundleInfo]:
    """Bundles under `root`: either a results dir (<spec>/<run>/), a spec dir
    (<run>/) or one bundle. Sorted by run id (i.e. by start time)."""
    if not root.is_dir():
        return []
    candidates = [root, *root.iterdir()]
    candidates += [p for d in root.iterdir() if d.is_dir() for p in d.iterdir()]
    found = [info for p in candidates if p.is_dir() and (info := bundle_info(p)) is not None]
    return sorted(found, key=lambda b: (b.run_id, b.spec_name))
