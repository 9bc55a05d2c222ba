"""DSO agent: `python -m agents dso --config dso.json`.

ROUTER endpoint (`dso_endpoint`, REQ clients) for bootstrap and withdrawals:
requests waiting together are answered together, their assets issued in one
batch of transactions; listens to the
clock's broadcast for finalized intervals and `done`; credits deposits from
EnergyDeposited/FinancialDeposited events. See accounts.py for the safety rules.
"""

from __future__ import annotations

import json
import logging
import time

from agents.chain.client import MarketClient
from agents.common import metrics
from agents.common.config import DsoConfig
from agents.common.errors import AgentError
from agents.common.protocol import Done, Finalized
from agents.common.shutdown import Shutdown
from agents.common.transport import Router, Subscriber
from agents.dso.accounts import Accounts
from agents.dso.service import DsoService

log = logging.getLogger("agents.dso")

ACCOUNTS_FILE = "accounts.json"

SERVE_POLL_SECONDS = 0.05
DEPOSIT_POLL_SECONDS = 0.5


def run(config: DsoConfig, shutdown: Shutdown) -> int:
    chain = MarketClient.connect(config, config.private_key)
    if chain.main is None:
        raise AgentError("dso needs private_key")
    service = DsoService(
        config, Accounts.from_config(config), chain, chain.main, grant_key=config.private_key
    )
    dispatcher = service.dispatcher()
    router = Router(config.dso_endpoint)
    sub = Subscriber(config.clock_pub_endpoint)
    try:
        metrics.mark_ready()
        log.info(
            "serving %s: %d prosumers on %d feeders",
            config.dso_endpoint,
            len(config.prosumers),
            len(config.feeders),
        )
        next_poll = time.monotonic()
        done = False
        while not shutdown and not done:
            waiting = router.recv_all(SERVE_POLL_SECONDS)
            if waiting:
                replies = service.handle_many([body for _, body in waiting], dispatcher)
                for (envelope, _), reply in zip(waiting, replies, strict=True):
                    router.reply(envelope, reply)
            while (msg := sub.recv(0)) is not None:
                if isinstance(msg, Finalized):
                    service.accounts.finalized = max(service.accounts.finalized, msg.interval)
                elif isinstance(msg, Done):
                    done = True
            if done or time.monotonic() >= next_poll:
                service.poll_deposits()
                next_poll = time.monotonic() + DEPOSIT_POLL_SECONDS
        log.info(
            "stopping: %d withdrawals granted, %d refused",
            service.granted,
            service.refused,
        )
        return 0
    finally:
        _write_accounts(config, service)
        router.close()
        sub.close()
        chain.close()


def _write_accounts(config: DsoConfig, service: DsoService) -> None:
    """Leave the final prosumer accounts in out_dir/accounts.json (also on SIGTERM)."""
    try:
        config.out_dir.mkdir(parents=True, exist_ok=True)
        path = config.out_dir / ACCOUNTS_FILE
        path.write_text(json.dumps(service.accounts.summary(), indent=1, sort_keys=True) + "\n")
    except OSError as exc:
        log.warning("cannot write %s: %s", ACCOUNTS_FILE, exc)
