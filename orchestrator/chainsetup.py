"""The chain of a run: anvil's command line (from agents.chain.node, so the
node runs exactly as in the chain tests, but as a backend unit with a pidfile),
waiting until it answers, and deploying the market contract with the DSO key."""

from __future__ import annotations

import time
from collections.abc import Callable

from eth_account import Account
from web3 import HTTPProvider, Web3

from agents.chain.contract import MarketParams, deploy_market
from agents.chain.errors import ChainError
from agents.chain.node import Anvil, latest_timestamp
from agents.chain.tx import Sender
from orchestrator.errors import TestbedError
from orchestrator.plan import DSO_ACCOUNT, Plan
from orchestrator.render import ChainInfo, dev_key

POLL_SECONDS = 0.1


class ChainSetupError(TestbedError):
    exit_code = 1


def anvil_argv(
    *, port: int, chain_id: int, block_time: float | None, accounts: int, host: str = "127.0.0.1"
) -> list[str]:
    """anvil's arguments for a run: base fee and gas price 0, the given port."""
    argv = Anvil(host=host, block_time=block_time, chain_id=chain_id, accounts=accounts).command()
    i = argv.index("--port")
    argv[i + 1] = str(port)
    return argv


def wait_for_chain(url: str, timeout: float, alive: Callable[[], bool]) -> None:
    """Until the node answers eth_chainId; `alive()` raises if the node died."""
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 2}))
    deadline = time.monotonic() + timeout
    while True:
        alive()
        try:
            w3.eth.chain_id  # noqa: B018 - the call is the probe
            return
        except Exception:
            if time.monotonic() > deadline:
                raise ChainSetupError(
                    f"chain at {url} did not answer within {timeout:g} s"
                ) from None
        time.sleep(POLL_SECONDS)


def deploy(url: str, plan: Plan, chain_id: int, epoch: int | None) -> ChainInfo:
    """Deploy the market contract from the DSO's account. `epoch` None (lockstep)
    = the chain's current time: clock interval first - t_clear starts now."""
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 60}))
    m = plan.market
    start = latest_timestamp(w3) if epoch is None else epoch
    params = MarketParams(
        feeders=plan.feeders,
        first_interval=m.first_interval,
        last_interval=m.last_interval,
        t_clear=m.t_clear,
        interval_seconds=m.chain_interval_seconds,
        epoch=start,
        min_offer_energy=m.min_offer_energy_wh,
        max_open_offers=m.max_open_offers,
        settle_chunk=m.settle_chunk,
    )
    try:
        market = deploy_market(w3, Sender(w3, Account.from_key(dev_key(DSO_ACCOUNT))), params)
    except ChainError as exc:
        raise ChainSetupError(f"deploying the market contract: {exc}") from exc
    return ChainInfo(contract_address=str(market.address), chain_id=chain_id, epoch=start)
