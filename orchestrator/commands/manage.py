"""Run management, the conventions compose/Locust/Kurtosis users expect:
`testbed ps` (live runs), `rerun BUNDLE`, `logs BUNDLE [AGENT] [-f]` and
`completion SHELL`. (`results prune` is in commands/prune.py, `init` in
commands/author.py.)"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

from orchestrator.commands import add_command
from orchestrator.commands.author import register_init
from orchestrator.commands.prune import UsageError
from orchestrator.errors import TestbedError
from orchestrator.liveruns import LiveRun, bundle_running, recorded_runs
from orchestrator.results.bundle import CONFIG_DIR, DEFAULT_RESULTS_DIR, LOGS_DIR, read_json

FOLLOW_POLL_SECONDS = 0.25  # `logs -f`: how often the log and the run are looked at
CHUNK = 1 << 16


def resolve_bundle(text: str, results: Path = DEFAULT_RESULTS_DIR) -> Path:
    """A bundle directory, or a run id: a live run's bundle, else results/<spec>/<id>."""
    path = Path(text)
    if (path / "manifest.json").is_file():
        return path
    for run in recorded_runs(include_dead=True):
        if run.run_id == text and run.bundle is not None:
            return run.bundle
    found = sorted(results.glob(f"*/{text}/manifest.json")) if "/" not in text else []
    if len(found) == 1:
        return found[0].parent
    raise UsageError(f"{text}: no results bundle (a bundle directory or a run id, see testbed ps)")


# -- ps -----------------------------------------------------------------------


def register_ps(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "ps",
        "List the runs going on now (from the backends' recorded run state).",
        """
testbed ps
testbed ps --json
testbed ps --all          # also runs whose orchestrator died (testbed clean removes those)
""",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON list")
    parser.add_argument(
        "--all", action="store_true", help="also list recorded runs whose orchestrator is gone"
    )
    parser.set_defaults(handler=cmd_ps)


def cmd_ps(args: argparse.Namespace) -> int:
    runs = recorded_runs(include_dead=args.all)
    if args.json:
        print(json.dumps([r.as_dict() for r in runs], indent=2))
        return 0
    if not runs:
        print("no runs going on" + ("" if args.all else " (--all: also dead ones)"))
        return 0
    row = "{:<22} {:<16} {:<7} {:<20} {:>8} {:>9} {:>8}  {}"
    header = ("run id", "spec", "backend", "started (UTC)", "up", "progress", "pid", "bundle")
    print(row.format(*header))
    now = time.time()
    for r in runs:
        print(
            row.format(
                r.run_id,
                r.spec or "-",
                r.backend,
                _utc(r.started),
                _age(now - r.started) if r.started else "-",
                _progress(r),
                r.pid if r.pid is not None else "-",
                (r.bundle or "-") if r.alive else f"{r.bundle or '-'} (orchestrator gone)",
            )
        )
    return 0


def _utc(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp)) if stamp else "-"


def _age(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _progress(run: LiveRun) -> str:
    if run.intervals is None:
        return "-"
    return f"{run.finalized or 0}/{run.intervals}"


# -- logs ---------------------------------------------------------------------


def register_logs(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "logs",
        "Print or follow one agent's log of a run (a bundle or a run id).",
        """
testbed logs results/smoke/20261206T072301Z-1a2b               # which logs there are
testbed logs results/smoke/20261206T072301Z-1a2b dso           # print the DSO's log
testbed logs 20261206T072301Z-1a2b prosumers-01 -f             # follow it until the run ends
testbed logs results/smoke/20261206T072301Z-1a2b 703           # the host running prosumer 703
testbed logs results/smoke/20261206T072301Z-1a2b chain         # the node (orchestrator: the run)
""",
    )
    parser.add_argument("bundle", metavar="BUNDLE", help="a results bundle, or a run id")
    parser.add_argument(
        "agent",
        metavar="AGENT",
        nargs="?",
        help="an agent (dso, solver-1, prosumers-01, ...), chain, orchestrator, or a prosumer id",
    )
    parser.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep printing what is written while the run goes on; stop when it ends",
    )
    parser.set_defaults(handler=cmd_logs)


def log_names(bundle: Path) -> list[str]:
    return sorted(p.stem for p in (bundle / LOGS_DIR).glob("*.log"))


def planned_agents(bundle: Path) -> list[str]:
    """The agents the manifest's plan names (their logs may not exist yet)."""
    plan = (read_json(bundle / "manifest.json") or {}).get("plan") or {}
    return sorted(plan.get("agents") or {})


def cmd_logs(args: argparse.Namespace) -> int:
    bundle = resolve_bundle(args.bundle)
    known = sorted({*log_names(bundle), *planned_agents(bundle), "chain", "orchestrator"})
    if args.agent is None:
        for name in log_names(bundle):
            size = (bundle / LOGS_DIR / f"{name}.log").stat().st_size
            print(f"{name:<20} {size:>10} bytes")
        return 0
    agent = args.agent
    if agent.isdigit() and agent not in known:
        agent = host_of_prosumer(bundle, int(agent))
        print(f"prosumer {args.agent} runs on {agent}", file=sys.stderr)
    if agent not in known:
        raise UsageError(
            f"{bundle}: no agent {agent!r} (agents: {', '.join(known)}; or a prosumer id)"
        )
    log = bundle / LOGS_DIR / f"{agent}.log"
    out = sys.stdout.buffer
    if not args.follow:
        if not log.is_file():
            raise TestbedError(f"{log}: no log (the agent never started)")
        _copy_from(log, 0, out)
        return 0
    follow(log, bundle, out)
    return 0


def host_of_prosumer(bundle: Path, prosumer: int) -> str:
    """The prosumer host agent that runs prosumer `prosumer` (its rendered config)."""
    for config in sorted((bundle / CONFIG_DIR).glob("*.json")):
        data = read_json(config) or {}
        if data.get("role") == "prosumer" and any(
            isinstance(p, dict) and p.get("id") == prosumer for p in data.get("prosumers") or ()
        ):
            return config.stem
    raise UsageError(f"{bundle}: no prosumer {prosumer} in this run (ids are feeder * 100 + n)")


def follow(log: Path, bundle: Path, out: BinaryIO, poll: float = FOLLOW_POLL_SECONDS) -> None:
    """Print `log` and what is appended to it until the run of `bundle` ends
    (the run is looked at before each read, so its last lines are printed)."""
    position = 0
    while True:
        running = bundle_running(bundle)
        position = _copy_from(log, position, out)
        if not running:
            return
        time.sleep(poll)


def _copy_from(log: Path, position: int, out: BinaryIO) -> int:
    try:
        with log.open("rb") as file:
            file.seek(position)
            while chunk := file.read(CHUNK):
                out.write(chunk)
                position += len(chunk)
    except FileNotFoundError:
        return position  # not started yet
    out.flush()
    return position


# -- rerun --------------------------------------------------------------------


def register_rerun(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "rerun",
        "Run again what a bundle recorded: its resolved spec (seed, overrides, dataset).",
        """
testbed rerun results/smoke/20261206T072301Z-1a2b
testbed rerun results/smoke/20261206T072301Z-1a2b --set market.prediction_window=5
testbed rerun results/paper-c/20261206T052337Z-4781 --backend docker --json
testbed rerun results/smoke/20261206T072301Z-1a2b --force   # although the dataset changed
""",
        "Every `testbed run` option is taken too (see testbed run --help); exit codes as run's.\n"
        "Exit 2 when the dataset differs from the one the run read (its content hash\n"
        "in manifest.json), unless --force.",
    )
    parser.add_argument("bundle", metavar="BUNDLE", help="a results bundle, or a run id")
    parser.add_argument(
        "--force",
        action="store_true",
        help="run even if the dataset changed since the bundle (and even what validate finds "
        "too large, as run's --force)",
    )
    run_parser = subparsers.choices.get("run")
    if run_parser is None:
        raise RuntimeError("register rerun after run (cli.py COMMANDS)")
    for action in run_parser._actions:  # argparse has no public way to share options
        taken = any(o in parser._option_string_actions for o in action.option_strings)
        if action.option_strings and not taken:  # --help and rerun's own --force stay rerun's
            parser._add_action(action)
    parser.set_defaults(handler=cmd_rerun, run_handler=run_parser.get_default("handler"))


def cmd_rerun(args: argparse.Namespace) -> int:
    from orchestrator.results.manifest import dataset_hash  # lazy: reads the dataset
    from orchestrator.scenario import load_dataset
    from orchestrator.spec import load_spec

    bundle = resolve_bundle(args.bundle)
    spec_file = bundle / "spec.yaml"
    manifest = read_json(bundle / "manifest.json") or {}
    recorded = (manifest.get("dataset") or {}).get("content_hash")
    spec = load_spec(spec_file)  # as recorded, before this rerun's --set
    current = dataset_hash(load_dataset(spec.microgrid.dataset, spec.where))
    if recorded is None:
        print(f"warning: {bundle}: no dataset hash recorded; not checked", file=sys.stderr)
    elif current != recorded:
        where = spec.microgrid.dataset.path or f"synthetic, seed {spec.microgrid.dataset.seed}"
        message = (
            f"{bundle}: the dataset ({where}) changed since this run: manifest.json "
            f"records {recorded}, it is now {current}"
        )
        if not args.force:
            raise UsageError(f"{message}; --force to run anyway")
        print(f"warning: {message} (--force)", file=sys.stderr)
    args.spec = spec_file
    args.rerun_of = {
        "run_id": str(manifest.get("run_id", bundle.name)),
        "spec": str(manifest.get("spec_name", bundle.parent.name)),
        "bundle": str(bundle.resolve()),
    }
    print(f"rerun of {args.rerun_of['run_id']}: {spec_file}", file=sys.stderr)
    code: int = args.run_handler(args)
    return code


# -- completion ---------------------------------------------------------------


def register_completion(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "completion",
        "Print a shell completion script (bash, zsh or tcsh).",
        """
source <(testbed completion bash)
testbed completion bash > ~/.local/share/bash-completion/completions/testbed
testbed completion zsh > "${fpath[1]}/_testbed"
""",
    )
    parser.add_argument("shell", choices=("bash", "zsh", "tcsh"), help="the shell")
    parser.set_defaults(handler=lambda args: cmd_completion(args, subparsers))


FILE_ARGS = {"SPEC"}
DIRECTORY_ARGS = {"BUNDLE", "DIR", "PRUNE_DIR"}


def cmd_completion(args: argparse.Namespace, subparsers: Any) -> int:
    import shtab  # lazy: only this command needs it

    root = argparse.ArgumentParser(prog="testbed")
    root.add_argument("--version", action="store_true", help="print the version")
    root._add_action(subparsers)  # the parser cli.py built, with every command
    for command in subparsers.choices.values():
        for action in command._actions:
            if action.metavar in FILE_ARGS:
                action.complete = shtab.FILE
            elif action.metavar in DIRECTORY_ARGS or action.dest == "out":
                action.complete = shtab.DIRECTORY
    print(shtab.complete(root, shell=args.shell), end="")
    return 0


COMMANDS = [register_ps, register_logs, register_rerun, register_init, register_completion]
