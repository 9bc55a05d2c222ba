"""`testbed init`: write a commented starter spec, with prosumers picked from
feeders of the dataset (ids are feeder * 100 + n), validated before it is written."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any

from orchestrator.commands import add_command
from orchestrator.commands.prune import UsageError

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
STARTER = "starter.yaml.j2"
DEFAULT_NAME = "experiment"
DEFAULT_FEEDERS = (1, 7)
DEFAULT_PROSUMERS = 6
DEFAULT_SEED = 7


def _feeder_list(text: str) -> tuple[int, ...]:
    try:
        feeders = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        feeders = ()
    if not feeders or min(feeders) < 1 or len(set(feeders)) != len(feeders):
        raise argparse.ArgumentTypeError(
            f"{text!r}: feeder numbers >= 1, comma-separated, each once (e.g. 1,7,8)"
        )
    return feeders


def register_init(subparsers: Any) -> None:
    summary = "Write a commented starter spec (DIR/NAME.yaml), validated first."
    parser = add_command(
        subparsers,
        "init",
        summary,
        EXAMPLES,
        "Prosumer ids are feeder * 100 + n (n = 1..99): 703 is feeder 7's third.",
    )
    parser.add_argument("dir", metavar="DIR", type=Path, nargs="?", default=Path("."))
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"experiment name ({DEFAULT_NAME})")
    parser.add_argument(
        "--prosumers",
        type=int,
        metavar="N",
        help=f"how many prosumers to pick (default: {DEFAULT_PROSUMERS}, or all of --feeders)",
    )
    parser.add_argument(
        "--feeders",
        type=_feeder_list,
        metavar="F,F,...",
        help="feeders to pick them from (default: 1,7)",
    )
    parser.add_argument(
        "--dataset", type=Path, metavar="DIR", help="TRANSAX traces (default: synthetic)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="the spec's seed")
    parser.add_argument("--force", action="store_true", help="replace an existing file")
    parser.set_defaults(handler=cmd_init)


EXAMPLES = """
testbed init                                      # ./experiment.yaml, 6 prosumers of feeders 1, 7
testbed init exp --prosumers 12 --feeders 1,7,8   # exp/experiment.yaml
testbed init exp --name day1 --dataset ../shared/datasets/transax-phase2/withBattery
"""


@dataclass(frozen=True)
class Pick:
    feeders: tuple[int, ...]
    prosumers: tuple[int, ...]
    producers: tuple[int, ...]


def pick_prosumers(dataset: Any, feeders: tuple[int, ...], count: int | None) -> Pick:
    """`count` prosumers of `feeders` (all if None), spread over the feeders in
    turn, each feeder's producers first, so a small pick has sellers and buyers."""
    present = set(dataset.feeders)
    unknown = [f for f in feeders if f not in present]
    if unknown:
        raise UsageError(
            f"testbed init: feeder(s) {', '.join(map(str, unknown))} not in the dataset "
            f"(feeders {', '.join(map(str, sorted(present)))}; prosumer ids are feeder * 100 + n)"
        )
    queues = [
        sorted(
            (p for p in dataset.prosumers if p.feeder == f), key=lambda p: (not p.is_producer, p.id)
        )
        for f in feeders
    ]
    available = sum(len(q) for q in queues)
    count = available if count is None else count
    if not 1 <= count <= available:
        raise UsageError(
            f"testbed init: --prosumers {count}: feeders {', '.join(map(str, feeders))} "
            f"have {available} prosumers (ids feeder * 100 + n)"
        )
    in_turn = [p for row in zip_longest(*queues) for p in row if p is not None][:count]
    chosen = sorted(in_turn, key=lambda p: p.id)
    return Pick(
        feeders,
        tuple(p.id for p in chosen),
        tuple(p.id for p in chosen if p.is_producer),
    )


def starter_text(name: str, target: Path, seed: int, dataset_dir: Path | None, pick: Pick) -> str:
    import jinja2  # lazy: CLI start-up time

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    path = None
    if dataset_dir is not None:  # relative to the spec when near it, as specs are read
        path = os.path.relpath(dataset_dir.resolve(), target.parent.resolve())
        if path.startswith(os.path.join(os.pardir, os.pardir)):
            path = str(dataset_dir.resolve())
    command = " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["init"] else ""
    return env.get_template(STARTER).render(
        name=name,
        seed=seed,
        file=target,
        command=f" (testbed {command})" if command else "",
        path=path,
        feeders=pick.feeders,
        prosumers=pick.prosumers,
        producers=pick.producers,
    )


def cmd_init(args: argparse.Namespace) -> int:
    from orchestrator.scenario import build_scenario, load_dataset
    from orchestrator.spec import DatasetConfig, parse_spec
    from orchestrator.spec.schema import NAME_HINT, NAME_PATTERN

    if not re.fullmatch(NAME_PATTERN, args.name):
        raise UsageError(f"testbed init: --name {args.name!r}: {NAME_HINT}")
    target = args.dir / f"{args.name}.yaml"
    if target.exists() and not args.force:
        raise UsageError(f"{target}: exists (--force to replace it)")
    if args.dataset is not None:
        config = DatasetConfig(kind="transax", path=str(args.dataset.resolve()))
    else:
        config = DatasetConfig(kind="synthetic", seed=args.seed, battery=True)
    feeders = args.feeders or DEFAULT_FEEDERS
    count = args.prosumers
    if count is None and args.feeders is None:
        count = DEFAULT_PROSUMERS
    pick = pick_prosumers(load_dataset(config), feeders, count)
    text = starter_text(args.name, target, args.seed, args.dataset, pick)
    spec = parse_spec(text, source=str(target), base_dir=args.dir, default_name=args.name)
    scenario = build_scenario(spec)  # the whole check `testbed validate` makes
    args.dir.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    if not pick.producers or len(pick.producers) == len(pick.prosumers):
        missing = "producer" if not pick.producers else "consumer"
        print(f"warning: {target}: no {missing} among them: nothing will trade", file=sys.stderr)
    print(
        f"{target}: {len(pick.prosumers)} prosumers ({len(pick.producers)} producers) on "
        f"feeders {', '.join(map(str, pick.feeders))}, {len(scenario.offers)} offers in "
        f"intervals {spec.market.first_interval}..{spec.market.last_interval}; "
        f"next: testbed replay {target}"
    )
    return 0
