"""Deploying the market contract and typed wrappers for every function and event.

    market = deploy_market(w3, Sender(w3, dso_key), feeders, params)
    market.add_energy(dso, anon.address, 1, Kind.SELL, energy=500, start=3, end=6).wait()
    market.post_offer(anon, Kind.SELL, energy=500, start=3, end=6, price=100).wait()
    market.submit_solution(solver, solution).wait()
    market.finalize(clock).wait()      # segment + next link computed from SolutionAccepted

Transactions return `PendingTx` (call `.wait()`); views return plain values or dataclasses.
A revert raises `ContractRevert` naming the contract's custom error (`.violation` maps
solution errors to market.verify kinds).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ABIFunction
from eth_utils import function_abi_to_4byte_selector, get_abi_input_types, get_abi_output_types
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.types import BlockIdentifier

from agents.chain import encoding
from agents.chain.artifact import abi, bytecode
from agents.chain.errors import ChainError
from agents.chain.events import ChainEvent, OfferPosted, SolutionAccepted, decode_log, topic_of
from agents.chain.node import latest_timestamp
from agents.chain.tx import RECEIPT_TIMEOUT, PendingTx, Sender, revert_from_exception
from agents.common.market import MarketParams
from market.types import Feeder, Kind, Solution, Trade


def constructor_args(feeders: Sequence[Feeder], market: MarketParams) -> list[Any]:
    """Market.sol's constructor arguments: the feeders, the market's chain timing and
    its liveness bounds (minimum offer energy, open offers per address, trades per
    finalize call) and the improvement a solution needs over the candidate."""
    return [
        [f.id for f in feeders],
        [f.c_ext for f in feeders],
        [f.c_int for f in feeders],
        market.interval_seconds,
        market.epoch,
        market.first_clock_interval,
        market.t_clear,
        market.last_interval,
        market.min_offer_energy_wh,
        market.max_open_offers,
        market.settle_chunk,
        market.min_improvement_wh,
    ]


@dataclass(frozen=True)
class CandidateState:
    candidate_id: int  # 0: no solution accepted yet
    remaining_objective: int  # Wh of its trades in intervals not finalized yet
    head_interval: int  # first interval it still trades (0: none)
    head_hash: bytes
    accepted_block: int


@dataclass(frozen=True)
class OfferState:
    offer_id: int
    feeder: int
    kind: Kind
    energy: int
    remaining: int  # energy minus what finalized trades used
    start: int
    end: int
    price: int
    owner: str
    closed: bool


@dataclass(frozen=True)
class Permission:
    energy: int  # Wh not yet reserved by offers
    start: int
    end: int


@dataclass(frozen=True)
class AccountState:
    linked: bool
    feeder: int
    sell: Permission
    buy: Permission
    balance: int  # free money units (not reserved by buy offers)


def _words(solution: Solution | Iterable[Trade] | Sequence[int]) -> list[int]:
    """Words to send: trades are encoded (sorted); ints are taken as already encoded words
    and sent as they are (so tests can send malformed encodings)."""
    if isinstance(solution, Solution):
        return encoding.encode_solution(solution)
    items: list[Any] = list(solution)
    if all(isinstance(x, int) for x in items):
        return items
    return encoding.encode_trades(items)


class MarketContract:
    """Typed access to a deployed market contract."""

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.address: str = Web3.to_checksum_address(address)
        self.contract: Contract = w3.eth.contract(address=self.address, abi=abi())
        self._candidates: dict[int, tuple[int, ...]] = {}

    # ------------------------------------------------------------ plumbing
    # Calls are encoded with eth_abi directly: web3's contract layer is ~15x slower, which
    # shows with a solution of a thousand words.
    def encode(self, fn: str, *args: Any) -> bytes:
        """Calldata of `fn(*args)`."""
        f = _functions()[fn]
        return f.selector + abi_encode(list(f.inputs), list(args))

    def call(
        self, fn: str, *args: Any, sender: str | None = None, block: BlockIdentifier = "latest"
    ) -> Any:
        """eth_call of `fn`: its single output, or the tuple of its outputs."""
        tx: Any = {"to": self.address, "data": self.encode(fn, *args)}
        if sender is not None:
            tx["from"] = sender
        try:
            raw = self.w3.eth.call(tx, block_identifier=block)
        except ContractLogicError as exc:
            raise revert_from_exception(exc, fn) from None
        out = abi_decode(list(_functions()[fn].outputs), bytes(raw))
        return out[0] if len(out) == 1 else out

    def _send(self, sender: Sender, fn: str, *args: Any, gas: int | None = None) -> PendingTx:
        return sender.send(self.address, self.encode(fn, *args), function=fn, gas=gas)

    # ------------------------------------------------------------- DSO
    def add_energy(
        self,
        dso: Sender,
        anon: str,
        feeder: int,
        kind: Kind,
        energy: int,
        start: int,
        end: int,
        *,
        gas: int | None = None,
    ) -> PendingTx:
        return self._send(dso, "addEnergy", anon, feeder, int(kind), energy, start, end, gas=gas)

    def add_financial_balance(
        self, dso: Sender, anon: str, amount: int, *, gas: int | None = None
    ) -> PendingTx:
        return self._send(dso, "addFinancialBalance", anon, amount, gas=gas)

    def issue(
        self, dso: Sender, grants: Iterable[encoding.Grant], *, gas: int | None = None
    ) -> PendingTx:
        """Many addEnergy/addFinancialBalance in one transaction (encoding.Grant)."""
        return self._send(dso, "issue", encoding.encode_grants(grants), gas=gas)

    # ------------------------------------------------------- prosumers
    def post_offer(
        self,
        anon: Sender,
        kind: Kind,
        energy: int,
        start: int,
        end: int,
        price: int,
        *,
        gas: int | None = None,
    ) -> PendingTx:
        return self._send(anon, "postOffer", int(kind), energy, start, end, price, gas=gas)

    def post_signed_offer(
        self,
        anon: Sender,
        kind: Kind,
        energy: int,
        start: int,
        end: int,
        price: int,
        grant: encoding.SignedGrant,
        *,
        gas: int | None = None,
    ) -> PendingTx:
        """postOffer from a fresh address with the grant the DSO signed for it."""
        args = (grant.word, grant.money, grant.r, grant.vs)
        return self._send(
            anon, "postSignedOffer", int(kind), energy, start, end, price, *args, gas=gas
        )

    def return_grant(
        self, anon: Sender, grant: encoding.SignedGrant, *, gas: int | None = None
    ) -> PendingTx:
        """Give an unused signed grant back to the DSO (EnergyDeposited, FinancialDeposited)."""
        args = (grant.word, grant.money, grant.r, grant.vs)
        return self._send(anon, "returnGrant", *args, gas=gas)

    def sign_grant(
        self, dso: Sender | LocalAccount, grant: encoding.SignedGrant
    ) -> encoding.SignedGrant:
        """`grant` signed by `dso` for this market."""
        account = dso.account if isinstance(dso, Sender) else dso
        return grant.signed(account.key, int(self.w3.eth.chain_id), self.address)

    def close_offer(self, anon: Sender, offer_id: int, *, gas: int | None = None) -> PendingTx:
        return self._send(anon, "closeOffer", offer_id, gas=gas)

    def close_offers(
        self, sender: Sender, offer_ids: Sequence[int], *, gas: int | None = None
    ) -> PendingTx:
        """closeOffer of ended offers by anyone; owners left with no open offer deposit all.
        Each offer goes with its owner (its OfferPosted poster)."""
        owners = self.posters(offer_ids)
        entries = [encoding.close_entry(i, owners.get(i, "0x" + "00" * 20)) for i in offer_ids]
        return self._send(sender, "closeOffers", entries, gas=gas)

    def posters(self, offer_ids: Sequence[int]) -> dict[int, str]:
        """Offer id -> the address that posted it (OfferPosted events)."""
        wanted = sorted({i for i in offer_ids if 0 < i <= encoding.MAX_OFFER_ID})
        out: dict[int, str] = {}
        for i in range(0, len(wanted), 500):
            topics = [i.to_bytes(32, "big") for i in wanted[i : i + 500]]
            for e in self.events(0, "latest", [OfferPosted], topics):
                if isinstance(e, OfferPosted):
                    out[e.offer_id] = e.poster
        return out

    def deposit_energy(
        self, anon: Sender, kind: Kind, energy: int, *, gas: int | None = None
    ) -> PendingTx:
        return self._send(anon, "depositEnergy", int(kind), energy, gas=gas)

    def deposit_financial(self, anon: Sender, amount: int, *, gas: int | None = None) -> PendingTx:
        return self._send(anon, "depositFinancial", amount, gas=gas)

    # ------------------------------------------------------- solutions
    def check_solution(
        self,
        solution: Solution | Iterable[Trade] | Sequence[int],
        block: BlockIdentifier = "latest",
    ) -> int:
        """Objective of a feasible solution in the current state; ContractRevert otherwise."""
        return int(self.call("checkSolution", _words(solution), block=block))

    def submit_solution(
        self,
        solver: Sender,
        solution: Solution | Iterable[Trade] | Sequence[int],
        *,
        gas: int | None = None,
    ) -> PendingTx:
        return self._send(solver, "submitSolution", _words(solution), gas=gas)

    # ---------------------------------------------------- finalization
    def finalize_args(self) -> encoding.FinalizeArgs:
        """finalize()'s arguments for the next interval, from the current candidate."""
        state = self.candidate()
        if state.head_interval == 0 or state.head_interval != self.next_finalize():
            return encoding.FinalizeArgs()
        return encoding.finalize_args(self.candidate_words(state), state.head_interval)

    def finalize(
        self,
        sender: Sender,
        args: encoding.FinalizeArgs | None = None,
        *,
        gas: int | None = None,
    ) -> PendingTx:
        """Finalize the next delivery interval (arguments computed unless given)."""
        a = args if args is not None else self.finalize_args()
        return self._send(
            sender, "finalize", list(a.segment), a.next_interval, a.next_hash, gas=gas
        )

    def candidate_words(self, state: CandidateState | None = None) -> tuple[int, ...]:
        """All words of the current candidate, from its SolutionAccepted event. Cached, and
        the cache is checked against the stored head (snapshots can revert the chain)."""
        state = state or self.candidate()
        if state.candidate_id == 0:
            return ()
        cached = self._candidates.get(state.candidate_id)
        if cached is not None and _holds_head(cached, state):
            return cached
        cid = state.candidate_id.to_bytes(32, "big")
        block = state.accepted_block
        for event in self.events(block, block, [SolutionAccepted], [cid]):
            if isinstance(event, SolutionAccepted) and _holds_head(event.trades, state):
                self._candidates = {state.candidate_id: event.trades}
                return event.trades
        raise ChainError(f"SolutionAccepted of candidate {state.candidate_id} not found")

    # ------------------------------------------------------------ views
    def next_finalize(self) -> int:
        return int(self.call("nextFinalize"))

    def current_interval(self) -> int:
        return int(self.call("currentInterval"))

    def finalizable_at(self) -> int:
        return int(self.call("finalizableAt"))

    def first_delivery_interval(self) -> int:
        return int(self.call("firstDeliveryInterval"))

    def candidate(self, block: BlockIdentifier = "latest") -> CandidateState:
        cid, remaining, head, head_hash, accepted = self.call("candidate", block=block)
        return CandidateState(int(cid), int(remaining), int(head), bytes(head_hash), int(accepted))

    def offer_count(self) -> int:
        return int(self.call("offerCount"))

    def offer(self, offer_id: int) -> OfferState:
        """The offer's state (the view) with its energy and owner (its OfferPosted event)."""
        f, kind, remaining, start, end, price, closed = self.call("offer", offer_id)
        cid = offer_id.to_bytes(32, "big")
        (posted,) = [e for e in self.events(0, "latest", [OfferPosted], [cid])]
        assert isinstance(posted, OfferPosted)
        owner = Web3.to_checksum_address(posted.poster)
        return OfferState(
            offer_id, f, Kind(kind), posted.energy, remaining, start, end, price, owner, closed
        )

    def account(self, anon: str) -> AccountState:
        linked, f, se, ss, send, be, bs, bend, balance = self.call("account", anon)
        return AccountState(
            linked, f, Permission(se, ss, send), Permission(be, bs, bend), int(balance)
        )

    def balance_of(self, anon: str) -> int:
        return int(self.call("balanceOf", anon))

    def feeders(self) -> tuple[Feeder, ...]:
        ids, c_ext, c_int = self.call("feeders")
        return tuple(Feeder(i, e, c) for i, e, c in zip(ids, c_ext, c_int, strict=True))

    def dso(self) -> str:
        return Web3.to_checksum_address(self.call("dso"))

    def params(self) -> MarketParams:
        """The market timing the contract holds (the fields it does not store, such as
        the prediction window, keep their defaults)."""
        start, t_clear = int(self.call("startInterval")), int(self.call("tClear"))
        return MarketParams(
            first_interval=start + t_clear,
            last_interval=int(self.call("lastInterval")),
            t_clear=t_clear,
            interval_seconds=int(self.call("intervalSeconds")),
            epoch=int(self.call("epoch")),
            min_offer_energy_wh=int(self.call("minOfferEnergy")),
            max_open_offers=int(self.call("maxOpenOffers")),
            settle_chunk=int(self.call("settleChunk")),
            min_improvement_wh=int(self.call("minImprovement")),
        )

    # ----------------------------------------------------------- events
    def events(
        self,
        from_block: int,
        to_block: BlockIdentifier = "latest",
        types: Sequence[type[ChainEvent]] | None = None,
        topic1: Sequence[bytes] | None = None,
    ) -> list[ChainEvent]:
        """Typed events in chain order (optionally only some types / first indexed topic)."""
        topics: list[Any] = [["0x" + topic_of(t).hex() for t in types]] if types else [None]
        if topic1:
            topics.append(["0x" + t.hex() for t in topic1])
        query: Any = {
            "address": self.address,
            "fromBlock": from_block,
            "toBlock": to_block,
            "topics": topics,
        }
        out = [decode_log(log) for log in self.w3.eth.get_logs(query)]
        return [e for e in out if e is not None]


@dataclass(frozen=True)
class _Function:
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@cache
def _functions() -> dict[str, _Function]:
    out = {}
    for item in abi():
        if item["type"] == "function":
            fn = cast(ABIFunction, item)
            out[item["name"]] = _Function(
                function_abi_to_4byte_selector(fn),
                tuple(get_abi_input_types(fn)),
                tuple(get_abi_output_types(fn)),
            )
    return out


def _holds_head(words: Sequence[int], state: CandidateState) -> bool:
    """Whether the candidate `words` still has `state`'s head in its hash chain."""
    if state.head_interval == 0:
        return True
    return any(link.node == state.head_hash for link in encoding.chain(words))


def deploy_market(
    w3: Web3,
    dso: Sender | LocalAccount,
    feeders: Sequence[Feeder],
    market: MarketParams,
    *,
    timeout: float = RECEIPT_TIMEOUT,
) -> MarketContract:
    """Deploy with `dso` as the DSO and wait for it; returns the wrapper."""
    return deploy_with_args(w3, dso, constructor_args(feeders, market), timeout=timeout)


def deploy_with_args(
    w3: Web3, dso: Sender | LocalAccount, args: list[Any], *, timeout: float = RECEIPT_TIMEOUT
) -> MarketContract:
    """Deploy with raw constructor arguments (tests send invalid ones on purpose)."""
    if not isinstance(dso, Sender):
        dso = Sender(w3, dso)
    factory = w3.eth.contract(abi=abi(), bytecode=bytecode())
    data = factory.constructor(*args).data_in_transaction
    receipt = dso.send(None, data, function="constructor").wait(timeout)
    address = receipt["contractAddress"]
    if address is None:
        raise ChainError("deployment receipt has no contract address")
    return MarketContract(w3, address)


def deploy_for_run(
    w3: Web3, dso_key: str, feeders: Sequence[Feeder], market: MarketParams, epoch: int | None
) -> tuple[MarketContract, MarketParams]:
    """A run's deploy step, the same for `testbed run` (orchestrator/chainsetup.py) and
    the compose project's deploy service: the market contract from the DSO's key, with
    clock interval first_interval - t_clear starting at `epoch` (None, lockstep: the
    chain's current time). Returns the contract and the market with its epoch."""
    start = latest_timestamp(w3) if epoch is None else epoch
    timed = market.at_epoch(start)
    return deploy_market(w3, Sender(w3, Account.from_key(dso_key)), feeders, timed), timed
