"""Prosumer host agent: `python -m agents prosumer --config host.json`.

Runs every prosumer of its config in one process (the paper ran 102 prosumers
on 31 boards). Imports nothing heavy (no web3, no LP stack): the goal is under
60 MB RSS per host process.

In lockstep a host reports ready before it loads its codec and signing libraries
(agents.common.abi: coincurve and pycryptodome's Keccak, ~0.01 CPU-s in the agent
image; eth-abi, eth-utils, eth-keys and rlp cost ~0.15 before it did without them:
bench/hoststart.py); its first tick loads them. In wallclock mode the first tick has a
deadline, so a host loads them before it reports ready.
"""

from __future__ import annotations

import logging
import os

from agents.chain.client import MarketClient
from agents.common import metrics
from agents.common.config import ProsumerHostConfig
from agents.common.errors import ProtocolError, StopRequested
from agents.common.protocol import Bootstrap, BootstrapInfo, Done, Finalized, Tick
from agents.common.shutdown import Shutdown
from agents.common.startup import until_reachable
from agents.common.transport import Reporter, Requester, Subscriber
from agents.prosumer.host import ProsumerHost

log = logging.getLogger("agents.prosumer")

# Longest wait for the clock with nothing to do: a stop request wakes the wait at once
# (Shutdown.fileno), so an idle host wakes for the clock's messages only (it woke
# twice a second before: 0.3-0.5 ms of CPU a second, with hundreds of hosts waiting
# on a few cores).
IDLE_WAIT_SECONDS = 60.0
# seconds per try of a DSO request (3 tries); $TESTBED_DSO_TIMEOUT_SECONDS shortens it (tests)
DSO_TIMEOUT_SECONDS = float(os.environ.get("TESTBED_DSO_TIMEOUT_SECONDS") or 30.0)


def run(config: ProsumerHostConfig, shutdown: Shutdown) -> int:
    # start-up (helper bringup): the chain's name may not resolve yet on a busy swarm
    chain = until_reachable(
        "chain", lambda: MarketClient.connect(config), stop=lambda: shutdown.requested
    )
    dso = Requester(
        config.dso_endpoint, timeout=DSO_TIMEOUT_SECONDS, stop=lambda: shutdown.requested
    )
    sub = Subscriber(config.clock_pub_endpoint)
    report = Reporter(config.clock_pull_endpoint)
    try:
        info = dso.request(Bootstrap())
        if not isinstance(info, BootstrapInfo):
            raise ProtocolError(f"DSO answered bootstrap with {info}")
        if info.contract_address.lower() != config.contract_address.lower():
            raise ProtocolError(
                f"DSO announces contract {info.contract_address}, "
                f"config says {config.contract_address}"
            )
        host = ProsumerHost(config, chain, dso, report)
        if config.market.clock == "wallclock":
            chain.load_codec()
        metrics.mark_ready()
        log.info(
            "%d prosumers, %d offers, rotation %s",
            len(config.prosumers),
            sum(len(p.offers) for p in config.prosumers),
            config.address_rotation,
        )
        last = config.market.last_interval
        while not shutdown:
            msg = sub.recv(0 if host.deposits_due() else IDLE_WAIT_SECONDS, wake=shutdown)
            if msg is None:
                shutdown.settle()
                if not shutdown:
                    host.deposit_due()
            elif isinstance(msg, Tick):
                host.on_tick(msg.interval)
            elif isinstance(msg, Finalized):
                host.on_finalized(msg.interval)
                if msg.interval >= last:
                    host.settle()
            elif isinstance(msg, Done):
                host.settle()
                break
        return 0
    except StopRequested as exc:  # SIGTERM while the DSO (stopping too) did not answer
        log.info("%s", exc)
        return 0
    finally:
        sub.close()
        report.close()
        dso.close()
        chain.close()
