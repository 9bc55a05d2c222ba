"""Trimming a solution to what the market contract accepts in one transaction.

submitSolution verifies every trade in one transaction (~4,400 gas per trade with a cold buy
offer, plus ~700 for calldata and the published event: bench/gas.py), so a solution above
`max_trades(block_gas_limit)` trades cannot be mined at all. Every accepted solution also
finalizes: finalize() settles at most the contract's settleChunk trades per call and anyone
may continue it (contracts/README.md "Candidate and finalization").

`trim` keeps at most `limit` trades, deterministically: trades by energy descending (ties:
the contract's key (interval, seller, buyer)), each kept if the feeder rules (5)-(8) of its
interval still hold with it. Offer rules (3)-(4) and the per-trade rules hold for every
subset of a feasible solution; the feeder net-flow rules (5)-(6) do not (dropping a trade
can unbalance a feeder), hence the check. A solution within the limit is returned as it
is, so runs that never reach the limit trade what market.replay trades.
"""

from __future__ import annotations

from collections import defaultdict

from market.rules import Stage, contract_order, feeder_rows
from market.types import Feeder, Problem, Solution, Trade

BLOCK_GAS_LIMIT = 30_000_000  # anvil's default and the testbed's chains
SUBMIT_GAS_PER_TRADE = 5_200  # verification + calldata + SolutionAccepted's data, with margin
SUBMIT_GAS_BASE = 300_000  # the transaction, the candidate's state, the hash chain's setup

_ROWS = feeder_rows(contract_order(Stage.FEEDER))


def max_trades(block_gas_limit: int = BLOCK_GAS_LIMIT) -> int:
    """The most trades a submission may carry to fit a block of `block_gas_limit` gas."""
    return max(0, (block_gas_limit - SUBMIT_GAS_BASE) // SUBMIT_GAS_PER_TRADE)


def trim(problem: Problem, solution: Solution, limit: int) -> Solution:
    """At most `limit` trades of the feasible `solution` that still verify (module doc)."""
    if len(solution.trades) <= limit:
        return solution
    offers = {o.id: o for o in problem.offers}
    feeders = {f.id: f for f in problem.feeders}
    sold: dict[tuple[int, int], int] = defaultdict(int)  # (feeder, interval) -> Wh
    bought: dict[tuple[int, int], int] = defaultdict(int)
    kept: list[Trade] = []
    order = sorted(solution.trades, key=lambda t: (-t.energy, t.interval, t.seller, t.buyer))
    for trade in order:
        if len(kept) == limit:
            break
        out = (offers[trade.seller].feeder, trade.interval)
        into = (offers[trade.buyer].feeder, trade.interval)
        sold[out] += trade.energy
        bought[into] += trade.energy
        if all(_holds(feeders[k[0]], sold[k], bought[k]) for k in {out, into}):
            kept.append(trade)
        else:
            sold[out] -= trade.energy
            bought[into] -= trade.energy
    return Solution(tuple(sorted(kept, key=lambda t: (t.interval, t.seller, t.buyer))))


def _holds(feeder: Feeder, sold: int, bought: int) -> bool:
    return all(row.excess(feeder, sold, bought) <= 0 for _, row in _ROWS)
