"""Gas of the market contract's functions on a real anvil (30M-gas blocks). Prints JSON.

    .venv/bin/python bench/gas.py [--sizes 10,100,1000] [--per-interval 100] [--pairs 100]
                                  [--flood 2300] [--repeat-owners 10]

Scenario (paper-like, worst case for storage reads): 11 feeders; in every delivery interval
5 sell offers (one interval each) and `per-interval` buy offers, each buy offer bought by
exactly one trade, so every trade reads a distinct, cold buy offer. A solution of n trades
spans ceil(n / per-interval) intervals. For each size the market is fresh (anvil snapshot):
the offers are posted, the solution is verified alone (eth_estimateGas of checkSolution),
submitted as the first candidate, then a better one is submitted over it, then a copy of
that candidate (a front-runner's loser: it reverts NotBetter in the pre-check, before the
verification, ~30 gas per trade), then every interval is finalized.

Then the life of an offer from a fresh address, call by call (bench/offer_life.py: one
transaction per call, and with the DSO's batched `issue` and the clock's `closeOffers`),
and the liveness floods (bench/liveness.py) with fresh and with repeated owners: finalize
gas per trade, the largest interval one finalize call settles, offers per 30M-gas block.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from agents.chain.contract import MarketContract, deploy_market
from agents.chain.encoding import encode_trades
from agents.chain.errors import ContractRevert
from agents.chain.node import Anvil, latest_timestamp, mine, revert, snapshot
from agents.chain.tx import PendingTx, Sender
from agents.common.market import MarketParams
from bench import liveness, offer_life
from market.types import Feeder, Kind, Trade

FEEDERS = tuple(Feeder(i, 10**9, 10**9) for i in range(1, 12))
SELLERS_PER_INTERVAL = 5
FIRST = 1
BLOCK_GAS_LIMIT = 30_000_000


def _key(label: str) -> LocalAccount:
    return Account.from_key(Account.create(label).key)


def _intervals(n: int, per: int) -> int:
    return max(1, math.ceil(n / per))


def _setup(market: MarketContract, dso: Sender, n: int, per: int) -> tuple[list[Trade], int]:
    """Post the offers for a solution of n trades; returns its trades and postOffer gas."""
    w3 = market.w3
    intervals = _intervals(n, per)
    last = FIRST + intervals - 1
    sellers = {f.id: Sender(w3, _key(f"s{f.id}")) for f in FEEDERS}
    buyers = {f.id: Sender(w3, _key(f"b{f.id}")) for f in FEEDERS}
    pending: list[PendingTx] = []
    for feeder in FEEDERS:
        s, b, fid = sellers[feeder.id].address, buyers[feeder.id].address, feeder.id
        pending.append(market.add_energy(dso, s, fid, Kind.SELL, 10**12, FIRST, last, gas=200_000))
        pending.append(market.add_energy(dso, b, fid, Kind.BUY, 10**12, FIRST, last, gas=200_000))
        pending.append(market.add_financial_balance(dso, b, 10**30, gas=100_000))
    for p in pending:
        p.wait()
    fids = [f.id for f in FEEDERS]
    posts: list[tuple[PendingTx, str]] = []
    trades: list[Trade] = []
    next_id = market.offer_count() + 1
    for k in range(intervals):
        t = FIRST + k
        count = min(per, n - k * per)
        sell_ids = []
        for j in range(SELLERS_PER_INTERVAL):
            f = fids[(k + j) % len(fids)]
            posts.append(
                (market.post_offer(sellers[f], Kind.SELL, 10**9, t, t, 10, gas=300_000), "sell")
            )
            sell_ids.append(next_id)
            next_id += 1
        for j in range(count):
            f = fids[(k * 7 + j) % len(fids)]
            posts.append(
                (market.post_offer(buyers[f], Kind.BUY, 1_000, t, t, 20, gas=300_000), "buy")
            )
            trades.append(Trade(sell_ids[j % SELLERS_PER_INTERVAL], next_id, t, 500 + j, 15))
            next_id += 1
    gas = {"sell": [], "buy": []}  # type: dict[str, list[int]]
    for p, kind in posts:
        gas[kind].append(p.gas_used)
    return trades, max(max(gas["sell"]), max(gas["buy"]))


def measure(market: MarketContract, dso: Sender, clock: Sender, n: int, per: int) -> dict[str, Any]:
    trades, post_gas = _setup(market, dso, n, per)
    words = encode_trades(trades)
    solver = Sender(market.w3, _key("solver"))
    data = market.encode("checkSolution", words)
    call: Any = {"to": market.address, "data": data}
    verify_gas = market.w3.eth.estimate_gas(call)
    # A first candidate: all but the last trade; then the full solution replaces it.
    first = market.submit_solution(solver, trades[:-1] or trades, gas=BLOCK_GAS_LIMIT - 100_000)
    first_gas = first.gas_used
    second_gas = first_gas
    if n > 1:
        second_gas = market.submit_solution(solver, trades, gas=BLOCK_GAS_LIMIT - 100_000).gas_used
    copy_gas = _losing_copy_gas(market, solver, trades)
    params = market.params()
    fin_gas = []
    for k in range(_intervals(n, per)):
        mine(market.w3, params.finalizable_at(FIRST + k))
        fin_gas.append(market.finalize(clock).gas_used)
    empty = _empty_finalize_gas(market, clock)
    per_trade_final = (sum(fin_gas) - empty * len(fin_gas)) / n
    return {
        "trades": n,
        "intervals": _intervals(n, per),
        "post_offer_gas_max": post_gas,
        "verify_gas": verify_gas,
        "verify_gas_per_trade": round(verify_gas / n, 1),
        "submit_first_gas": first_gas,
        "submit_replace_gas": second_gas,
        "submit_gas_per_trade": round(second_gas / n, 1),
        "fits_30m_block": second_gas <= BLOCK_GAS_LIMIT,
        "losing_copy_gas": copy_gas,
        "losing_copy_gas_per_trade": round(copy_gas / n, 1),
        "finalize_gas_total": sum(fin_gas),
        "finalize_gas_per_trade": round(per_trade_final, 1),
    }


def _losing_copy_gas(market: MarketContract, solver: Sender, trades: list[Trade]) -> int:
    """Gas of a mined submission of a copy of the candidate (it reverts NotBetter)."""
    pending = market.submit_solution(solver, trades, gas=BLOCK_GAS_LIMIT - 100_000)
    try:
        pending.wait()
    except ContractRevert as exc:
        if exc.name != "NotBetter":
            raise
        return int(market.w3.eth.get_transaction_receipt(pending.hash)["gasUsed"])
    raise AssertionError("a copy of the candidate was accepted")


def _empty_finalize_gas(market: MarketContract, clock: Sender) -> int:
    """finalize() of an interval the candidate does not trade (no settlement)."""
    snap = snapshot(market.w3)
    try:
        nxt = market.next_finalize()
        params = market.params()
        if nxt > params.last_interval:
            return 0
        mine(market.w3, params.finalizable_at(nxt))
        return market.finalize(clock).gas_used
    finally:
        revert(market.w3, snap)
        clock.sync_nonce()  # the reverted transaction's nonce is free again


def _flood_summary(floods: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """Per flood (fresh, repeated owners): what a block carries and finalizes."""
    if floods is None:
        return None
    keys = (
        "owners",
        "finalize_gas_per_trade",
        "largest_chunk_in_a_block",
        "offer_life_gas",
        "post_offers_per_block",
        "offer_lives_per_block",
        "every_offer_closed",
    )
    return [
        {"max_trades_per_submission": floods["max_trades_per_submission"]} | {k: f[k] for k in keys}
        for f in floods["floods"]
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--per-interval", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=100, help="offer pairs of the offer life")
    parser.add_argument("--flood", type=int, default=2300, help="1-Wh offers (0: no flood)")
    parser.add_argument("--chunk", type=int, default=400, help="the floods' settleChunk")
    parser.add_argument("--repeat-owners", type=int, default=10)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    started = time.monotonic()
    results = []
    with Anvil(gas_limit=BLOCK_GAS_LIMIT) as node:
        w3 = node.web3()
        dso, clock = Sender(w3, _key("dso")), Sender(w3, _key("clock"))
        last = FIRST + _intervals(max(sizes), args.per_interval)  # one spare interval
        params = MarketParams(
            first_interval=FIRST,
            last_interval=last,
            t_clear=1,
            interval_seconds=3600,  # an hour: posting 1,100 offers on a loaded host stays inside it
            epoch=latest_timestamp(w3) + 10,
        )
        market = deploy_market(w3, dso, FEEDERS, params)
        for n in sizes:
            snap = snapshot(w3)
            results.append(measure(market, dso, clock, n, args.per_interval))
            revert(w3, snap)
            dso.sync_nonce()
            clock.sync_nonce()
        lives = {}
        for name, scenario in (
            ("single_calls", offer_life.single),
            ("batched", offer_life.batched),
            ("signed", offer_life.signed),
        ):
            snap = snapshot(w3)
            lives[name] = scenario(market, dso, clock, args.pairs, FIRST)
            revert(w3, snap)
            dso.sync_nonce()
            clock.sync_nonce()
    floods = liveness.run(args.flood, args.chunk, args.repeat_owners) if args.flood else None
    print(
        json.dumps(
            {
                "block_gas_limit": BLOCK_GAS_LIMIT,
                "scenario": f"{len(FEEDERS)} feeders, {args.per_interval} trades per interval, "
                "one cold buy offer per trade",
                "post_offer_gas": max(r["post_offer_gas_max"] for r in results),
                "solutions": results,
                "offer_life_fresh_address": lives,
                "floods": _flood_summary(floods),
                "seconds": round(time.monotonic() - started, 1),
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
