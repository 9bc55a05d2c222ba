"""A run's plan with its faults: `build_plan` plus the spec's `faults:` expanded
against it and rendered into the agents' settings (kept apart from plan.py, which
the fault timeline itself imports), and the key secret a run is given to repeat
another exactly."""

from __future__ import annotations

import hashlib
from pathlib import Path

from orchestrator.errors import TestbedError
from orchestrator.faults.timeline import FaultPlan, apply_to_plan, build_timeline
from orchestrator.plan import Plan, build_plan
from orchestrator.scenario import Scenario


def plan_run(
    scenario: Scenario, backend: str, run_id: str, key_secret: bytes | None = None
) -> tuple[Plan, FaultPlan | None]:
    """The run's plan, with the spec's `faults:` expanded and rendered into it
    (`key_secret`: as build_plan's)."""
    plan = build_plan(scenario, backend, run_id, key_secret)
    spec = scenario.spec
    faults = build_timeline(spec.faults, plan) if spec.faults else None
    return (plan if faults is None else apply_to_plan(plan, faults)), faults


MIN_KEY_SECRET_BYTES = 16


class KeySecretError(TestbedError):
    """The key secret file cannot be used (nothing was started)."""

    exit_code = 2


def read_key_secret(path: Path) -> bytes:
    """The secret behind a run's anonymous keys, from a file of hex digits (e.g.
    `openssl rand -hex 32 > FILE`): a run given the file of an earlier run posts
    from the same addresses. The secret goes into no file of the bundle."""
    where = f"key secret file {path}"
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeySecretError(f"{where}: cannot read it ({exc})") from None
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise KeySecretError(
            f"{where}: expected hex digits only (e.g. `openssl rand -hex 32 > FILE`)"
        ) from None
    if len(secret) < MIN_KEY_SECRET_BYTES:
        raise KeySecretError(
            f"{where}: {len(secret)} bytes; at least {MIN_KEY_SECRET_BYTES} "
            f"({2 * MIN_KEY_SECRET_BYTES} hex digits) are needed"
        )
    return secret


def key_secret_fingerprint(secret: bytes) -> str:
    """Says whether two runs had the same secret (in the manifest) and tells nothing of it."""
    return hashlib.sha256(b"te-testbed key secret fingerprint\0" + secret).hexdigest()[:16]
