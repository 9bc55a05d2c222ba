"""Benchmark of the end-of-run gas read (summary.json `gas`); prints JSON.

A real run's chain (by default bench/scale.py's 10x paper-c in lockstep, intervals
44..46), read at the end of the run while the node still runs, with the read before
(`gas_from_full_blocks`: every full block and its receipts), every block's receipts
and traces of the blocks with contract calls (`gas_by_function`), and the read a
run makes now (`gas_of_run`: the recorder's events/gas.json and the blocks after). For
each: wall seconds, the node's CPU seconds (anvil, from /proc), this process's CPU
seconds (JSON decoding and the tally), requests and bytes received, and whether both
give the same numbers. Wall time depends on the machine's load (printed beside it);
CPU seconds do not.

    nice -n 10 .venv/bin/python bench/gasread.py
    nice -n 10 .venv/bin/python bench/gasread.py --set market.last_interval=52
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil

from agents.common import rpc as rpc_module
from agents.recorder.gas import GAS_FILE, read_gas
from bench.scale import DEFAULTS, SPEC
from orchestrator.backends.base import Placement
from orchestrator.extensions import RunContext
from orchestrator.hooks import Events
from orchestrator.results.gas import gas_by_function, gas_from_full_blocks, gas_of_run
from orchestrator.run import RunOptions, run

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def counted_requests() -> Iterator[dict[str, int]]:
    """Requests and response bytes of every JsonRpc in this process, meanwhile."""
    counts = {"requests": 0, "bytes_received": 0}

    def counting_loads(raw: Any) -> Any:
        counts["requests"] += 1
        counts["bytes_received"] += len(raw)
        return json.loads(raw)

    rpc_module.json = SimpleNamespace(dumps=json.dumps, loads=counting_loads)  # type: ignore[assignment]
    try:
        yield counts
    finally:
        rpc_module.json = json


def node_cpu_seconds(pid: int) -> float:
    """CPU seconds of the chain unit's process tree (anvil under its launcher)."""
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return sum(sum(p.cpu_times()[:2]) for p in procs)


class GasReadProbe:
    """At `agents_stopped` (the chain still runs): every read of READS, measured."""

    def __init__(self) -> None:
        self.context: RunContext | None = None
        self.rpc_url: str | None = None
        self.contract: str | None = None
        self.report: dict[str, Any] = {}

    def __call__(self, context: RunContext, events: Events) -> None:
        self.context = context
        events.started.add_listener(self.placed)
        events.contract_deployed.add_listener(self.deployed)
        events.agents_stopped.add_listener(self.measure, name="gas read bench")

    def placed(self, placement: Placement) -> None:
        self.rpc_url = placement.rpc_url_local

    def deployed(self, contract: str) -> None:
        self.contract = contract

    def measure(self, _outcome: object) -> None:
        assert self.context is not None and self.rpc_url is not None
        chain = self.context.backend.status()["chain"]
        assert chain.pid is not None
        url, contract = self.rpc_url, self.contract
        recorded = self.context.bundle / "events" / GAS_FILE
        reads: dict[str, Callable[[], dict[str, Any]]] = {
            "full_blocks_before": lambda: gas_from_full_blocks(url, contract),
            "all_blocks_receipts_and_traces": lambda: gas_by_function(url, contract),
            "recorder_tally_and_the_rest_now": lambda: gas_of_run(url, str(contract), recorded),
        }
        blocks = int(rpc_module.JsonRpc(url).call("eth_blockNumber"), 16) + 1
        results = {}
        for name, read in reads.items():
            cpu0, own0, wall0 = node_cpu_seconds(chain.pid), time.process_time(), time.monotonic()
            with counted_requests() as counts:
                results[name] = read()
            self.report[name] = {
                "wall_seconds": round(time.monotonic() - wall0, 2),
                "node_cpu_seconds": round(node_cpu_seconds(chain.pid) - cpu0, 2),
                "python_cpu_seconds": round(time.process_time() - own0, 2),
                **counts,
                "load_average_1m": round(os.getloadavg()[0], 1),
            }
        before, *now = results.values()
        self.report["blocks"] = blocks
        self.report["blocks_the_recorder_read"] = (read_gas(recorded, str(contract)) or (0,))[0]
        self.report["transactions"] = sum(int(g["count"]) for g in before.values())
        self.report["same_numbers"] = all(before == other for other in now)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=SPEC)
    overrides = [*DEFAULTS, "market.last_interval=46"]
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench")
    args = parser.parse_args(argv)
    probe = GasReadProbe()
    options = RunOptions(
        spec=args.spec,
        overrides=[*overrides, *args.extra],
        out=args.out,
        progress=sys.stderr,
        extensions=(probe,),
    )
    result = run(options)
    report = {"status": result.outcome.status, "overrides": options.overrides, **probe.report}
    print(json.dumps(report, indent=2))
    return 0 if probe.report.get("same_numbers") else 1


if __name__ == "__main__":
    sys.exit(main())
