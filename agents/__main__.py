"""`python -m agents <role> --config file.json`: start one agent process.

Loads the config, sets up logging (stderr), SIGTERM/SIGINT handling and the
metrics endpoint, then runs `agents.<role>.run(config, shutdown)`. The role
module is imported lazily so a prosumer never loads the solver's LP stack.
Exit codes: 0 finished or stopped by SIGTERM, 1 agent error, 2 crash, 64 usage.

When its work is done (not stopped by a signal) an agent waits for Prometheus'
next scrape, so the run's metrics hold its last counters (bounded, see
`agents.common.metrics.await_final_scrape`). On the way out (whatever the exit)
it also writes its final metrics, in the Prometheus text format, to
`<out_dir>/metrics.prom`.

Start-up cost (hundreds of hosts start on a few cores: bench/hoststart.py): the
garbage collector is off while the process imports its modules (they make only
long-lived objects; its passes cost ~3.5% of a host's start), and those objects are
then frozen out of later collections (`gc.freeze`); the usual command line is read
without argparse (~5% of a host's start), which reads every other.
"""

from __future__ import annotations

import gc

if __name__ == "__main__":
    gc.disable()  # until the role's modules are imported (main)

import importlib
import logging
import sys
import time
from pathlib import Path

from prometheus_client import REGISTRY, generate_latest

from agents.common.config import ROLES, load_config
from agents.common.errors import AgentError
from agents.common.logsetup import setup_logging
from agents.common.metrics import await_final_scrape, start_metrics
from agents.common.shutdown import install_shutdown


def parse_args(argv: list[str]) -> tuple[str, str]:
    """(role, config file) from the command line. The usual `<role> --config FILE` is
    read directly; anything else (--help, mistakes, other spellings) by argparse."""
    if len(argv) == 3 and argv[0] in ROLES and argv[1] == "--config" and argv[2][:1] != "-":
        return argv[0], argv[2]
    import argparse

    parser = argparse.ArgumentParser(prog="python -m agents", description=__doc__)
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("--config", required=True, help="agent config JSON")
    args = parser.parse_args(argv)
    return str(args.role), str(args.config)


def main(argv: list[str] | None = None) -> int:
    role, path = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = load_config(path)
    except AgentError as exc:
        print(f"agents: {exc}", file=sys.stderr)
        return 64
    if config.role != role:
        print(f"agents: {path} is for role {config.role!r}, not {role!r}", file=sys.stderr)
        return 64
    log = setup_logging(config.role, config.name, config.log_level)
    shutdown = install_shutdown()
    try:
        start_metrics(config.metrics_host, config.metrics_port, config.role, config.name)
        module = importlib.import_module(f"agents.{config.role}")
        if not gc.isenabled():  # started as `python -m agents`: imports done
            gc.freeze()
            gc.enable()
        code = int(module.run(config, shutdown))
        if not shutdown.requested:
            started = time.monotonic()
            scraped = await_final_scrape(lambda: shutdown.requested)
            waited = time.monotonic() - started
            log.info("final scrape: %s after %.2f s", "done" if scraped else "none", waited)
    except AgentError as exc:
        log.error("%s", exc)
        return 1
    except Exception:
        log.exception("crashed")
        return 2
    finally:
        dump_metrics(config.out_dir, log)
    if shutdown.requested:
        log.info("stopped by %s", shutdown.signal_name)
    logging.shutdown()
    return code


def dump_metrics(out_dir: Path, log: logging.Logger) -> None:
    """The registry's final state as `<out_dir>/metrics.prom` (best effort)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / "metrics.prom.tmp"
        tmp.write_bytes(generate_latest(REGISTRY))
        tmp.replace(out_dir / "metrics.prom")
    except OSError as exc:
        log.warning("could not write final metrics to %s: %s", out_dir, exc)


if __name__ == "__main__":
    sys.exit(main())
