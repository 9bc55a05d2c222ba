"""CLI subcommands `run`, `clean` and `results`. Each `register_*` adds a parser
and sets `handler` (args -> exit code), as cli.py's COMMANDS expect.

Handlers import what they need (docker SDK, paramiko, web3, pyomo, matplotlib)
inside themselves: cli.py imports every command module at start-up, and
`testbed --help` or `validate` must not pay for them."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.backends import backend_class
from orchestrator.backends.base import backend_state_root, state_root
from orchestrator.commands import add_command, add_spec_arguments, spec_warnings
from orchestrator.commands.observe import COMMANDS as OBSERVE_COMMANDS  # metrics, report
from orchestrator.commands.prune import UsageError, cmd_prune, parse_duration
from orchestrator.results.bundle import DEFAULT_RESULTS_DIR, list_bundles, mark_killed
from orchestrator.spec import load_spec
from orchestrator.spec.backends import NAMES as BACKEND_NAMES

if TYPE_CHECKING:
    from orchestrator.run import RunResult

RUN_EXIT_CODES = """\
exit codes:
  0    the last interval was finalized and every agent exited 0
  1    testbed error (e.g. the chain or the contract deployment failed)
  2    invalid spec, dataset or command line (nothing was started)
  3    an agent or the chain crashed, or quit before the end
  4    an agent did not become ready in time
  5    degraded: the last interval was finalized, but prosumer hosts dropped offers
       (the DSO did not answer a withdraw request, or a postOffer reverted): the
       numbers are incomplete; summary.json dropped_offers counts them by host
  130  interrupted by Ctrl-C (143: SIGTERM)
Whatever the outcome, every process is stopped and the bundle keeps what was
recorded (events/, logs/, summary.json, manifest.json)."""


# -- run ----------------------------------------------------------------------


def register_run(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "run",
        "Bring up a testbed for a spec, run the market to the last interval, tear it "
        "down, and leave a results bundle.",
        """
testbed run topologies/smoke.yaml
testbed run topologies/paper-c.yaml --set market.clock=lockstep --set chain.block_time_seconds=0
testbed run topologies/smoke.yaml --json --out /tmp/results
testbed run topologies/smoke.yaml --backend docker           # in containers
testbed run topologies/ssh-smoke.yaml                        # on boards (testbed hosts check first)
testbed run topologies/faults-smoke.yaml --baseline          # with faults, compared to none
openssl rand -hex 32 > run.key && chmod 600 run.key
testbed run topologies/smoke.yaml --key-secret-file run.key  # again: the same addresses
""",
        RUN_EXIT_CODES,
    )
    add_spec_arguments(parser)
    parser.add_argument(
        "--backend", choices=sorted(BACKEND_NAMES), help="override deployment.backend"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_RESULTS_DIR,
        help="results directory (bundle: OUT/<spec name>/<run id>/; default: results/)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print summary.json (and the bundle path) on stdout"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress lines on stderr while it runs"
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also run the spec without its faults: (bundle in BUNDLE/baseline/) and compare",
    )
    parser.add_argument(
        "--force", action="store_true", help="run even what `testbed validate` finds too large"
    )
    parser.add_argument(
        "--key-secret-file",
        type=Path,
        metavar="FILE",
        help="the secret behind the prosumers' anonymous keys, as hex digits (default: "
        "$TESTBED_KEY_SECRET_FILE, else a fresh random secret): a run given the same file "
        "posts from the same addresses; the secret is written into no file of the bundle",
    )
    parser.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from orchestrator.run import KEY_SECRET_ENV  # web3: only when running

    if args.key_secret_file is None:
        return _cmd_run(args)
    # every run of this command gets the file (sweep points too), for this command only
    before = os.environ.get(KEY_SECRET_ENV)
    os.environ[KEY_SECRET_ENV] = str(args.key_secret_file)
    try:
        return _cmd_run(args)
    finally:
        if before is None:
            del os.environ[KEY_SECRET_ENV]
        else:
            os.environ[KEY_SECRET_ENV] = before


def _cmd_run(args: argparse.Namespace) -> int:
    from orchestrator.commands.observe import cmd_run_sweep, is_sweep_args
    from orchestrator.run import RunOptions, run

    if is_sweep_args(args):  # a spec with `sweep:`: every point, a bundle each
        return cmd_run_sweep(args)
    spec = load_spec(args.spec, args.overrides, env=os.environ)
    if not args.force:  # refuse what this machine cannot hold before anything starts
        from orchestrator.cost import check_fits
        from orchestrator.scenario import build_scenario

        check_fits(build_scenario(spec), args.backend)
    if not args.quiet:
        for warning in spec_warnings(spec):
            print(f"warning: {warning}", file=sys.stderr)
    options = RunOptions(
        spec=args.spec,
        overrides=tuple(args.overrides),
        backend=args.backend,
        out=args.out,
        progress=None if args.quiet else sys.stderr,
        argv=tuple(sys.argv),
        key_secret_file=args.key_secret_file,
        rerun_of=getattr(args, "rerun_of", None),  # set by `testbed rerun`
    )
    result = run(options)
    baseline = None
    if getattr(args, "baseline", False):
        from orchestrator.campaign import run_baseline

        baseline, _ = run_baseline(result, options, run)
    if args.json:
        named = {"run_id": result.run_id, "spec": result.bundle.parent.name}
        print(json.dumps({**named, "bundle": str(result.bundle), **result.summary}, indent=2))
    else:
        print(run_report(result, options.rerun_of))
    if result.exit_code != 0:
        print(f"testbed run: {result.outcome.status}: {result.outcome.message}", file=sys.stderr)
    if baseline is not None and baseline.exit_code != 0:
        print(f"testbed run: baseline: {baseline.outcome.message}", file=sys.stderr)
        return result.exit_code or baseline.exit_code
    return result.exit_code


def run_report(result: RunResult, rerun_of: Mapping[str, str] | None = None) -> str:
    s = result.summary
    o = result.outcome
    lines = [f"{result.run_id}: {o.status} ({o.message.splitlines()[0] if o.message else ''})"]
    if rerun_of:
        lines.append(f"  rerun of {rerun_of['run_id']} ({rerun_of['bundle']})")
    if s:
        per = s.get("per_interval_kwh") or {}
        span = f" in intervals {min(per, key=int)}..{max(per, key=int)}" if per else ""
        sol = s.get("solutions") or {}
        lines.append(
            f"  {s.get('total_energy_traded_kwh', 0):.1f} kWh traded{span}; "
            f"{s.get('offers', 0)} offers; solutions {sol.get('accepted', 0)} accepted, "
            f"{sol.get('rejected', 0)} rejected; {s.get('wall_seconds', 0):.1f} s"
        )
        lat = s.get("offer_to_trade_seconds") or {}
        if lat.get("count"):
            lines.append(
                f"  offer->trade p50 {lat['p50']:.2f} s, p95 {lat['p95']:.2f} s, "
                f"p99 {lat['p99']:.2f} s, max {lat['max']:.2f} s ({lat['count']} offers)"
            )
            waited = s.get("offer_to_trade_intervals") or {}
            own = s.get("offer_to_trade_seconds_no_wait") or {}
            if waited.get("count") and own.get("count"):
                lines.append(
                    f"  intervals an offer waited for a match: p50 {waited['p50']:g}, "
                    f"p99 {waited['p99']:g}; offers matched without waiting: "
                    f"p50 {own['p50']:.2f} s, p99 {own['p99']:.2f} s"
                )
        if (s.get("dropped_offers") or {}).get("total"):
            from orchestrator.results.dropped import describe

            lines.append(f"  {describe(s['dropped_offers'])}")
        gas = s.get("gas") or {}
        if gas:
            parts = [f"{f} {g['count']} x {g['mean']:,.0f}" for f, g in gas.items()]
            lines.append("  gas (count x mean): " + ", ".join(parts))
        if s.get("faults") or s.get("baseline"):
            from orchestrator.faults.results import report_lines

            lines += report_lines(s)
    lines.append(f"  bundle: {result.bundle}")
    return "\n".join(lines)


# -- clean --------------------------------------------------------------------


def register_clean(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "clean",
        "Stop and remove what killed runs left behind (by recorded pid, never by name).",
        """
testbed clean
TESTBED_STATE_DIR=/tmp/state testbed clean --json
""",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=cmd_clean)


def cmd_clean(args: argparse.Namespace) -> int:
    report = []
    for name in BACKEND_NAMES:
        bundles = recorded_bundles(name)  # before the state goes
        cleaned: set[str] = set()
        for item in backend_class(name).clean_leftovers():
            report.append(
                {"backend": name, "run_id": item.run_id, "what": item.what, "action": item.action}
            )
            cleaned.add(item.run_id)
        for run_id in sorted(cleaned & set(bundles)):
            if mark_killed(bundles[run_id]):
                what = str(bundles[run_id])
                report.append(
                    {"backend": name, "run_id": run_id, "what": what, "action": "marked killed"}
                )
    if args.json:
        print(json.dumps({"state_dir": str(state_root()), "cleaned": report}, indent=2))
    elif not report:
        print(f"nothing to clean ({state_root()})")
    else:
        for r in report:
            print(f"{r['backend']}: run {r['run_id']}: {r['what']}: {r['action']}")
    return 0


def recorded_bundles(backend: str) -> dict[str, Path]:
    """Run id -> results bundle, as each run's state (run.json) recorded it."""
    found: dict[str, Path] = {}
    base = backend_state_root(backend)
    for record in base.glob("*/run.json") if base.is_dir() else ():
        try:
            bundle = json.loads(record.read_text()).get("bundle")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(bundle, str):
            found[record.parent.name] = Path(bundle)
    return found


# -- results ------------------------------------------------------------------


ROW = "{:<22} {:<16} {:<13} {:>4} {:>9} {:>8}  {}"


def register_results(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "results",
        "List results bundles (newest last), or prune them.",
        """
testbed results
testbed results results/smoke --json
testbed results prune --keep 5                  # the newest 5 of each spec stay
testbed results prune --older-than 7d --dry-run # what would go
testbed results prune results/smoke --failed    # runs that did not end ok
""",
        PRUNE_EPILOG,
    )
    parser.add_argument(
        "dir",
        metavar="DIR",
        type=Path,
        nargs="?",
        default=DEFAULT_RESULTS_DIR,
        help="a results directory, a spec's directory in it, or one bundle (default: results/)",
    )
    hidden = argparse.SUPPRESS  # `results prune DIR`: DIR comes second
    parser.add_argument("prune_dir", metavar="PRUNE_DIR", type=Path, nargs="?", help=hidden)
    parser.usage = (
        "%(prog)s [DIR] [--json]\n       %(prog)s prune [DIR] [--keep N] [--older-than AGE] "
        "[--failed] [--dry-run] [--json]"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON list (prune: one JSON object)"
    )
    prune = parser.add_argument_group("prune (testbed results prune [DIR] ...)")
    prune.add_argument(
        "--keep", type=int, metavar="N", help="remove all but the newest N bundles of each spec"
    )
    prune.add_argument(
        "--older-than",
        type=parse_duration,
        metavar="AGE",
        help="remove bundles started more than AGE ago (90s, 30m, 12h, 7d, 2w)",
    )
    prune.add_argument(
        "--failed", action="store_true", help="remove only bundles of runs that did not end ok"
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="list what would be removed, remove nothing"
    )
    parser.set_defaults(handler=cmd_results)


PRUNE_EPILOG = """\
prune: the criteria combine (a bundle goes when every given one picks it); a
bundle whose run is still going is never removed (testbed ps lists those)."""


def cmd_results(args: argparse.Namespace) -> int:
    if args.dir == Path("prune") and not args.dir.is_dir():
        return cmd_prune(args, args.prune_dir or DEFAULT_RESULTS_DIR)
    if args.prune_dir is not None:
        raise UsageError(f"testbed results: one DIR only (got {args.dir} {args.prune_dir})")
    if args.keep is not None or args.older_than is not None or args.failed or args.dry_run:
        raise UsageError("testbed results: --keep, --older-than, --failed are prune options")
    bundles = list_bundles(args.dir)
    if args.json:
        print(json.dumps([b.as_dict() for b in bundles], indent=2))
        return 0
    if not bundles:
        print(f"no results bundles under {args.dir}")
        return 0
    header = (
        f"{'run id':<22} {'spec':<16} {'status':<13} {'exit':>4} {'kWh':>9} {'wall s':>8}  path"
    )
    print(header)
    for b in bundles:
        kwh = f"{b.total_energy_traded_kwh:.1f}" if b.total_energy_traded_kwh is not None else "-"
        wall = f"{b.wall_seconds:.1f}" if b.wall_seconds is not None else "-"
        code = "-" if b.exit_code is None else str(b.exit_code)
        status = b.status or "incomplete"
        print(
            f"{b.run_id:<22} {b.spec_name:<16} {status:<13} {code:>4} {kwh:>9} {wall:>8}  {b.path}"
            + (f" (rerun of {b.rerun_of})" if b.rerun_of else "")
        )
    return 0


COMMANDS = [register_run, register_clean, register_results, *OBSERVE_COMMANDS]
