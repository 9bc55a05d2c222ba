"""CLI subcommands `images` (build, list, rm: the docker backend's images) and
`render` (a spec's plan, or its docker-compose project). Each `register_*` adds
a parser and sets `handler` (args -> exit code), as cli.py's COMMANDS expect.

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

import yaml

from orchestrator.commands import add_command, add_spec_arguments, help_only


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -- images -------------------------------------------------------------------


def register_images(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "images",
        "Build, list or remove the docker backend's images (agent, chain, prometheus).",
        """
testbed images build                 # what is missing; tags carry a hash of their inputs
testbed images build --rebuild       # all of them again
TESTBED_BASE_IMAGE=offline testbed images build   # debootstrap base, no registry
testbed images list --json
testbed images rm                    # every image the testbed built
""",
    )
    sub = parser.add_subparsers(title="actions", metavar="ACTION")
    build = sub.add_parser("build", help="build the images that are missing")
    build.add_argument("--rebuild", action="store_true", help="build every image again")
    build.add_argument(
        "--base",
        help="base image: auto (default), offline, or an image reference "
        "(default: $TESTBED_BASE_IMAGE or auto)",
    )
    build.add_argument("--json", action="store_true", help="print the tags as JSON")
    build.set_defaults(handler=cmd_images_build)
    listing = sub.add_parser("list", help="list the images the testbed built")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_images_list)
    rm = sub.add_parser("rm", help="remove every image the testbed built")
    rm.set_defaults(handler=cmd_images_rm)
    parser.set_defaults(handler=help_only(parser))


def cmd_images_build(args: argparse.Namespace) -> int:
    from orchestrator.backends.docker.engine import connect
    from orchestrator.images import ensure_images

    client = connect()
    images = ensure_images(client, say=_say, policy=args.base, rebuild=args.rebuild)
    if args.json:
        print(json.dumps(images.as_dict(), indent=2))
    else:
        for kind, tag in images.as_dict().items():
            print(f"{kind:<11} {tag}")
    return 0


def _testbed_images(client: Any) -> list[dict[str, Any]]:
    from orchestrator.images.build import images_for_clean

    out = []
    for image in images_for_clean(client):
        labels = image.labels or {}
        out.append(
            {
                "id": image.short_id,
                "tags": image.tags,
                "kind": labels.get("testbed.image"),
                "inputs": labels.get("testbed.inputs"),
                "run": labels.get("testbed.run"),
                "size_mb": round(image.attrs.get("Size", 0) / 2**20, 1),
            }
        )
    return out


def cmd_images_list(args: argparse.Namespace) -> int:
    from orchestrator.backends.docker.engine import connect

    images = _testbed_images(connect())
    if args.json:
        print(json.dumps(images, indent=2))
        return 0
    for i in images:
        tags = ", ".join(i["tags"]) or "<untagged>"
        print(f"{i['id']:<20} {i['kind'] or '-':<18} {i['size_mb']:>8.1f} MB  {tags}")
    return 0


def cmd_images_rm(args: argparse.Namespace) -> int:
    import docker.errors

    from orchestrator.backends.docker.engine import connect

    client = connect()
    failed = 0
    # derived images first, the base last (a base in use by others cannot go)
    for info in sorted(_testbed_images(client), key=lambda i: i["kind"] == "base"):
        try:
            client.images.remove(info["id"], force=True)
            print(f"removed {info['id']} ({', '.join(info['tags']) or info['kind']})")
        except docker.errors.ImageNotFound:
            continue
        except docker.errors.APIError as exc:
            failed += 1
            print(f"cannot remove {info['id']}: {exc}", file=sys.stderr)
    return 1 if failed else 0


# -- render -------------------------------------------------------------------


def register_render(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "render",
        "Print the resolved plan of a spec (agents, hosts, start order), or write the "
        "docker backend's containers as a docker-compose project, or the swarm backend's "
        "services as a stack file for docker stack deploy.",
        """
testbed render topologies/smoke.yaml
testbed render topologies/paper-c.yaml --set 'deployment.hosts=[{name: b, count: 31, profile: bbb}]'
testbed render topologies/smoke.yaml --format compose --out /tmp/smoke-compose
testbed render topologies/smoke.yaml --format stack --out /srv/nfs/smoke-stack
""",
    )
    add_spec_arguments(parser)
    parser.add_argument("--format", choices=("plan", "compose", "stack"), default="plan")
    parser.add_argument(
        "--out",
        type=Path,
        help="compose, stack: write the project here (docker-compose.yaml or stack.yaml, "
        "config/, setup/, prometheus/); without it the compose or stack file is printed",
    )
    parser.add_argument(
        "--prometheus-port",
        type=int,
        default=9090,
        help="stack: the port Prometheus publishes on the manager (default 9090)",
    )
    parser.set_defaults(handler=cmd_render)


def _plan(args: argparse.Namespace) -> Any:
    from orchestrator.planning import plan_run
    from orchestrator.results.bundle import new_run_id
    from orchestrator.scenario import build_scenario
    from orchestrator.spec import load_spec

    spec = load_spec(args.spec, args.overrides, env=os.environ)
    # a stack file is the swarm backend's services, whatever backend the spec names
    backend = "swarm" if args.format == "stack" else spec.deployment.backend
    plan, _ = plan_run(build_scenario(spec), backend, new_run_id())
    return spec, plan


def plan_summary(plan: Any) -> dict[str, Any]:
    m = plan.market
    return {
        "spec": plan.spec_name,
        "backend": plan.backend,
        "market": {
            "intervals": [m.first_interval, m.last_interval],
            "prediction_window": m.prediction_window,
            "t_clear": m.t_clear,
            "clock": m.clock,
        },
        "prosumers": plan.prosumer_count,
        "start_order": [[a.name for a in tier] for tier in plan.tiers()],
        "hosts": {
            a.name: {
                "prosumers": [p.id for p in a.prosumers],
                "profile": plan.hosts[a.name].profile.name if a.name in plan.hosts else "none",
                "netem": plan.hosts[a.name].netem.describe() if a.name in plan.hosts else "none",
            }
            for a in plan.by_role("prosumer")
        },
    }


def cmd_render(args: argparse.Namespace) -> int:
    spec, plan = _plan(args)
    if args.format == "plan":
        print(yaml.safe_dump(plan_summary(plan), sort_keys=False, width=100), end="")
        return 0
    from orchestrator.backends.docker.compose import render_compose
    from orchestrator.backends.swarm.stack import render_stack
    from orchestrator.scrapetargets import run_scrape_interval

    m = spec.market
    options = {
        "chain_id": spec.chain.chain_id,
        "accounts": spec.chain.accounts,
        "scrape_seconds": run_scrape_interval(
            spec.metrics.prometheus.scrape_interval_seconds, m, len(plan.agents) + 1
        ),
        "out": args.out,
    }
    if args.format == "stack":
        images = stack_images(spec.deployment.swarm.registry)
        text = render_stack(
            plan, images, spec.deployment, prometheus_port=args.prometheus_port, **options
        )
    else:
        text = render_compose(plan, planned_images(), **options)
    if args.out is None:
        print(text, end="")
    else:
        name = "stack.yaml" if args.format == "stack" else "docker-compose.yaml"
        print(f"wrote {args.out}/{name} (and config/, setup/, prometheus/)")
    return 0


def planned_images() -> dict[str, str]:
    """The image tags `testbed images build` makes (or made): exact when the
    engine answers and has the base image, else by kind with tag `unbuilt`."""
    from orchestrator.backends.docker.engine import DockerUnavailable, connect
    from orchestrator.images.build import KINDS, planned_tags

    try:
        client = connect(timeout=10)
    except DockerUnavailable:
        client = None
    tags = planned_tags(client) if client is not None else None
    if tags is None:
        _say("note: images not built yet (testbed images build); tags below are placeholders")
        return {k: f"testbed/{k}:unbuilt" for k in KINDS}
    return tags


def stack_images(setting: str) -> dict[str, str]:
    """The images a stack names. With a registry named in deployment.swarm.registry
    (host:port) they are built if missing, pushed there, and named by their
    content-hash tags in it; otherwise (auto, none, start: render starts nothing
    that outlives it) the local tags, which every node must then have."""
    from orchestrator.backends.docker.backend import image_overrides
    from orchestrator.backends.docker.engine import connect
    from orchestrator.images import KINDS, ensure_images
    from orchestrator.swarm.registry import Registry

    if setting in ("auto", "none", "start"):
        if setting != "none":
            _say(
                "note: the stack names the local images; --set deployment.swarm.registry="
                "HOST:PORT pushes them to a registry every node pulls from"
            )
        return planned_images()
    client = connect()
    built = ensure_images(client, say=_say, overrides=image_overrides())
    local = {kind: built.of(kind) for kind in KINDS}
    return Registry.given(setting).push_images(client, local, _say)


COMMANDS = [register_images, register_render]
