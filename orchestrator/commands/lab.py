"""CLI subcommand `lab`: a Docker Swarm on this one machine, to try the swarm
backend without a cluster (orchestrator/swarm/lab.py).

    testbed lab up [--workers 2] [--shared results]   this engine as manager, worker
                                                      nodes as containers, a registry
    testbed lab status [ID] [--json]
    testbed lab down [ID ...]                         removes exactly what up made

Handlers import the docker SDK inside themselves: cli.py imports every command
module at start-up."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from orchestrator.errors import TestbedError


def register_lab(subparsers: Any) -> None:
    summary = "A Docker Swarm on this machine (manager + worker containers + registry)."
    examples = """
testbed lab up                      # 2 workers, registry on docker0:5000, ./results shared
testbed lab up --workers 3 --name demo --shared /srv/testbed-results
testbed lab status --json
testbed lab down demo
"""
    parser = subparsers.add_parser(
        "lab",
        help=summary,
        description=f"{summary}\n\nexamples:\n{textwrap.indent(examples.strip(), '  ')}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(title="actions", metavar="ACTION")
    up = sub.add_parser(
        "up",
        help="make this engine a swarm manager (if it is not one), start worker nodes "
        "(containers running their own dockerd), join and label them, start a registry",
    )
    up.add_argument("--workers", type=int, default=2, help="worker nodes (default 2)")
    up.add_argument("--name", help="the lab's id (default: random); nodes are testbed-lab-ID-wN")
    up.add_argument(
        "--shared",
        type=Path,
        action="append",
        default=None,
        metavar="DIR",
        help="a folder mounted at the same path in every node (repeatable; default "
        "./results, where runs write their bundles; on real machines: an NFS mount)",
    )
    up.add_argument(
        "--registry-port", type=int, default=5000, help="registry port on docker0 (5000)"
    )
    up.add_argument("--no-registry", action="store_true", help="start no registry")
    up.add_argument(
        "--runtime",
        choices=("runc", "crun"),
        default=None,
        help="the OCI runtime of the workers' containers (default: "
        "orchestrator.swarm.nodes.DEFAULT_RUNTIME)",
    )
    up.add_argument("--json", action="store_true", help="the lab's status as JSON")
    up.set_defaults(handler=cmd_lab_up)
    status = sub.add_parser("status", help="nodes (container, swarm state, labels), registry")
    status.add_argument("ids", nargs="*", metavar="ID", help="labs (default: all)")
    status.add_argument("--json", action="store_true", help="as JSON")
    status.set_defaults(handler=cmd_lab_status)
    down = sub.add_parser(
        "down", help="remove the lab: nodes, containers, volumes, cgroups, registry, swarm*"
    )
    down.add_argument("ids", nargs="*", metavar="ID", help="labs (default: all)")
    down.set_defaults(handler=cmd_lab_down)
    parser.set_defaults(handler=lambda _args: parser.print_help() or 2)


def _state_dir() -> Path:
    from orchestrator.backends.base import state_root

    return state_root()


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cmd_lab_up(args: argparse.Namespace) -> int:
    from orchestrator.backends.docker.engine import connect
    from orchestrator.swarm import Lab

    if args.workers < 1:
        raise LabUsageError("--workers: at least 1")
    client = connect(timeout=600)
    shared = args.shared if args.shared is not None else [Path("results")]
    lab = Lab.up(
        client,
        _state_dir(),
        workers=args.workers,
        name=args.name,
        shared=shared,
        registry=not args.no_registry,
        registry_port=args.registry_port,
        say=_say,
        **({"runtime": args.runtime} if args.runtime else {}),
    )
    if args.json:
        print(json.dumps({**lab.status(client), "timings": lab.timings}, indent=2))
        return 0
    print(f"lab {lab.id} up in {lab.timings.get('up_seconds', 0):.1f} s")
    _print_status(lab.status(client))
    print(f"remove it with: testbed lab down {lab.id}")
    return 0


def cmd_lab_status(args: argparse.Namespace) -> int:
    from orchestrator.backends.docker.engine import connect

    client = connect()
    labs = _labs(args.ids)
    reports = [lab.status(client) for lab in labs]
    if args.json:
        print(json.dumps(reports, indent=2))
        return 0
    if not reports:
        print(f"no labs (state in {_state_dir() / 'labs'})")
    for report in reports:
        _print_status(report)
    healthy = all(
        n["state"] == "ready" and n["container"] == "running" for r in reports for n in r["nodes"]
    )
    return 0 if healthy else 1


def cmd_lab_down(args: argparse.Namespace) -> int:
    from orchestrator.backends.docker.engine import connect

    client = connect(timeout=300)
    labs = _labs(args.ids)
    if not labs:
        print(f"no labs (state in {_state_dir() / 'labs'})")
    failed = 0
    for lab in labs:
        problems = lab.down(client, say=_say, strict=False)
        if problems:
            failed += 1
            print(f"lab {lab.id}: left behind:", *problems, sep="\n  ", file=sys.stderr)
        else:
            print(f"lab {lab.id} removed")
    return 1 if failed else 0


def _labs(ids: list[str]) -> list[Any]:
    from orchestrator.swarm.lab import Lab, lab_ids

    state = _state_dir()
    return [Lab.load(state, lab_id) for lab_id in (ids or lab_ids(state))]


def _print_status(report: dict[str, Any]) -> None:
    made = " (initialised by the lab)" if report["initialised_swarm"] else ""
    print(
        f"lab {report['id']}: manager {report['manager']}{made}, image {report['image']}, "
        f"runtime {report.get('runtime', 'runc')}"
    )
    for node in report["nodes"]:
        labels = ",".join(f"{k}={v}" for k, v in sorted(node["labels"].items()))
        print(
            f"  {node['name']:<28} container {node['container']:<8} "
            f"swarm {node['state']:<8} {node['availability']:<7} {labels}"
        )
    registry = report.get("registry")
    if registry:
        state = "answers" if registry["answers"] else "DOES NOT ANSWER"
        print(f"  registry https://{registry['address']} {state}")
    for folder in report["shared"]:
        print(f"  shared folder {folder} (same path on every node)")


class LabUsageError(TestbedError):
    exit_code = 2


COMMANDS = [register_lab]
