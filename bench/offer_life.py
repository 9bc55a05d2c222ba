"""Gas of the whole life of an offer, call by call, on a real anvil (used by bench/gas.py).

Every offer is posted from a fresh anonymous address (the testbed's default rotation,
`per_offer`): `pairs` sell offers and `pairs` buy offers in one delivery interval, each
buy offer traded with one sell offer (at a price between their limits, so both keep money
for their owners), the interval finalized, the offers closed, everything deposited back.

- `single`: one transaction per call, as the paper names them: addEnergy,
  addFinancialBalance (buyers), postOffer, closeOffer, depositFinancial (0 when closeOffer
  of the owner's last open offer left nothing to deposit, as it does now).
- `batched`: the DSO's `issue` grants every address its permission and money in one
  transaction, each address posts its offer, and the clock's `closeOffers` closes them
  all, which also deposits what each owner has left (its share of both batched calls is
  counted per offer).
- `signed`: the testbed's route: the DSO signs each address's grant off chain (no DSO
  transaction), the address posts its offer with it (postSignedOffer), the clock's
  `closeOffers` closes them all.

A life is what its calls cost, 21k base included; the trade's share of submitSolution and
finalize is counted apart (bench/gas.py's solutions, bench/liveness.py).
"""

from __future__ import annotations

import statistics
from typing import Any

from eth_account import Account

from agents.chain.contract import MarketContract
from agents.chain.encoding import MONEY, Grant, SignedGrant
from agents.chain.node import mine
from agents.chain.tx import PendingTx, Sender
from agents.common.abi import keccak256
from market.types import Kind, Solution, Trade

SELL_PRICE, BUY_PRICE, TRADE_PRICE, ENERGY = 100, 300, 200, 1_000
GAS = 15_000_000  # limit of a batched call
BLOCK_GAS = 30_000_000


def _key(market: MarketContract, label: str) -> Sender:
    who = Sender(market.w3, Account.from_key(keccak256(label.encode())), 0)
    who.set_nonce(0)
    return who


def _gas(pending: list[PendingTx]) -> list[int]:
    return [p.gas_used for p in pending]


def _median(values: list[int]) -> int:
    return round(statistics.median(values))


def _trade_and_finalize(
    market: MarketContract, clock: Sender, sells: list[int], buys: list[int], t: int
) -> None:
    trades = [Trade(s, b, t, ENERGY, TRADE_PRICE) for s, b in zip(sells, buys, strict=True)]
    market.submit_solution(clock, Solution(tuple(trades)), gas=GAS).wait()
    while market.next_finalize() <= t:
        mine(market.w3, market.finalizable_at())
        market.finalize(clock, gas=GAS).wait()


def _post(
    market: MarketContract, who: list[Sender], kind: Kind, t: int
) -> tuple[list[int], list[int]]:
    """Each address posts one offer; returns the gas of each and the offer ids."""
    first = market.offer_count() + 1
    price = SELL_PRICE if kind == Kind.SELL else BUY_PRICE
    gas = _gas([market.post_offer(w, kind, ENERGY, t, t, price) for w in who])
    return gas, list(range(first, first + len(who)))


def single(
    market: MarketContract, dso: Sender, clock: Sender, pairs: int, t: int
) -> dict[str, Any]:
    sellers = [_key(market, f"single/s/{i}") for i in range(pairs)]
    buyers = [_key(market, f"single/b/{i}") for i in range(pairs)]
    energy = _gas(
        [
            market.add_energy(dso, w.address, f, k, ENERGY, t, t)
            for ws, f, k in ((sellers, 1, Kind.SELL), (buyers, 2, Kind.BUY))
            for w in ws
        ]
    )
    money = _gas([market.add_financial_balance(dso, w.address, ENERGY * BUY_PRICE) for w in buyers])
    sell_post, sell_ids = _post(market, sellers, Kind.SELL, t)
    buy_post, buy_ids = _post(market, buyers, Kind.BUY, t)
    _trade_and_finalize(market, clock, sell_ids, buy_ids, t)
    close = _gas(
        [
            market.close_offer(w, i)
            for w, i in zip(sellers + buyers, sell_ids + buy_ids, strict=True)
        ]
    )
    # closeOffer of an owner's last open offer deposits what it holds: nothing is left
    left = [(w, market.balance_of(w.address)) for w in sellers + buyers]
    deposit = _gas([market.deposit_financial(w, b) for w, b in left if b]) or [0]
    calls = {
        "add_energy": _median(energy),
        "add_financial_balance": _median(money),
        "post_offer_sell": _median(sell_post),
        "post_offer_buy": _median(buy_post),
        "close_offer": _median(close),
        "deposit_financial": _median(deposit),
    }
    sell = (
        calls["add_energy"]
        + calls["post_offer_sell"]
        + calls["close_offer"]
        + calls["deposit_financial"]
    )
    return {
        "calls": calls,
        "sell_offer_life": sell,
        "buy_offer_life": sell
        - calls["post_offer_sell"]
        + calls["post_offer_buy"]
        + calls["add_financial_balance"],
    }


def batched(
    market: MarketContract, dso: Sender, clock: Sender, pairs: int, t: int
) -> dict[str, Any]:
    sellers = [_key(market, f"batched/s/{i}") for i in range(pairs)]
    buyers = [_key(market, f"batched/b/{i}") for i in range(pairs)]
    sell_grants = [Grant(w.address, int(Kind.SELL), ENERGY, 1, t, t) for w in sellers]
    buy_grants = [
        g
        for w in buyers
        for g in (
            Grant(w.address, int(Kind.BUY), ENERGY, 2, t, t),
            Grant(w.address, MONEY, ENERGY * BUY_PRICE),
        )
    ]
    issue_sell = market.issue(dso, sell_grants, gas=GAS).gas_used
    issue_buy = market.issue(dso, buy_grants, gas=GAS).gas_used
    sell_post, sell_ids = _post(market, sellers, Kind.SELL, t)
    buy_post, buy_ids = _post(market, buyers, Kind.BUY, t)
    _trade_and_finalize(market, clock, sell_ids, buy_ids, t)
    close_sell = market.close_offers(clock, sell_ids, gas=GAS).gas_used
    close_buy = market.close_offers(clock, buy_ids, gas=GAS).gas_used
    left = sum(market.balance_of(w.address) for w in sellers + buyers)
    calls = {
        "issue_per_sell_offer": round(issue_sell / pairs),
        "issue_per_buy_offer": round(issue_buy / pairs),
        "post_offer_sell": _median(sell_post),
        "post_offer_buy": _median(buy_post),
        "close_offers_per_sell_offer": round(close_sell / pairs),
        "close_offers_per_buy_offer": round(close_buy / pairs),
    }
    return {
        "calls": calls,
        "money_left_on_chain": left,
        "sell_offer_life": calls["issue_per_sell_offer"]
        + calls["post_offer_sell"]
        + calls["close_offers_per_sell_offer"],
        "buy_offer_life": calls["issue_per_buy_offer"]
        + calls["post_offer_buy"]
        + calls["close_offers_per_buy_offer"],
    }


def signed(
    market: MarketContract, dso: Sender, clock: Sender, pairs: int, t: int
) -> dict[str, Any]:
    """The DSO signs each address's grant off chain (no DSO transaction): each address
    posts its offer with it (postSignedOffer), the clock's closeOffers closes them all."""
    sellers = [_key(market, f"signed/s/{i}") for i in range(pairs)]
    buyers = [_key(market, f"signed/b/{i}") for i in range(pairs)]
    first = market.offer_count() + 1
    sell_post = _gas(
        [
            market.post_signed_offer(
                w, Kind.SELL, ENERGY, t, t, SELL_PRICE,
                market.sign_grant(dso, SignedGrant(w.address, 1, (ENERGY, t, t))),
            )
            for w in sellers
        ]
    )  # fmt: skip
    buy_post = _gas(
        [
            market.post_signed_offer(
                w, Kind.BUY, ENERGY, t, t, BUY_PRICE,
                market.sign_grant(
                    dso, SignedGrant(w.address, 2, buy=(ENERGY, t, t), money=ENERGY * BUY_PRICE)
                ),
            )
            for w in buyers
        ]
    )  # fmt: skip
    sell_ids = list(range(first, first + pairs))
    buy_ids = list(range(first + pairs, first + 2 * pairs))
    _trade_and_finalize(market, clock, sell_ids, buy_ids, t)
    close_sell = market.close_offers(clock, sell_ids, gas=GAS).gas_used
    close_buy = market.close_offers(clock, buy_ids, gas=GAS).gas_used
    left = sum(market.balance_of(w.address) for w in sellers + buyers)
    calls = {
        "post_signed_offer_sell": _median(sell_post),
        "post_signed_offer_buy": _median(buy_post),
        "close_offers_per_sell_offer": round(close_sell / pairs),
        "close_offers_per_buy_offer": round(close_buy / pairs),
    }
    sell = calls["post_signed_offer_sell"] + calls["close_offers_per_sell_offer"]
    buy = calls["post_signed_offer_buy"] + calls["close_offers_per_buy_offer"]
    return {
        "calls": calls,
        "money_left_on_chain": left,
        "sell_offer_life": sell,
        "buy_offer_life": buy,
        "offer_lives_per_block": BLOCK_GAS // max(sell, buy),
    }
