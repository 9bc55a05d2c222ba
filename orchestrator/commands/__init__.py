"""CLI subcommands implemented outside cli.py (cli.py registers them)."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.datasets import Dataset
    from orchestrator.spec import Spec

MAX_WARNINGS = 20  # trace rows listed; the rest are counted


def add_command(
    subparsers: Any, name: str, summary: str, examples: str, epilog: str = ""
) -> argparse.ArgumentParser:
    """A command's parser: `summary` is its one-line help, and its --help shows the
    summary, the `examples` (one command line each, comments allowed) and `epilog`
    as written."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=summary,
        description=f"{summary}\n\nexamples:\n{textwrap.indent(examples.strip(), '  ')}",
        epilog=epilog or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def help_only(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """The handler of a command group called without an action: its help, exit 2."""

    def handler(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return handler


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    """SPEC and --set, shared by every command that reads a spec."""
    parser.add_argument("spec", metavar="SPEC", type=Path, help="experiment spec (YAML)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec value, e.g. market.prediction_window=5 (repeatable)",
    )


def validation_warnings(spec: Spec, dataset: Dataset | None) -> list[str]:
    """What validation allows but a user should know: a large scale, trace rows
    that are no offers (`file:line: ...`, the first MAX_WARNINGS and a count)."""
    notes = list(dataset.warnings) if dataset is not None else []
    if len(notes) > MAX_WARNINGS:
        notes = [*notes[:MAX_WARNINGS], f"... and {len(notes) - MAX_WARNINGS} more such rows"]
    return [*spec.warnings, *notes]


def spec_warnings(spec: Spec) -> list[str]:
    """`validation_warnings` before a run: trace notes exist only in transax
    traces (reading them is cheap; a synthetic dataset has no such rows)."""
    dataset = None
    if spec.microgrid.dataset.kind == "transax":
        from orchestrator.scenario import load_dataset

        dataset = load_dataset(spec.microgrid.dataset, spec.where)
    return validation_warnings(spec, dataset)
