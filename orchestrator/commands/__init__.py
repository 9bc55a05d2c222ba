"""CLI subcommands implemented outside cli.py (cli.py registers them)."""

from __future__ import annotations

import argparse
from pathlib import Path


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
