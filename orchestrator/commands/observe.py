"""CLI subcommands `metrics` and `report`, and the sweep/plot parts of `run`
and `replay` (hooks called from commands/runs.py and cli.py).

Handlers import what they need (docker SDK, paramiko, web3, pyomo, matplotlib)
inside themselves: cli.py imports every command module at start-up, and
`testbed --help` or `validate` must not pay for them."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.commands import add_command

if TYPE_CHECKING:
    from orchestrator.sweeps.runner import SweepResult

# -- metrics ------------------------------------------------------------------


def register_metrics(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "metrics",
        "Start a Prometheus on a bundle's metrics snapshot and print its address "
        "(until Ctrl-C), or answer queries over the run and exit.",
        """
testbed metrics results/smoke/20261126T154436Z-6d3b
testbed metrics BUNDLE --check          # every dashboard query over the run
testbed metrics BUNDLE --query 'sum(testbed_energy_finalized_wh_total)' --json
""",
    )
    parser.add_argument("bundle", metavar="BUNDLE", type=Path, help="a run's results bundle")
    parser.add_argument("--port", type=int, help="listen on this port (default: a free one)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="run every query of dashboards/testbed-run.json over the run; exit 1 if any is empty",
    )
    parser.add_argument(
        "--query",
        action="append",
        default=[],
        metavar="PROMQL",
        help="evaluate over the run's time span (one point per scrape) and exit (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=cmd_metrics)


def cmd_metrics(args: argparse.Namespace) -> int:
    from orchestrator.lifecycle import Interrupted, signals_as_interrupts

    try:
        with signals_as_interrupts():  # SIGTERM/SIGHUP stop the server too
            return _metrics(args)
    except (KeyboardInterrupt, Interrupted):
        print("stopped", file=sys.stderr)
        return 0


def _metrics(args: argparse.Namespace) -> int:
    from orchestrator.observability.explore import run_window, serve_snapshot

    with serve_snapshot(args.bundle, args.port) as server:
        assert server.api is not None
        window = run_window(server.info)
        if args.check:
            return _check(server.api, window, args.json)
        if args.query:
            return _queries(server.api, window, args.query, args.json)
        span = f"{_utc(window.start)} to {_utc(window.end)}"
        if args.json:
            print(json.dumps({"url": server.api.url, "start": window.start, "end": window.end}))
        else:
            print(f"Prometheus on {args.bundle} at {server.api.url}")
            print(f"  data of run {window.run_id}: {span} (set the graph's time range to it)")
            print(f"  graph: {server.api.url}/graph?{_graph_query(window.start, window.end)}")
            print("  Grafana: see dashboards/README.md; Ctrl-C to stop")
        sys.stdout.flush()
        server.wait()
    return 0


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _graph_query(start: float, end: float) -> str:
    import urllib.parse

    span = max(1, int(end - start) + 1)
    end_input = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(end))
    return urllib.parse.urlencode(
        {
            "g0.expr": "sum by (role) (up)",
            "g0.tab": "0",
            "g0.range_input": f"{span}s",
            "g0.end_input": end_input,
        }
    )


def _check(api: Any, window: Any, as_json: bool) -> int:
    from orchestrator.observability.explore import check_dashboard

    results = check_dashboard(api, window)
    if as_json:
        doc = [
            {
                "panel": r.query.panel_id,
                "title": r.query.title,
                "ref": r.query.ref,
                "expr": r.expr,
                "series": len(r.series),
                "values": r.values,
                "ok": r.ok,
                "error": r.error,
            }
            for r in results
        ]
        print(json.dumps(doc, indent=2))
    else:
        for r in results:
            mark = "ok  " if r.ok else "EMPTY" if r.error is None else "ERROR"
            error = f" {r.error}" if r.error else ""
            where = f"panel {r.query.panel_id:>2}{r.query.ref} {r.query.title}"
            print(f"{mark} {where}: {len(r.series)} series, {r.values} values{error}")
        bad = sum(not r.ok for r in results)
        print(f"{len(results) - bad} of {len(results)} dashboard queries answered")
    return 0 if all(r.ok for r in results) else 1


def _queries(api: Any, window: Any, exprs: list[str], as_json: bool) -> int:
    out: list[dict[str, Any]] = []
    for expr in exprs:
        series = api.query_range(expr, window.start, window.end, window.step)
        out.append(
            {
                "query": expr,
                "series": [
                    {"labels": s.labels, "samples": len(s.samples), "last": s.samples[-1][1]}
                    for s in series
                    if s.samples
                ],
            }
        )
    if as_json:
        print(json.dumps(out, indent=2))
    else:
        for item in out:
            print(f"{item['query']}: {len(item['series'])} series")
            for s in item["series"]:
                labels = ", ".join(f"{k}={v}" for k, v in sorted(s["labels"].items()))
                print(f"  {{{labels}}} last {s['last']:g} ({s['samples']} samples)")
    return 0 if all(item["series"] for item in out) else 1


# -- report -------------------------------------------------------------------


def register_report(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "report",
        "Write a bundle's figures (paper Figures 6, 10, 11) and report.md/report.html.",
        """
testbed report results/smoke/20261126T154436Z-6d3b
testbed report BUNDLE --producer 701     # Figure 10 for another producer
""",
    )
    parser.add_argument("bundle", metavar="BUNDLE", type=Path, help="a run's results bundle")
    parser.add_argument(
        "--producer", type=int, help="prosumer id for Figure 10 (default: first of feeder 1)"
    )
    parser.add_argument("--json", action="store_true", help="print the written paths as JSON")
    parser.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from orchestrator.reports.report import write_report

    files = write_report(args.bundle, args.producer)
    doc = {
        "markdown": str(files.markdown),
        "html": str(files.html),
        "figures": {k: str(v) for k, v in files.figures.items()},
        "notes": files.notes,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"report: {files.markdown}")
        print(f"        {files.html}")
        for key, path in files.figures.items():
            print(f"{key}: {path}")
        for note in files.notes:
            print(f"note: {note}")
    return 0


# -- sweeps in `run` and `replay` --------------------------------------------


def is_sweep_args(args: argparse.Namespace) -> bool:
    from orchestrator.sweeps.runner import is_sweep

    return is_sweep(args.spec, list(args.overrides), os.environ)


def cmd_run_sweep(args: argparse.Namespace) -> int:
    """`testbed run` on a spec with `sweep:`: every point, a bundle each."""
    from orchestrator.sweeps.runner import SweepOptions, run_sweep

    result = run_sweep(
        SweepOptions(
            spec=args.spec,
            overrides=tuple(args.overrides),
            out=args.out,
            progress=None if args.quiet else sys.stderr,
            backend=args.backend,
            quiet_points=True,
            argv=tuple(sys.argv),
            force=args.force,
        )
    )
    return _sweep_output(args, result)


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="PATH",
        help="write a PNG: Figure 6 (energy traded per interval vs. production and "
        "consumption); for a sweep spec, Figure 9 (total traded vs. L)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        help="sweep specs: where the sweep table goes (OUT/<spec>/replay-sweep-<id>/)",
    )


def cmd_replay_sweep(args: argparse.Namespace) -> int:
    import shutil

    from orchestrator.sweeps.runner import SweepOptions, replay_sweep

    result = replay_sweep(
        SweepOptions(
            spec=args.spec, overrides=tuple(args.overrides), out=args.out, progress=sys.stderr
        ),
        engine=args.engine,
    )
    if args.plot and "fig9" in result.files:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.files["fig9"], args.plot)
    return _sweep_output(args, result)


def write_replay_plot(scenario: Any, summary: dict[str, Any], path: Path) -> Path:
    """Figure 6 of a replay (traded per interval from its summary)."""
    from orchestrator.reports.data import replay_energy_series
    from orchestrator.reports.figures import figure6

    return figure6(replay_energy_series(scenario, summary["per_interval_kwh"]), path)


COMMANDS = [register_metrics, register_report]


def _sweep_output(args: argparse.Namespace, result: SweepResult) -> int:
    """A sweep's table on stdout (--json: with its directory); its exit code."""
    from orchestrator.sweeps.runner import print_result

    if args.json:
        print(json.dumps({"directory": str(result.directory), **result.table.as_dict()}, indent=2))
    else:
        print_result(result)
    return result.exit_code
