"""CLI subcommand `hosts`: `hosts check SPEC` (the ssh backend's preflight of
every host in deployment.hosts) and `hosts requirements` (the boards' pinned
third-party packages, for building a wheelhouse on a board).

Handlers import what they need (docker SDK, paramiko, web3, pyomo, matplotlib)
inside themselves: cli.py imports every command module at start-up, and
`testbed --help` or `validate` must not pay for them."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from orchestrator.commands import add_command, add_spec_arguments, help_only


def register_hosts(subparsers: Any) -> None:
    summary = "Check the ssh backend's hosts, or print what their wheelhouse needs."
    examples = """
testbed hosts check topologies/ssh-smoke.yaml
testbed hosts check topologies/ssh-smoke.yaml --json
testbed hosts wheelhouse topologies/ssh-paper-c.yaml --host bbb-01 --out wheelhouse-armv7l
testbed hosts requirements > wheelhouse/requirements.txt
"""
    parser = add_command(subparsers, "hosts", summary, examples)
    sub = parser.add_subparsers(title="actions", metavar="ACTION")
    check = sub.add_parser(
        "check",
        help="connect to every host of the spec: host key, key login, Python, architecture, "
        "free disk, clock offset (exit 1 when one fails)",
    )
    add_spec_arguments(check)
    check.add_argument("--json", action="store_true", help="the reports as JSON")
    check.set_defaults(handler=cmd_hosts_check)
    build = sub.add_parser(
        "wheelhouse",
        help="build the boards' wheelhouse on one host (its architecture and Python) and "
        "copy it here; then set deployment.ssh.wheelhouse to OUT",
    )
    add_spec_arguments(build)
    build.add_argument("--host", required=True, help="a host of deployment.hosts")
    build.add_argument("--out", type=Path, required=True, help="local directory for the wheels")
    build.add_argument(
        "--pip-arg",
        dest="pip_args",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for pip wheel on the host (repeatable), e.g. an index or --find-links",
    )
    build.set_defaults(handler=cmd_hosts_wheelhouse)
    reqs = sub.add_parser("requirements", help="the boards' requirements.txt (pinned)")
    reqs.set_defaults(handler=cmd_hosts_requirements)
    parser.set_defaults(handler=help_only(parser))


def cmd_hosts_check(args: argparse.Namespace) -> int:
    from orchestrator.backends.ssh import format_reports, inventory_of, preflight
    from orchestrator.backends.ssh.connection import Pool
    from orchestrator.spec import load_spec

    spec = load_spec(args.spec, args.overrides, env=os.environ)
    inventory = inventory_of(spec)
    pool = Pool(inventory)
    try:
        reports = preflight(pool, inventory)
    finally:
        pool.close()
    if args.json:
        limit = inventory.max_clock_offset_seconds
        out = {"max_clock_offset_seconds": limit, "hosts": [r.as_dict() for r in reports]}
        print(json.dumps(out, indent=2))
    else:
        print(format_reports(reports, inventory))
    return 0 if all(r.ok for r in reports) else 1


def cmd_hosts_wheelhouse(args: argparse.Namespace) -> int:
    from orchestrator.backends.ssh import inventory_of
    from orchestrator.backends.ssh.connection import Pool
    from orchestrator.backends.ssh.deploy import build_on_board
    from orchestrator.backends.ssh.preflight import HostReport, check_host
    from orchestrator.spec import load_spec

    spec = load_spec(args.spec, args.overrides, env=os.environ)
    inventory = inventory_of(spec)
    host = inventory.host(args.host)
    pool = Pool(inventory)
    try:
        conn = pool.get(host.name)
        report = check_host(conn, inventory, HostReport(host.name, host.target))
        assert report.home is not None
        count = build_on_board(
            conn, report.home, inventory.settings.remote_dir, args.out, args.pip_args, _say
        )
    finally:
        pool.close()
    print(
        f"{count} wheels for {report.arch} / Python {report.python} in {args.out}; "
        f"set deployment.ssh.wheelhouse: {args.out.resolve()}"
    )
    return 0


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cmd_hosts_requirements(args: argparse.Namespace) -> int:
    from orchestrator.backends.ssh.deploy import board_requirements

    print(board_requirements(), end="")
    return 0


COMMANDS = [register_hosts]
