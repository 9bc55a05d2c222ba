"""The market contract for the lean agents (dso, prosumer, clock), over `agents.common.rpc`.

No web3: a prosumer host must stay small. One place knows the calls these agents
make (the ABI is the artefact agents/chain deploys). Everything is signed locally
and sent in JSON-RPC batches, receipts are awaited in batches: the DSO issues
hundreds of assets per interval. (The solver and recorder use agents.chain's
web3 wrappers.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.chain.encoding import Grant, SignedGrant, close_entry, encode_grants, finalize_args
from agents.chain.errors import decode_revert
from agents.common import metrics
from agents.common.config import AgentConfig
from agents.common.errors import AgentError
from agents.common.rpc import Contract, JsonRpc, RpcError, Signer, send_and_wait, succeeded

log = logging.getLogger("agents.chain")

# contracts/compile.py writes the artefact to contracts/build/ and a copy into
# agents/chain/ (package data for installs without the repository).
ARTEFACTS = (
    Path(__file__).resolve().parents[1] / "chain" / "Market.json",
    Path(__file__).resolve().parents[2] / "contracts" / "build" / "Market.json",
)

# Gas limits: the chain runs at gas price 0, so a generous fixed limit costs
# nothing and saves an eth_estimateGas round trip per transaction.
GAS = {
    "addEnergy": 300_000,
    "addFinancialBalance": 200_000,
    "postOffer": 400_000,
    "postSignedOffer": 400_000,
    "returnGrant": 300_000,
    "closeOffer": 200_000,
    "issue": 15_000_000,  # the DSO's batch: ISSUE_GAS_PER_GRANT each when a Call says so
    "closeOffers": 15_000_000,
    "depositEnergy": 200_000,
    "depositFinancial": 200_000,
    "finalize": 25_000_000,
}


def load_abi(path: Path | None = None) -> list[dict[str, Any]]:
    if path is None:
        path = next((p for p in ARTEFACTS if p.exists()), ARTEFACTS[-1])
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AgentError(f"cannot read contract artefact {path}: {exc}") from exc
    abi = data["abi"] if isinstance(data, dict) else data
    if isinstance(abi, str):
        abi = json.loads(abi)
    return list(abi)


# An issue() grant costs up to ~27k gas (a fresh account or balance slot, its event, its
# calldata); a closeOffers() offer up to ~30k (closing, refund, everything deposited).
ISSUE_GAS_PER_GRANT = 40_000
CLOSE_GAS_PER_OFFER = 45_000
CLOSE_CHUNK = 250  # offers per closeOffers transaction


@dataclass(frozen=True)
class Call:
    """One contract call to sign: function name (for metrics), calldata and, for batched
    calls, a gas limit sized to the batch (else GAS[function])."""

    function: str
    data: bytes
    gas: int | None = None


@dataclass(frozen=True)
class AccountState:
    """What an anonymous address holds on chain (unused permissions and money)."""

    linked: bool
    feeder: int
    sell_energy: int
    buy_energy: int
    balance: int


@dataclass(frozen=True)
class FinalizeResult:
    interval: int
    trades: int
    energy_wh: int
    gas_used: int
    block_time: int


class MarketClient:
    """Typed calls of the market contract; `signer` signs what this agent sends."""

    def __init__(
        self, rpc: JsonRpc, contract: Contract, chain_id: int, main: Signer | None = None
    ) -> None:
        self.rpc = rpc
        self.contract = contract
        self.chain_id = chain_id
        self.address = contract.address
        self.main = main  # the agent's own account (DSO, clock), if it has one
        self.candidate_words: list[int] = []
        # last interval -> (offer id, poster) of the offers not closed by us
        self.ending: dict[int, list[tuple[int, str]]] = {}
        self._scanned = 0

    @classmethod
    def connect(cls, config: AgentConfig, private_key: str | None = None) -> MarketClient:
        """Client for the config's chain and contract; checks the contract is deployed."""
        rpc = JsonRpc(config.rpc_url)
        main = Signer(private_key, config.chain_id) if private_key else None
        client = cls(rpc, Contract(config.contract_address, load_abi()), config.chain_id, main)
        code = rpc.call("eth_getCode", [config.contract_address, "latest"])
        if code in ("0x", "", None):
            raise AgentError(f"no contract at {config.contract_address} on {config.rpc_url}")
        if main is not None:
            main.sync_nonce(rpc)
        return client

    def close(self) -> None:
        self.rpc.close()

    def load_codec(self) -> None:
        """Import the ABI codec and signing libraries and build the contract's tables now
        rather than at the first call that needs them (agents.common.rpc imports them
        lazily)."""
        import agents.common.abi  # noqa: F401 - the import is the point

        _ = self.contract.functions, self.contract.events

    # --- calldata ----------------------------------------------------------------
    def add_energy(
        self, anon: str, feeder: int, kind: int, energy: int, start: int, end: int
    ) -> Call:
        data = self.contract.encode("addEnergy", anon, feeder, kind, energy, start, end)
        return Call("addEnergy", data)

    def add_financial(self, anon: str, amount: int) -> Call:
        return Call(
            "addFinancialBalance", self.contract.encode("addFinancialBalance", anon, amount)
        )

    def post_offer(self, kind: int, energy: int, start: int, end: int, price: int) -> Call:
        return Call("postOffer", self.contract.encode("postOffer", kind, energy, start, end, price))

    def post_signed_offer(
        self, kind: int, energy: int, start: int, end: int, price: int, grant: SignedGrant
    ) -> Call:
        """postOffer from a fresh address with the grant the DSO signed for it."""
        args = (grant.word, grant.money, grant.r, grant.vs)
        data = self.contract.encode("postSignedOffer", kind, energy, start, end, price, *args)
        return Call("postSignedOffer", data)

    def return_grant(self, grant: SignedGrant) -> Call:
        """Give an unused signed grant back (its assets deposited to the DSO)."""
        data = self.contract.encode("returnGrant", grant.word, grant.money, grant.r, grant.vs)
        return Call("returnGrant", data)

    def close_offer(self, offer_id: int) -> Call:
        return Call("closeOffer", self.contract.encode("closeOffer", offer_id))

    def issue(self, grants: Sequence[Grant]) -> Call:
        """The DSO's batched addEnergy/addFinancialBalance (agents.chain.encoding.Grant)."""
        data = self.contract.encode("issue", encode_grants(grants))
        return Call("issue", data, 100_000 + ISSUE_GAS_PER_GRANT * len(grants))

    def close_offers(self, offers: Sequence[tuple[int, str]]) -> Call:
        """closeOffer of ended offers (id, owner) by anyone; owners left with none open
        deposit all."""
        data = self.contract.encode("closeOffers", [close_entry(i, o) for i, o in offers])
        return Call("closeOffers", data, 100_000 + CLOSE_GAS_PER_OFFER * len(offers))

    def deposit_energy(self, kind: int, energy: int) -> Call:
        return Call("depositEnergy", self.contract.encode("depositEnergy", kind, energy))

    def deposit_financial(self, amount: int) -> Call:
        return Call("depositFinancial", self.contract.encode("depositFinancial", amount))

    # --- sending -------------------------------------------------------------------
    def transact(self, batch: Sequence[tuple[Signer, Call]]) -> list[dict[str, Any]]:
        """Sign every call with its signer (nonces advance locally), send them in one
        batch, wait for all receipts; record transactions and gas per function.
        Reverted transactions are returned with status 0 (callers decide)."""
        raws = [s.sign(self.address, c.data, c.gas or GAS[c.function]) for s, c in batch]
        try:
            receipts = send_and_wait(self.rpc, raws)
        except Exception:
            # some may have been refused or may still land: take nonces from the node
            for signer in {id(s): s for s, _ in batch}.values():
                try:
                    signer.sync_nonce(self.rpc)
                except AgentError as exc:
                    log.warning("cannot resynchronise the nonce of %s: %s", signer.address, exc)
            raise
        for (_, call), receipt in zip(batch, receipts, strict=True):
            if succeeded(receipt):
                metrics.record_transaction(call.function, receipt)
        return receipts

    def revert_reason(self, signer: Signer, call: Call, block: str) -> str:
        """Why `call` reverted in `block`: the same call replayed there (eth_call) and
        its revert data decoded, e.g. "IntervalNotEnded(interval=5, endsAt=...)"."""
        tx = {"from": signer.address, "to": self.address, "data": "0x" + call.data.hex()}
        try:
            self.rpc.call("eth_call", [tx, block])
        except RpcError as exc:
            revert = decode_revert(exc.revert_data, call.function)
            return f"{revert.name}({', '.join(f'{k}={v}' for k, v in revert.params.items())})"
        except AgentError as exc:
            return f"an unknown reason (replaying it failed: {exc})"
        return "an unknown reason (it passes when replayed)"

    def events(self, receipt: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
        out = []
        for log in receipt.get("logs", ()):
            if str(log.get("address", "")).lower() != self.address.lower():
                continue
            decoded = self.contract.decode_log(log)
            if decoded is not None and decoded[0] == name:
                out.append(decoded[1])
        return out

    def get_logs(
        self, names: Sequence[str], from_block: int, to_block: int
    ) -> list[tuple[str, dict[str, Any]]]:
        topics = [["0x" + self.contract.event_topics[n].hex() for n in names]]
        logs = self.rpc.call(
            "eth_getLogs",
            [
                {
                    "address": self.address,
                    "fromBlock": hex(from_block),
                    "toBlock": hex(to_block),
                    "topics": topics,
                }
            ],
        )
        out = []
        for log in logs:
            decoded = self.contract.decode_log(log)
            if decoded is not None:
                out.append(decoded)
        return out

    def block_number(self) -> int:
        return int(self.rpc.call("eth_blockNumber"), 16)

    def view(self, fn: str, *args: Any) -> tuple[Any, ...]:
        data = self.contract.encode(fn, *args)
        out = self.rpc.call("eth_call", [{"to": self.address, "data": "0x" + data.hex()}, "latest"])
        return self.contract.decode_output(fn, out)

    def closed(self, offer_ids: Sequence[int]) -> list[bool]:
        """Whether each offer is closed (offer(id) of many in one JSON-RPC batch)."""
        calls = [
            (
                "eth_call",
                [
                    {"to": self.address, "data": "0x" + self.contract.encode("offer", i).hex()},
                    "latest",
                ],
            )
            for i in offer_ids
        ]
        out = []
        for i, result in zip(offer_ids, self.rpc.batch(calls), strict=True):
            if isinstance(result, RpcError):
                raise AgentError(f"offer({i}): {result}")
            out.append(bool(self.contract.decode_output("offer", result)[-1]))
        return out

    def accounts(self, addresses: Sequence[str]) -> list[AccountState]:
        """account(anon) of many addresses in one JSON-RPC batch."""
        calls = [
            (
                "eth_call",
                [
                    {"to": self.address, "data": "0x" + self.contract.encode("account", a).hex()},
                    "latest",
                ],
            )
            for a in addresses
        ]
        out = []
        for a, result in zip(addresses, self.rpc.batch(calls), strict=True):
            if isinstance(result, RpcError):
                raise AgentError(f"account({a}): {result}")
            linked, feeder, sell, _, _, buy, _, _, balance = self.contract.decode_output(
                "account", result
            )
            out.append(AccountState(bool(linked), int(feeder), int(sell), int(buy), int(balance)))
        return out

    def refresh_candidate(self) -> None:
        """Follow SolutionAccepted events (keep the words of the latest candidate) and
        OfferPosted (the offers to close once their last interval is finalized)."""
        head = self.block_number()
        if head >= self._scanned:
            for name, args in self.get_logs(
                ["SolutionAccepted", "OfferPosted"], self._scanned, head
            ):
                if name == "SolutionAccepted":
                    self.candidate_words = [int(w) for w in args["trades"]]
                else:
                    entry = (int(args["offerId"]), str(args["poster"]))
                    self.ending.setdefault(int(args["end"]), []).append(entry)
            self._scanned = head + 1

    def close_ended(self, interval: int) -> int:
        """closeOffers of every offer seen posted whose last interval is <= `interval`
        (finalized), CLOSE_CHUNK per transaction instead of one transaction per offer;
        owners left with no open offer deposit everything back. Returns how many were
        closed. Never raises: an owner can still close its own offers."""
        ends = [end for end in self.ending if end <= interval]
        ids = sorted(e for end in ends for e in self.ending.pop(end))
        if not ids or self.main is None:
            return 0
        chunks = [ids[i : i + CLOSE_CHUNK] for i in range(0, len(ids), CLOSE_CHUNK)]
        try:
            receipts = self.transact([(self.main, self.close_offers(c)) for c in chunks])
        except Exception as exc:  # finalize succeeded; closing here only saves transactions
            log.warning("closeOffers after interval %d failed: %s", interval, exc)
            return 0
        closed = 0
        for chunk, receipt in zip(chunks, receipts, strict=True):
            if succeeded(receipt):
                closed += len(chunk)
            else:
                log.warning("closeOffers of %d offers reverted", len(chunk))
        return closed

    def finalize(self, timestamp: int | None) -> FinalizeResult:
        """finalize() the next delivery interval from the main signer, passing the
        candidate's segment of that interval and the next link of its hash chain.
        With `timestamp`, first set the next block's time (lockstep's virtual time)."""
        if self.main is None:
            raise AgentError("finalize needs a private key")
        self.refresh_candidate()
        (interval,) = self.view("nextFinalize")
        args = finalize_args(self.candidate_words, int(interval))
        if timestamp is not None:
            self.rpc.call("evm_setNextBlockTimestamp", [timestamp])
        call = Call(
            "finalize",
            self.contract.encode(
                "finalize", list(args.segment), args.next_interval, args.next_hash
            ),
        )
        gas = 0
        while True:  # a segment above the contract's settleChunk takes several calls
            (receipt,) = self.transact([(self.main, call)])
            if not succeeded(receipt):
                why = self.revert_reason(self.main, call, receipt["blockNumber"])
                raise AgentError(
                    f"finalize() of interval {interval} reverted with {why} "
                    f"({receipt['transactionHash']})"
                )
            gas += int(receipt["gasUsed"], 16)
            finalized = self.events(receipt, "IntervalFinalized")
            if finalized:
                break
        (done,) = finalized
        self.close_ended(int(interval))
        block = self.rpc.call("eth_getBlockByNumber", [receipt["blockNumber"], False])
        return FinalizeResult(
            interval=int(interval),
            trades=int(done.get("tradeCount", 0)),
            energy_wh=int(done.get("energy", 0)),
            gas_used=gas,
            block_time=int(block["timestamp"], 16),
        )
