"""`testbed`: the command line. The only place that turns a TestbedError into a
message on stderr and an exit code (2 for spec and dataset errors).

Each subcommand is a `register(subparsers)` function in COMMANDS; it sets
`handler` (args -> exit code) on its parser. Later commands add themselves there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from market.types import Kind
from orchestrator import __version__
from orchestrator.commands import add_command, add_spec_arguments, validation_warnings
from orchestrator.commands.docker import COMMANDS as DOCKER_COMMANDS
from orchestrator.commands.hosts import COMMANDS as HOSTS_COMMANDS
from orchestrator.commands.lab import COMMANDS as LAB_COMMANDS
from orchestrator.commands.manage import COMMANDS as MANAGE_COMMANDS
from orchestrator.commands.observe import (
    add_replay_arguments,
    cmd_replay_sweep,
    write_replay_plot,
)
from orchestrator.commands.runs import COMMANDS as RUN_COMMANDS
from orchestrator.cost import Cost, available_memory_mb, check_fits, check_points_fit
from orchestrator.datasets import (
    Dataset,
    format_kwh,
    load_transax,
    synthesize,
    write_transax,
)
from orchestrator.errors import TestbedError
from orchestrator.scenario import Scenario, build_scenario
from orchestrator.spec import Spec, json_schema, load_spec
from orchestrator.spec.backends import NAMES as BACKEND_NAMES

Handler = Callable[[argparse.Namespace], int]
Subparsers = Any  # argparse's _SubParsersAction is private

BAR_WIDTH = 40

DESCRIPTION = """\
Testbed for blockchain-based transactive energy markets (Eisele et al. 2020).

An experiment is a YAML spec (see topologies/). Start with:

  testbed validate topologies/smoke.yaml      check a spec, nothing is run
  testbed replay topologies/smoke.yaml        the market without chain: what trades
  testbed replay topologies/paper-c.yaml --set market.prediction_window=13
  testbed schema > spec.schema.json           the spec's JSON Schema, for editors
  testbed dataset synth --seed 1 --battery --out /tmp/microgrid

Specs take `--set key.path=value` overrides (YAML-typed, repeatable) and
${VAR:-default} environment variables. Errors name file:line:col and key.
Exit codes: 0 success, 1 failure, 2 invalid spec, dataset or command line."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except TestbedError as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `testbed schema | head`
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="testbed",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in COMMANDS:
        register(subparsers)
    return parser


def load_spec_args(args: argparse.Namespace) -> Spec:
    return load_spec(args.spec, args.overrides, env=os.environ)


# -- validate -----------------------------------------------------------------


def register_validate(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "validate",
        "Check a spec and its dataset; run nothing.",
        """
testbed validate topologies/smoke.yaml
testbed validate topologies/paper-a.yaml --set deployment.backend=docker
testbed validate topologies/transax-a.yaml --print    # the resolved spec
testbed validate topologies/smoke.yaml --json         # facts, the run's cost, warnings
testbed validate topologies/paper-c.yaml --set microgrid.dataset.scale=10 --force
""",
    )
    add_spec_arguments(parser)
    parser.add_argument(
        "--print", action="store_true", help="print the resolved spec (defaults filled in)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: ok, the facts, the run's cost and warnings, or the problems",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="a run this machine cannot hold (memory) is a warning, not an error",
    )
    parser.add_argument(
        "--backend", choices=sorted(BACKEND_NAMES), help="estimate for this backend"
    )
    parser.set_defaults(handler=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    if args.json and not args.print:
        return _validate_json(args)
    spec, scenario, points, cost, forced = _validated(args)
    for warning in [*validation_warnings(spec, scenario.dataset), *forced]:
        print(f"warning: {warning}", file=sys.stderr)
    if args.print:
        print(yaml.safe_dump(spec.to_dict(), sort_keys=False), end="")
        return 0
    market = spec.market
    print(
        f"{args.spec}: ok: {spec.name}: {len(scenario.dataset.prosumers)} prosumers on "
        f"{len(scenario.feeders)} feeders, {len(scenario.offers)} offers in intervals "
        f"{market.first_interval}..{market.last_interval}, L = {market.prediction_window}, "
        f"{market.clock} clock, {cost.backend} backend"
        + (f", sweep of {points} points" if points else "")
        + f"\n  {'its largest point' if points else 'a run'}: {_mb(cost.memory_mb)} of memory, "
        + cost.describe()
    )
    return 0


def _validated(args: argparse.Namespace) -> tuple[Spec, Scenario, int, Cost, list[str]]:
    """The spec, its scenario, its sweep's points, the run's cost and (with --force)
    what does not fit this machine; SpecError for that without --force."""
    spec = load_spec_args(args)
    scenario = build_scenario(spec)
    if not spec.sweep:
        cost, forced = check_fits(scenario, args.backend, force=args.force)
        return spec, scenario, 0, cost, forced
    # every point must validate on its own (cross-key checks included) and fit
    from orchestrator.sweeps.points import load_points, point_scenarios  # lazy: start-up time

    loaded = load_points(Path(args.spec), args.overrides, os.environ, spec)
    cost, forced = check_points_fit(point_scenarios(loaded), args.backend, force=args.force)
    return spec, scenario, len(loaded), cost, forced


def _validate_json(args: argparse.Namespace) -> int:
    """One JSON object on stdout, also for an invalid spec (exit code as without --json)."""
    try:
        spec, scenario, points, cost, forced = _validated(args)
    except TestbedError as exc:
        problems = str(exc).splitlines()
        print(json.dumps({"spec": str(args.spec), "ok": False, "problems": problems}, indent=2))
        return exc.exit_code
    market = spec.market
    facts = {
        "spec": str(args.spec),
        "ok": True,
        "name": spec.name,
        "prosumers": len(scenario.dataset.prosumers),
        "feeders": len(scenario.feeders),
        "offers": len(scenario.offers),
        "intervals": [market.first_interval, market.last_interval],
        "prediction_window": market.prediction_window,
        "clock": market.clock,
        "backend": cost.backend,
        "sweep_points": points,
        "cost": {**cost.to_json(), "memory_available_mb": _rounded(available_memory_mb())},
        "warnings": [*validation_warnings(spec, scenario.dataset), *forced],
    }
    print(json.dumps(facts, indent=2))
    return 0


def _mb(mb: float) -> str:
    return f"{mb / 1024:,.1f} GB" if mb >= 1024 else f"{mb:,.0f} MB"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# -- schema -------------------------------------------------------------------


def register_schema(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "schema",
        "Print the spec's JSON Schema (Draft 2020-12).",
        """
testbed schema > spec.schema.json
# VS Code (YAML extension): "yaml.schemas": {"spec.schema.json": "topologies/*.yaml"}
""",
    )
    parser.set_defaults(handler=cmd_schema)


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
    return 0


# -- replay -------------------------------------------------------------------


def register_replay(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "replay",
        "Run the market without chain or agents (deterministic): what would trade.",
        """
testbed replay topologies/smoke.yaml
testbed replay topologies/paper-b.yaml --set market.prediction_window=7 --json
testbed replay topologies/transax-battery.yaml --engine glpk \\
    --set market.first_interval=45 --set market.last_interval=60
""",
    )
    add_spec_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--engine",
        choices=("glpk", "highs"),
        help="LP engine (default: the spec's first solver's)",
    )
    add_replay_arguments(parser)  # --plot, --out (commands/observe.py)
    parser.set_defaults(handler=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    from orchestrator.replay import grid_text, run_replay  # lazy: CLI start-up time

    spec = load_spec_args(args)
    if spec.sweep:  # every point, the sweep table and Figure 9
        return cmd_replay_sweep(args)
    scenario = build_scenario(spec)
    engine = args.engine or spec.solvers[0].engine
    summary = run_replay(scenario, engine)
    if args.plot:
        print(f"figure 6: {write_replay_plot(scenario, summary, args.plot)}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(replay_table(scenario, summary))
        print(grid_text(summary))  # the power flow (orchestrator/grid/)
    return 0


def replay_table(scenario: Scenario, summary: dict[str, Any]) -> str:
    """Per-interval traded kWh as bars, then the totals."""
    spec, market = scenario.spec, scenario.spec.market
    per_interval = {int(t): float(kwh) for t, kwh in summary["per_interval_kwh"].items()}
    peak = max(per_interval.values(), default=0.0)
    lines = [
        f"{spec.name}: intervals {market.first_interval}..{market.last_interval}, "
        f"L = {market.prediction_window}, T_clear = {market.t_clear}, engine {summary['engine']}, "
        f"tie-break {summary['tie_break']}",
        f"{describe_dataset(scenario)}",
        "",
        "interval  time   traded kWh",
    ]
    for t, kwh in sorted(per_interval.items()):
        minutes = (t - 1) * market.interval_minutes
        bar = "#" * round(BAR_WIDTH * kwh / peak) if peak > 0 else ""
        lines.append(f"{t:8d}  {minutes // 60:02d}:{minutes % 60:02d} {kwh:10.1f}  {bar}")
    lines += [
        "",
        f"total {summary['total_energy_traded_kwh']:.1f} kWh traded in {summary['trades']} "
        f"trades; solver time {summary['solve_seconds_total']:.2f} s",
    ]
    wait = summary.get("offer_to_trade_intervals") or {}
    if wait.get("count"):
        lines.append(
            f"intervals an offer waited for its first trade (the market's share of "
            f"offer-to-trade latency): p50 {wait['p50']:g}, p99 {wait['p99']:g}, "
            f"max {wait['max']:g}"
        )
    return "\n".join(lines)


def describe_dataset(scenario: Scenario) -> str:
    dataset = scenario.dataset
    sold = sum(o.energy for o in scenario.offers if o.kind is Kind.SELL)
    wanted = sum(o.energy for o in scenario.offers if o.kind is Kind.BUY)
    return (
        f"{len(dataset.prosumers)} prosumers on {len(scenario.feeders)} feeders, "
        f"{len(scenario.offers)} offers: {format_kwh(sold)} kWh for sale, "
        f"{format_kwh(wanted)} kWh wanted"
    )


# -- dataset ------------------------------------------------------------------


def register_dataset(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "dataset",
        "Make or inspect offer traces (TRANSAX format: prosumer_<ID>.csv).",
        """
testbed dataset synth --seed 1 --out /tmp/microgrid
testbed dataset synth --seed 1 --battery --scale 10 --out /tmp/microgrid-x10
testbed dataset info /tmp/microgrid
""",
    )
    parser.set_defaults(handler=lambda _args: _usage(parser))
    commands = parser.add_subparsers(title="dataset commands", metavar="COMMAND")
    synth = add_command(
        commands,
        "synth",
        "Write the seeded synthetic microgrid (11 feeders, 102 prosumers per scale).",
        """
testbed dataset synth --seed 1 --out /tmp/microgrid
testbed dataset synth --seed 1 --battery --battery-capacity-kwh 60 --out /tmp/mg
""",
    )
    synth.add_argument("--seed", type=int, required=True, help="generator seed (>= 0)")
    synth.add_argument("--out", type=Path, required=True, help="directory to write")
    synth.add_argument("--battery", action="store_true", help="producers with batteries")
    synth.add_argument("--scale", type=int, default=1, help="copies of the 11-feeder block")
    synth.add_argument("--battery-capacity-kwh", type=float, default=90.0, metavar="KWH")
    synth.add_argument("--battery-rate-kwh", type=float, default=10.0, metavar="KWH")
    synth.add_argument("--force", action="store_true", help="replace existing trace files")
    synth.set_defaults(handler=cmd_dataset_synth)
    info = add_command(
        commands,
        "info",
        "Summarise a directory of TRANSAX traces.",
        "testbed dataset info ../shared/datasets/transax-phase2/withBattery --json",
    )
    info.add_argument("path", type=Path, metavar="DIR")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(handler=cmd_dataset_info)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def cmd_dataset_synth(args: argparse.Namespace) -> int:
    dataset = synthesize(
        args.seed,
        battery=args.battery,
        scale=args.scale,
        battery_capacity_kwh=args.battery_capacity_kwh,
        battery_rate_kwh=args.battery_rate_kwh,
    )
    write_transax(dataset, args.out, overwrite=args.force)
    print(f"{args.out}: {dataset_line(dataset)}")
    return 0


def cmd_dataset_info(args: argparse.Namespace) -> int:
    dataset = load_transax(args.path)
    if args.json:
        print(json.dumps(dataset_facts(dataset), indent=2))
    else:
        print(f"{args.path}: {dataset_line(dataset)}")
    return 0


def dataset_facts(dataset: Dataset) -> dict[str, Any]:
    rows = [o for p in dataset.prosumers for o in p.offers]
    multi = [o for o in rows if o.start != o.end]
    return {
        "prosumers": len(dataset.prosumers),
        "feeders": len(dataset.feeders),
        "producers": [p.id for p in dataset.producers],
        "offers": len(rows),
        "multi_interval_offers": len(multi),
        "offered_kwh": dataset.offered_wh / 1000,
        "wanted_kwh": dataset.wanted_wh / 1000,
        "intervals": [min(o.start for o in rows), max(o.end for o in rows)] if rows else [],
    }


def dataset_line(dataset: Dataset) -> str:
    facts = dataset_facts(dataset)
    return (
        f"{facts['prosumers']} prosumers on {facts['feeders']} feeders, "
        f"{len(facts['producers'])} producers, {facts['offers']} offers "
        f"({facts['multi_interval_offers']} multi-interval), "
        f"{format_kwh(dataset.offered_wh)} kWh offered for sale, "
        f"{format_kwh(dataset.wanted_wh)} kWh wanted"
    )


COMMANDS: list[Callable[[Subparsers], None]] = [
    register_validate,
    register_schema,
    register_replay,
    register_dataset,
    *RUN_COMMANDS,  # run, clean, results (orchestrator/commands/runs.py)
    *DOCKER_COMMANDS,  # images, render (orchestrator/commands/docker.py)
    *HOSTS_COMMANDS,  # hosts check|requirements (orchestrator/commands/hosts.py)
    *MANAGE_COMMANDS,  # ps, logs, rerun, init, completion (orchestrator/commands/manage.py)
    *LAB_COMMANDS,  # lab up|status|down: a swarm on this machine (orchestrator/commands/lab.py)
]


if __name__ == "__main__":
    sys.exit(main())
