"""The chain side of the differential cases (differential_cases.py): the deployed markets,
a case's transactions, and the contract's verdicts in one JSON-RPC batch.

Deployed once per node: one market per feeder variant, a poster per (feeder, kind) with
assets, then an evm_snapshot every case returns to. The node does not automine here: a
case's offers and first solution are mined in one block, each finalize() in a block at
its interval's deadline (one evm_mine each, not a block per transaction), and the
receipts are read in one batch. The calls go over the agents' lean JSON-RPC client with
their signing (agents.common.rpc): web3's request stack cost ~5 ms of CPU per call and
eth-account's signing ~2 ms per transaction, most of a case's time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account import Account

from agents.chain import encoding
from agents.chain.client import load_abi
from agents.chain.contract import deploy_market
from agents.chain.errors import ContractRevert, decode_revert
from agents.chain.events import OfferPosted, TradeFinalized, decode_log, topic_of
from agents.chain.node import connect, latest_timestamp
from agents.chain.tx import PendingTx, Sender
from agents.common.abi import keccak256
from agents.common.market import MarketParams
from agents.common.rpc import Contract, JsonRpc, RpcError, Signer, succeeded
from market.types import Feeder, Kind, Offer, Trade

LAST = 6  # delivery intervals 1..6 (clock starts at 0, T_clear = 1)
HOUR = 3600
U64 = encoding.MAX_ENERGY
VARIANTS = (  # feeder limits (c_ext, c_int): each rule of (5)-(8) has a window of energies
    (Feeder(1, 15, 1_000), Feeder(2, 1_000, 12), Feeder(3, 1_000, 1_000)),
    (Feeder(1, 1_000, 10), Feeder(2, 10, 1_000), Feeder(3, 40, 40)),
    (Feeder(1, 1_000, 1_000), Feeder(2, 1_000, 1_000), Feeder(3, 10, 1_000)),
    (Feeder(1, U64, U64), Feeder(2, U64, U64), Feeder(3, U64, U64)),  # "limits": no bound
)
LIMITS = 3  # the variant whose posters hold uint64 energy and a huge balance
TX_GAS = 3_000_000
ENERGY_ASSET, MONEY_ASSET = 10**9, 10**15

Verdict = int | ContractRevert  # an eth_call's decoded result, or its revert


@dataclass
class Env:
    rpc: JsonRpc
    chain_id: int
    params: MarketParams
    markets: list[Contract]
    posters: list[dict[tuple[int, Kind], Signer]]  # per variant: (feeder, kind) -> address
    solver: Signer
    clock: Signer
    base: str  # snapshot id of the deployed markets
    base_time: int  # its block's timestamp

    def reset(self) -> None:
        if not self.rpc.call("evm_revert", [self.base]):
            raise AssertionError(f"evm_revert: unknown snapshot {self.base}")
        # the node's clock back to the snapshot's: interval 1's deadline lies half an hour
        # after it, however long the cases before took (a long run takes hours)
        self.rpc.call("evm_setTime", [self.base_time + 1])
        self.base = self.rpc.call("evm_snapshot")
        for signer in (*(s for p in self.posters for s in p.values()), self.solver, self.clock):
            signer.nonce = 0  # they have sent nothing in the snapshot

    def close(self) -> None:
        self.rpc.close()


def _key(label: str) -> bytes:
    return keccak256(label.encode())


def deploy_env(url: str) -> Env:
    """One market per variant, a poster per (feeder, kind) with assets, a snapshot; the
    node's automine off from then on (cases mine their blocks)."""
    w3 = connect(url)
    dso = Sender(w3, Account.from_key(_key("differential/dso")))
    markets, posters = [], []
    # Hour-long intervals, interval 1 open for half an hour: prepare() mines each finalize
    # at its deadline (a snapshot's revert moves chain time back), and submissions come
    # before the next deadline (submitSolution refuses after it: DeadlinePassed).
    epoch = latest_timestamp(w3) - HOUR // 2
    params = MarketParams(
        first_interval=1, last_interval=LAST, t_clear=1, interval_seconds=HOUR, epoch=epoch
    )
    chain_id = int(w3.eth.chain_id)
    for v, feeders in enumerate(VARIANTS):
        market = deploy_market(w3, dso, feeders, params)
        energy, money = (U64, 1 << 200) if v == LIMITS else (ENERGY_ASSET, MONEY_ASSET)
        senders: dict[tuple[int, Kind], Signer] = {}
        pending: list[PendingTx] = []
        for f in feeders:
            for kind in Kind:
                who = Signer(_key(f"differential/{v}/{f.id}/{kind.name}"), chain_id)
                senders[f.id, kind] = who
                pending.append(market.add_energy(dso, who.address, f.id, kind, energy, 1, LAST))
                pending.append(market.add_financial_balance(dso, who.address, money))
        for p in pending:
            p.wait()
        markets.append(Contract(market.address, load_abi()))
        posters.append(senders)
    rpc = JsonRpc(url)
    rpc.call("evm_setAutomine", [False])
    solver = Signer(_key("differential/solver"), chain_id)
    clock = Signer(_key("differential/clock"), chain_id)
    base, base_time = rpc.call("evm_snapshot"), latest_timestamp(w3)
    return Env(rpc, chain_id, params, markets, posters, solver, clock, base, base_time)


def post_offers(env: Env, variant: int, offers: Sequence[Offer]) -> list[bytes]:
    """The signed postOffer transactions of `offers`, from the variant's posters (the one
    place that knows how an offer is posted)."""
    market, posters = env.markets[variant], env.posters[variant]
    return [
        posters[o.feeder, o.kind].sign(
            market.address,
            market.encode("postOffer", int(o.kind), o.energy, o.start, o.end, o.price),
            TX_GAS,
        )
        for o in offers
    ]


def prepare(
    env: Env, variant: int, offers: Sequence[Offer], first: Sequence[Trade], k: int
) -> bool:
    """Posts the offers (ids 1.. in order) and submits `first` in one block, then finalizes
    intervals 1..k, each in a block at its deadline. Returns whether `first` was submitted
    (it is feasible by construction: the contract must take it). Raises AssertionError if a
    transaction reverted, the offers got other ids or the finalized trades differ from
    `first`'s trades of intervals <= k."""
    market = env.markets[variant]
    words = encoding.encode_trades(first)
    raws = post_offers(env, variant, offers)
    if words:
        raws.append(env.solver.sign(market.address, market.encode("submitSolution", words), TX_GAS))
    hashes = [_send(env.rpc, r) for r in raws]
    env.rpc.call("evm_mine")
    for interval in range(1, k + 1):
        args = encoding.finalize_args(words, interval) if words else encoding.FinalizeArgs()
        data = market.encode("finalize", list(args.segment), args.next_interval, args.next_hash)
        hashes.append(_send(env.rpc, env.clock.sign(market.address, data, TX_GAS)))
        env.rpc.call("evm_mine", [env.params.finalizable_at(interval)])
    events = _mined_events(env.rpc, hashes)
    posted = [e.offer_id for e in events if isinstance(e, OfferPosted)]
    if posted != [o.id for o in offers]:
        raise AssertionError(f"offers got ids {posted}, not {[o.id for o in offers]}")
    finalized = sorted(e.trade for e in events if isinstance(e, TradeFinalized))
    if finalized != sorted(t for t in first if t.interval <= k):
        raise AssertionError(f"finalized {finalized} of {first} up to interval {k}")
    return bool(words)


def _send(rpc: JsonRpc, raw: bytes) -> str:
    return str(rpc.call("eth_sendRawTransaction", ["0x" + raw.hex()]))


def _mined_events(rpc: JsonRpc, hashes: Sequence[str]) -> list[Any]:
    """The OfferPosted and TradeFinalized events of the transactions, in chain order; each
    must have succeeded. (Only those are decoded: SolutionAccepted's words cost more.)"""
    receipts = rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
    wanted = {"0x" + topic_of(t).hex() for t in (OfferPosted, TradeFinalized)}
    events = []
    for h, r in zip(hashes, receipts, strict=True):
        if isinstance(r, RpcError) or r is None or not succeeded(r):
            raise AssertionError(f"transaction {h} failed or was not mined: {r}")
        events += [
            decode_log(log) for log in r["logs"] if log["topics"][:1] and log["topics"][0] in wanted
        ]
    order = [(int(r["blockNumber"], 16), int(r["transactionIndex"], 16)) for r in receipts]
    if order != sorted(order):
        raise AssertionError(f"transactions mined out of the order sent: {order}")
    return [e for e in events if e is not None]


def verdicts(
    env: Env, variant: int, solutions: Sequence[Sequence[int]]
) -> tuple[int, list[Verdict], list[Verdict]]:
    """nextFinalize, then each solution's checkSolution and submitSolution (both eth_call,
    the latter from the solver), all in one JSON-RPC batch."""
    market = env.markets[variant]

    def call(fn: str, *args: Any, sender: str | None = None) -> tuple[str, list[Any]]:
        tx = {"to": market.address, "data": "0x" + market.encode(fn, *args).hex()}
        return "eth_call", [{**tx, "from": sender} if sender else tx, "latest"]

    calls = [call("nextFinalize")]
    calls += [call("checkSolution", list(w)) for w in solutions]
    calls += [call("submitSolution", list(w), sender=env.solver.address) for w in solutions]
    replies = env.rpc.batch(calls)
    out: list[Verdict] = []
    for (_, params), reply in zip(calls[1:], replies[1:], strict=True):
        fn = "checkSolution" if params[0].get("from") is None else "submitSolution"
        out.append(_verdict(market, fn, reply))
    n = len(solutions)
    next_finalize = market.decode_output("nextFinalize", replies[0])[0]
    return int(next_finalize), out[:n], out[n:]


def _verdict(market: Contract, fn: str, reply: Any) -> Verdict:
    if isinstance(reply, RpcError):
        if reply.revert_data is None:
            raise reply
        return decode_revert(reply.revert_data, fn)
    return int(market.decode_output(fn, reply)[0])
