"""Liveness of the market contract under a flood of 1-Wh offers, on a real anvil. Prints JSON.

    .venv/bin/python bench/liveness.py [--offers 2300] [--chunk 400] [--repeat-owners 10]

Scenario (issue 14): one seller with plenty in one feeder; `offers` buy offers of 1 Wh each
(the minimum) in one delivery interval, each from a fresh address (the testbed's rotation),
then again from `repeat-owners` addresses that post many each. The honest solver's optimum
(HiGHS) trades every one of them; it is trimmed to what one submission carries
(agents.solver.trim), submitted, and the interval is finalized in calls of at most `chunk`
trades until done; then every offer is closed. Reported: gas of each finalize call and per
settled trade, the largest chunk that fits a block, the full life of one offer (its share of
the DSO's batched `issue`, postOffer, its share of the clock's batched `closeOffers`, which
also deposits what an owner has left) and offers per block.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from eth_account import Account

from agents.chain.contract import MarketContract, deploy_market
from agents.chain.encoding import MONEY, Grant
from agents.chain.events import OfferPosted
from agents.chain.node import Anvil, latest_timestamp, mine, revert, snapshot
from agents.chain.tx import PendingTx, Sender
from agents.common.abi import keccak256
from agents.common.market import MarketParams
from agents.solver.trim import max_trades, trim
from market.solve import solve
from market.types import Feeder, Kind, Problem

BLOCK_GAS_LIMIT = 30_000_000
FEEDERS = (Feeder(1, 10**12, 10**12), Feeder(2, 10**12, 10**12))
FIRST, LAST, HOUR, PRICE = 2, 3, 3600, 100
TX_GAS = 1_000_000
ISSUE_BATCH = 100  # addresses per DSO issue call (two grants each)
CLOSE_BATCH = 200  # offers per closeOffers call


def _key(w3: Any, label: str) -> Sender:
    who = Sender(w3, Account.from_key(keccak256(label.encode())), 0)
    who.set_nonce(0)
    return who


def _wait(pending: list[PendingTx]) -> list[int]:
    return [p.gas_used for p in pending]


def _paced(sends: list[Callable[[], PendingTx]], batch: int = 200) -> list[int]:
    """Gas of each transaction, sent `batch` at a time (the node keeps up on a busy host)."""
    gas: list[int] = []
    for i in range(0, len(sends), batch):
        gas += _wait([send() for send in sends[i : i + batch]])
    return gas


def _issue(market: MarketContract, dso: Sender, grants: list[Grant]) -> int:
    """Gas of issuing `grants` in the DSO's batched calls (ISSUE_BATCH addresses each)."""
    sends: list[Callable[[], PendingTx]] = [
        partial(market.issue, dso, grants[i : i + 2 * ISSUE_BATCH], gas=BLOCK_GAS_LIMIT // 2)
        for i in range(0, len(grants), 2 * ISSUE_BATCH)
    ]
    return sum(_paced(sends, batch=8))


def _post(market: MarketContract, dso: Sender, n: int, owners: int | None) -> dict[str, Any]:
    """The seller's offer and n 1-Wh buy offers (from n fresh addresses, or `owners`); the
    DSO issues each buyer's permission and money in its batched `issue` call."""
    w3 = market.w3
    seller = _key(w3, f"seller/{owners}")
    buyers = [_key(w3, f"buyer/{owners}/{i}") for i in range(owners or n)]
    per = [n // len(buyers) + (i < n % len(buyers)) for i in range(len(buyers))]
    market.add_energy(dso, seller.address, 1, Kind.SELL, n, FIRST, LAST, gas=TX_GAS).wait()
    grants = [
        g
        for b, k in zip(buyers, per, strict=True)
        for g in (
            Grant(b.address, int(Kind.BUY), k, 2, FIRST, LAST),
            Grant(b.address, MONEY, k * PRICE),
        )
    ]
    issue_gas = _issue(market, dso, grants)
    market.post_offer(seller, Kind.SELL, n, FIRST, FIRST, 10, gas=TX_GAS).wait()
    post_gas = _paced(
        [
            partial(market.post_offer, b, Kind.BUY, 1, FIRST, FIRST, PRICE, gas=TX_GAS)
            for b, k in zip(buyers, per, strict=True)
            for _ in range(k)
        ]
    )
    return {
        "buyers": buyers,
        "seller": seller,
        "issue_gas_per_offer": issue_gas / n,
        "post_offer_gas": max(post_gas),
    }


def _finalize(market: MarketContract, clock: Sender) -> list[int]:
    """Gas of each finalize() call until FIRST is finalized."""
    mine(market.w3, market.finalizable_at())
    gas = []
    while market.next_finalize() == FIRST:
        gas.append(market.finalize(clock, gas=BLOCK_GAS_LIMIT - 100_000).gas_used)
    return gas


def flood(market: MarketContract, dso: Sender, n: int, owners: int | None) -> dict[str, Any]:
    w3 = market.w3
    start = w3.eth.block_number
    posted = _post(market, dso, n, owners)
    offers = tuple(
        e.offer for e in market.events(start + 1, types=[OfferPosted]) if isinstance(e, OfferPosted)
    )
    problem = Problem(FEEDERS, offers, (), FIRST)
    optimum = solve(problem, "highs", last_interval=LAST).solution
    solution = trim(problem, optimum, max_trades(BLOCK_GAS_LIMIT))
    submit = market.submit_solution(_key(w3, f"solver/{owners}"), solution, gas=BLOCK_GAS_LIMIT)
    clock = _key(w3, f"clock/{owners}")
    calls = _finalize(market, clock)
    # the clock closes every offer in batches; owners left with none open deposit everything
    ids = [o.id for o in offers]
    close_gas = _paced(
        [
            partial(market.close_offers, clock, ids[i : i + CLOSE_BATCH], gas=BLOCK_GAS_LIMIT // 2)
            for i in range(0, len(ids), CLOSE_BATCH)
        ],
        batch=8,
    )
    close_per_offer = sum(close_gas) / len(ids)
    left = sum(market.balance_of(b.address) for b in posted["buyers"])
    settled = len(solution.trades)
    chunk = int(market.call("settleChunk"))
    # a middle call settles `chunk` trades, the last one the rest; both pass the whole segment
    # (the first one also creates the cursor's slot)
    last = settled - chunk * (len(calls) - 1)
    full = calls[1] if len(calls) > 2 else calls[0]
    per_trade = (full - calls[-1]) / (chunk - last) if len(calls) > 1 and last < chunk else 0
    overhead = full - chunk * per_trade if per_trade else 0
    life = posted["issue_gas_per_offer"] + posted["post_offer_gas"] + close_per_offer
    return {
        "owners": "fresh per offer" if owners is None else f"{owners} addresses",
        "offers": n,
        "optimum_trades": len(optimum.trades),
        "submitted_trades": settled,
        "submit_gas": submit.gas_used,
        "submit_gas_per_trade": round(submit.gas_used / max(1, settled), 1),
        "finalize_calls": len(calls),
        "finalize_gas_per_call": calls,
        "settle_chunk": chunk,
        "finalize_gas_per_trade": round(per_trade, 1),
        "finalize_call_overhead_gas": round(overhead),
        "largest_chunk_in_a_block": int((BLOCK_GAS_LIMIT - overhead) // per_trade)
        if per_trade
        else None,
        "every_offer_closed": all(market.call("offer", o.id)[-1] for o in offers),
        "buyers_money_left_after_close": left,
        "offer_life_gas": {
            "issue_per_offer": round(posted["issue_gas_per_offer"]),
            "post_offer": posted["post_offer_gas"],
            "close_offers_per_offer": round(close_per_offer),
            "total": round(life),
        },
        "post_offers_per_block": BLOCK_GAS_LIMIT // posted["post_offer_gas"],
        "offer_lives_per_block": int(BLOCK_GAS_LIMIT // life),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offers", type=int, default=2300)
    parser.add_argument("--chunk", type=int, default=400)
    parser.add_argument("--repeat-owners", type=int, default=10)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.offers, args.chunk, args.repeat_owners), indent=1))
    return 0


def run(offers: int, chunk: int, repeat_owners: int) -> dict[str, Any]:
    """The floods with fresh and with repeated owners, on a fresh anvil."""
    started = time.monotonic()
    with Anvil(gas_limit=BLOCK_GAS_LIMIT) as node:
        w3 = node.web3()
        dso = _key(w3, "dso")
        epoch = latest_timestamp(w3) - 60  # FIRST open for an hour
        params = MarketParams(
            first_interval=FIRST,
            last_interval=LAST,
            t_clear=1,
            interval_seconds=HOUR,
            epoch=epoch,
            settle_chunk=chunk,
        )
        market = deploy_market(w3, dso, FEEDERS, params)
        results = []
        for owners in (None, repeat_owners):
            snap = snapshot(w3)
            results.append(flood(market, dso, offers, owners))
            revert(w3, snap)
            dso.sync_nonce()
    return {
        "block_gas_limit": BLOCK_GAS_LIMIT,
        "max_trades_per_submission": max_trades(BLOCK_GAS_LIMIT),
        "floods": results,
        "seconds": round(time.monotonic() - started, 1),
    }


if __name__ == "__main__":
    sys.exit(main())
