"""`python -m agents <role> --config file.json`: start one agent process.

Loads the config, sets up logging (stderr), SIGTERM/SIGINT handling and the
metrics endpoint, then runs `agents.<role>.run(config, shutdown)`. The role
module is imported lazily so a prosumer never loads the solver's LP stack.
Exit codes: 0 finished or stopped by SIGTERM, 1 agent error, 2 crash, 64 usage.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from agents.common.config import ROLES, load_config
from agents.common.errors import AgentError
from agents.common.logsetup import setup_logging
from agents.common.metrics import start_metrics
from agents.common.shutdown import install_shutdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents", description=__doc__)
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("--config", required=True, help="agent config JSON")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except AgentError as exc:
        print(f"agents: {exc}", file=sys.stderr)
        return 64
    if config.role != args.role:
        print(
            f"agents: {args.config} is for role {config.role!r}, not {args.role!r}", file=sys.stderr
        )
        return 64
    log = setup_logging(config.role, config.name, config.log_level)
    shutdown = install_shutdown()
    try:
        start_metrics(config.metrics_host, config.metrics_port, config.role, config.name)
        module = importlib.import_module(f"agents.{config.role}")
        code = int(module.run(config, shutdown))
    except AgentError as exc:
        log.error("%s", exc)
        return 1
    except Exception:
        log.exception("crashed")
        return 2
    if shutdown.requested:
        log.info("stopped by %s", shutdown.signal_name)
    logging.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
