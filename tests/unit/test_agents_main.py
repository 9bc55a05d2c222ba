"""`python -m agents`: the command line read without argparse gives what argparse gives;
a started agent collects garbage again once its role's modules are imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agents.__main__ import parse_args


@pytest.mark.parametrize(
    "argv",
    [
        ["prosumer", "--config", "host.json"],
        ["dso", "--config", "/tmp/a b.json"],
        ["--config", "host.json", "solver"],
        ["--config=host.json", "clock"],
    ],
)
def test_roles_and_configs_as_argparse_reads_them(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("role")
    parser.add_argument("--config", required=True)
    expected = parser.parse_args(argv)
    assert parse_args(argv) == (expected.role, expected.config)


@pytest.mark.parametrize(
    "argv",
    [["nope", "--config", "x"], ["prosumer"], ["prosumer", "x"], ["dso", "--config", "-x"]],
)
def test_other_command_lines_are_argparse_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2


# `python -m agents clock --config ...` with its config and its role's run() replaced: what
# the role sees of the garbage collector, and whether the import phase ran without it
PROBE = """
import gc, json, runpy, sys, types
import agents.clock, agents.common.config
seen = {}
def run(config, shutdown):
    seen.update(enabled=gc.isenabled(), frozen=gc.get_freeze_count())
    return 0
agents.clock.run = run
config = types.SimpleNamespace(
    role="clock", name="c", log_level="INFO", metrics_host="127.0.0.1", metrics_port=0,
    out_dir=__import__("pathlib").Path(sys.argv[1]),
)
agents.common.config.load_config = lambda path: config
sys.argv = ["agents", "clock", "--config", "unused.json"]
try:
    runpy.run_module("agents", run_name="__main__")
except SystemExit as exc:
    seen["code"] = exc.code
print(json.dumps(seen))
"""


def test_the_role_runs_with_garbage_collection_on_and_start_up_objects_frozen(
    tmp_path: Path,
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["code"] == 0
    assert seen["enabled"] is True
    assert seen["frozen"] > 10_000  # the modules' objects, out of later collections
