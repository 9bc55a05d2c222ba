"""`testbed results prune`: remove old or failed results bundles, never the
bundle of a run that is still going (orchestrator.liveruns)."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import TestbedError
from orchestrator.liveruns import bundle_running
from orchestrator.results.bundle import BundleInfo, list_bundles, read_json

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


class UsageError(TestbedError):
    exit_code = 2


def parse_duration(text: str) -> float:
    """Seconds in `90s`, `30m`, `12h`, `7d`, `2w` or `1d12h`."""
    parts = _DURATION.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise argparse.ArgumentTypeError(
            f"{text!r} is no duration: a number and a unit s, m, h, d or w (e.g. 7d, 12h, 1d12h)"
        )
    return sum(float(n) * UNITS[u] for n, u in parts)


@dataclass(frozen=True, slots=True)
class Candidate:
    info: BundleInfo
    started: float | None  # epoch seconds

    @property
    def failed(self) -> bool:
        """Anything but a run that ended ok (killed, interrupted, crashed, never finished)."""
        return self.info.status != "ok"


def candidates(root: Path) -> list[Candidate]:
    found = []
    for info in list_bundles(root):
        manifest = read_json(info.path / "manifest.json") or {}
        started = manifest.get("started")
        found.append(Candidate(info, float(started) if started else None))
    return found


def select(
    bundles: Iterable[Candidate],
    *,
    keep: int | None,
    older_than: float | None,
    failed_only: bool,
    now: float,
) -> list[Candidate]:
    """The bundles every given criterion picks: beyond the newest `keep` of their
    spec, started more than `older_than` seconds before `now`, not ended ok."""
    by_spec: dict[str, list[Candidate]] = defaultdict(list)
    for c in bundles:
        by_spec[c.info.spec_name].append(c)
    picked = []
    for runs in by_spec.values():
        runs.sort(key=lambda c: (c.started or 0.0, c.info.run_id), reverse=True)  # newest first
        for rank, c in enumerate(runs):
            if keep is not None and rank < keep:
                continue
            if older_than is not None and (c.started is None or now - c.started <= older_than):
                continue
            if failed_only and not c.failed:
                continue
            picked.append(c)
    return sorted(picked, key=lambda c: (c.info.spec_name, c.info.run_id))


def cmd_prune(args: argparse.Namespace, root: Path) -> int:
    if args.keep is None and args.older_than is None and not args.failed:
        raise UsageError(
            "testbed results prune: say what to remove: --keep N, --older-than AGE, --failed"
        )
    if not root.is_dir():
        raise UsageError(f"testbed results prune: {root}: no such directory")
    if args.keep is not None and args.keep < 0:
        raise UsageError("testbed results prune: --keep must be >= 0")
    picked = select(
        candidates(root),
        keep=args.keep,
        older_than=args.older_than,
        failed_only=args.failed,
        now=time.time(),
    )
    removed, running = [], []
    for c in picked:
        if bundle_running(c.info.path):
            running.append(c)
            continue
        if not args.dry_run:
            shutil.rmtree(c.info.path)
            _remove_if_empty(c.info.path.parent, root)
        removed.append(c)
    _print(args, removed, running)
    return 0


def _remove_if_empty(spec_dir: Path, root: Path) -> None:
    """The spec's folder goes with its last bundle (never `root` itself)."""
    if spec_dir.resolve() != root.resolve() and spec_dir.is_dir() and not any(spec_dir.iterdir()):
        spec_dir.rmdir()


def _print(args: argparse.Namespace, removed: list[Candidate], running: list[Candidate]) -> None:
    verb = "would remove" if args.dry_run else "removed"
    if args.json:
        report = {
            "dry_run": args.dry_run,
            "removed": [c.info.as_dict() for c in removed],
            "kept_running": [c.info.as_dict() for c in running],
        }
        print(json.dumps(report, indent=2))
        return
    for c in removed:
        print(f"{verb} {c.info.path} ({c.info.status or 'incomplete'})")
    for c in running:
        print(f"kept {c.info.path} (its run is still going)")
    kept = f", kept {len(running)} running" if running else ""
    print(f"{verb} {len(removed)} bundle(s){kept}")
