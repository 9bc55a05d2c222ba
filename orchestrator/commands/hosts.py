"""CLI subcommand `hosts`: `hosts check SPEC` (the ssh backend's preflight of
every host in deployment.hosts) and `hosts requirements` (the boards' pinned
third-party packages, for building a wheelhouse on a board)."""

from __future__ import annotations

import argparse
import json
import os
import textwrap
from typing import Any

from orchestrator.commands import add_spec_arguments


def register_hosts(subparsers: Any) -> None:
    summary = "Check the ssh backend's hosts, or print what their wheelhouse needs."
    examples = """
testbed hosts check topologies/ssh-bbb.yaml
testbed hosts check topologies/ssh-bbb.yaml --json
testbed hosts requirements > wheelhouse/requirements.txt
"""
    parser = subparsers.add_parser(
        "hosts",
        help=summary,
        description=f"{summary}\n\nexamples:\n{textwrap.indent(examples.strip(), '  ')}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(title="actions", metavar="ACTION")
    check = sub.add_parser(
        "check",
        help="connect to every host of the spec: host key, key login, Python, architecture, "
        "free disk, clock offset (exit 1 when one fails)",
    )
    add_spec_arguments(check)
    check.add_argument("--json", action="store_true", help="the reports as JSON")
    check.set_defaults(handler=cmd_hosts_check)
    reqs = sub.add_parser("requirements", help="the boards' requirements.txt (pinned)")
    reqs.set_defaults(handler=cmd_hosts_requirements)
    parser.set_defaults(handler=lambda _args: parser.print_help() or 2)


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


def cmd_hosts_requirements(args: argparse.Namespace) -> int:
    from orchestrator.backends.ssh.deploy import board_requirements

    print(board_requirements(), end="")
    return 0


COMMANDS = [register_hosts]
