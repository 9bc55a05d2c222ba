"""The contract's encoding of trades and solutions, and the candidate's hash chain.

A trade is one uint256 word (contracts/Market.sol):
    bits 192..207 interval | 160..191 seller | 128..159 buyer | 64..127 energy | 0..63 price
A solution is the list of its words sorted by (interval, seller, buyer): the contract requires
strictly increasing keys, which rules out duplicates cheaply. `encode_trades` always sorts, so
a Python list of trades in any order encodes to what the contract expects; a duplicated
(seller, buyer, interval) stays in the list and the contract reports it as DUPLICATE, as
market.verify does.

The candidate's trades are not stored on chain. The contract keeps the head of a hash chain
over the candidate's interval segments (node = keccak256(segment words ++ next segment's
interval ++ next node)); `finalize_args` computes what finalize() needs from the words the
contract published in SolutionAccepted.

The DSO's grants: `Grant` (on chain, its batched `issue`) and `SignedGrant` (signed off chain
with eth-account's EIP-712 typed data, checked by postSignedOffer).

No web3 here: lean agents use it with their own JSON-RPC client. eth-abi, eth-utils and
eth-account are imported where the DSO's and the clock's code uses them; a prosumer host
never loads them (it decodes its grants with agents.common.abi: bench/hoststart.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from agents.chain.errors import EncodingError
from market.types import Solution, Trade

INTERVAL_BITS, OFFER_ID_BITS, ENERGY_BITS, PRICE_BITS = 16, 32, 64, 64
MAX_INTERVAL = (1 << INTERVAL_BITS) - 1
MAX_OFFER_ID = (1 << OFFER_ID_BITS) - 1
MAX_ENERGY = (1 << ENERGY_BITS) - 1
MAX_PRICE = (1 << PRICE_BITS) - 1
_M16, _M32, _M64 = 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF
ZERO_HASH = bytes(32)


def _check(name: str, value: int, limit: int) -> int:
    if not 0 <= value <= limit:
        raise EncodingError(f"{name} {value} outside the contract's range [0, {limit}]")
    return value


def encode_trade(trade: Trade) -> int:
    """The word of one trade (EncodingError if a field does not fit, e.g. negative)."""
    return (
        _check("interval", trade.interval, MAX_INTERVAL) << 192
        | _check("seller", trade.seller, MAX_OFFER_ID) << 160
        | _check("buyer", trade.buyer, MAX_OFFER_ID) << 128
        | _check("energy", trade.energy, MAX_ENERGY) << 64
        | _check("price", trade.price, MAX_PRICE)
    )


def decode_trade(word: int) -> Trade:
    if not 0 <= word < 1 << 208:
        raise EncodingError(f"not a trade word: {word:#x}")
    return Trade(
        seller=(word >> 160) & _M32,
        buyer=(word >> 128) & _M32,
        interval=(word >> 192) & _M16,
        energy=(word >> 64) & _M64,
        price=word & _M64,
    )


def trade_key(trade: Trade) -> tuple[int, int, int]:
    """The contract's sort key of a trade."""
    return (trade.interval, trade.seller, trade.buyer)


def encode_trades(trades: Iterable[Trade]) -> list[int]:
    """Words of `trades` in the order the contract requires (see the module docstring)."""
    return sorted(encode_trade(t) for t in trades)


def encode_solution(solution: Solution) -> list[int]:
    return encode_trades(solution.trades)


def decode_solution(words: Iterable[int]) -> Solution:
    return Solution(tuple(decode_trade(w) for w in words))


def word_interval(word: int) -> int:
    return (word >> 192) & _M16


def segments(words: Sequence[int]) -> list[tuple[int, list[int]]]:
    """(interval, words) of each run of equal intervals, in order."""
    out: list[tuple[int, list[int]]] = []
    for w in words:
        t = word_interval(w)
        if out and out[-1][0] == t:
            out[-1][1].append(w)
        else:
            out.append((t, [w]))
    return out


def _node(words: Sequence[int], next_interval: int, next_hash: bytes) -> bytes:
    from eth_abi.packed import encode_packed
    from eth_utils import keccak

    packed = encode_packed(["uint256[]", "uint256", "bytes32"], [words, next_interval, next_hash])
    return keccak(packed)


@dataclass(frozen=True)
class Link:
    """One node of the candidate's hash chain: a segment and what follows it."""

    interval: int
    words: tuple[int, ...]
    next_interval: int
    next_hash: bytes
    node: bytes


def chain(words: Sequence[int]) -> list[Link]:
    """The hash chain of a sorted candidate, front to back (as the contract builds it)."""
    links: list[Link] = []
    next_interval, next_hash = 0, ZERO_HASH
    for interval, seg in reversed(segments(words)):
        node = _node(seg, next_interval, next_hash)
        links.append(Link(interval, tuple(seg), next_interval, next_hash, node))
        next_interval, next_hash = interval, node
    links.reverse()
    return links


def candidate_head(words: Sequence[int]) -> tuple[bytes, int]:
    """(head hash, head interval) the contract stores when it accepts `words`."""
    links = chain(words)
    return (links[0].node, links[0].interval) if links else (ZERO_HASH, 0)


@dataclass(frozen=True)
class FinalizeArgs:
    """Arguments of finalize(segment, nextInterval, nextHash)."""

    segment: tuple[int, ...] = ()
    next_interval: int = 0
    next_hash: bytes = ZERO_HASH


def finalize_args(candidate_words: Sequence[int], interval: int) -> FinalizeArgs:
    """What finalize() needs to finalize `interval` given the candidate's words (all of them,
    as published in SolutionAccepted): its segment of `interval` and the next link."""
    for link in chain(candidate_words):
        if link.interval == interval:
            return FinalizeArgs(link.words, link.next_interval, link.next_hash)
    return FinalizeArgs()


def close_entry(offer_id: int, owner: str) -> int:
    """An entry of closeOffers: offer id << 160 | its owner (OfferPosted's poster)."""
    return _check("offer id", offer_id, MAX_OFFER_ID) << 160 | int(owner, 16)


# ------------------------------------------------------------------ the DSO's grants
MONEY = 2  # a grant's `what` for money (0 and 1 are Kind.SELL and Kind.BUY: energy)


@dataclass(frozen=True)
class Grant:
    """One asset of the DSO's batched `issue` call: a permission (`what` = 0 sell, 1 buy,
    as addEnergy) or money (`what` = MONEY, as addFinancialBalance; feeder/start/end 0)."""

    anon: str
    what: int
    amount: int
    feeder: int = 0
    start: int = 0
    end: int = 0


def encode_grants(grants: Iterable[Grant]) -> list[int]:
    """Two words per grant (contracts/Market.sol `issue`):
    anon 0..159 | feeder 160..191 | what 192..199 | start 200..215 | end 216..231, then the
    amount. Malformed values are encoded as they are (the contract refuses them)."""
    words: list[int] = []
    for g in grants:
        head = int(g.anon, 16) | g.feeder << 160 | g.what << 192 | g.start << 200 | g.end << 216
        words += [head, g.amount]
    return words


# ------------------------------------------------- the DSO's signed grants (EIP-712)
GRANT_DOMAIN_NAME, GRANT_DOMAIN_VERSION = "te-testbed market", "1"
GRANT_TYPES = {
    "Grant": [
        {"name": "anon", "type": "address"},
        {"name": "feeder", "type": "uint32"},
        {"name": "sellEnergy", "type": "uint64"},
        {"name": "sellStart", "type": "uint16"},
        {"name": "sellEnd", "type": "uint16"},
        {"name": "buyEnergy", "type": "uint64"},
        {"name": "buyStart", "type": "uint16"},
        {"name": "buyEnd", "type": "uint16"},
        {"name": "money", "type": "uint256"},
    ]
}
NO_PERMISSION = (0, 0, 0)  # (energy, start, end)


@dataclass(frozen=True)
class SignedGrant:
    """What the DSO grants one anonymous address, signed off chain (contracts/
    GrantSignature.sol): its feeder, a SELL and a BUY permission (energy, start, end; energy 0:
    none) and money. `r`, `vs`: the DSO's EIP-712 signature in EIP-2098 compact form (empty
    until signed). The address posts its first offer with it (postSignedOffer) or gives it back
    (returnGrant); the contract refuses it from any other sender and a second time."""

    anon: str
    feeder: int
    sell: tuple[int, int, int] = NO_PERMISSION
    buy: tuple[int, int, int] = NO_PERMISSION
    money: int = 0
    r: bytes = b""
    vs: bytes = b""

    @property
    def word(self) -> int:
        """feeder 0..31 | SELL permission 32..127 | BUY permission 128..223."""
        word = _check("feeder", self.feeder, MAX_OFFER_ID)
        for shift, (energy, start, end) in ((32, self.sell), (128, self.buy)):
            perm = (
                _check("energy", energy, MAX_ENERGY)
                | _check("start", start, MAX_INTERVAL) << 64
                | _check("end", end, MAX_INTERVAL) << 80
            )
            word |= perm << shift
        return word

    def typed_data(self, chain_id: int, market: str) -> dict[str, Any]:
        """The EIP-712 message the DSO signs (eth-account's `full_message` form)."""
        from eth_utils import to_checksum_address

        (se, ss, send), (be, bs, bend) = self.sell, self.buy
        return {
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                **GRANT_TYPES,
            },
            "primaryType": "Grant",
            "domain": {
                "name": GRANT_DOMAIN_NAME,
                "version": GRANT_DOMAIN_VERSION,
                "chainId": chain_id,
                "verifyingContract": to_checksum_address(market),
            },
            "message": {
                "anon": to_checksum_address(self.anon),
                "feeder": self.feeder,
                "sellEnergy": se,
                "sellStart": ss,
                "sellEnd": send,
                "buyEnergy": be,
                "buyStart": bs,
                "buyEnd": bend,
                "money": self.money,
            },
        }

    def signed(self, key: bytes | str, chain_id: int, market: str) -> SignedGrant:
        """This grant with the signature of `key` (the DSO's) for the market `market`."""
        from eth_account import Account  # the DSO's only: prosumer hosts stay lean without it

        signature = Account.sign_typed_data(key, full_message=self.typed_data(chain_id, market))
        v = signature.v - 27 if signature.v >= 27 else signature.v
        vs = signature.s | v << 255
        return replace(self, r=signature.r.to_bytes(32, "big"), vs=vs.to_bytes(32, "big"))

    def hex(self) -> str:
        """Wire form (agents.common.protocol AssetsAdded.grant): the ABI words of
        (anon, grant word, money, r, vs) as hex."""
        from eth_abi import encode as abi_encode
        from eth_utils import to_checksum_address

        return abi_encode(
            ["address", "uint256", "uint256", "bytes32", "bytes32"],
            [to_checksum_address(self.anon), self.word, self.money, self.r, self.vs],
        ).hex()

    @classmethod
    def from_hex(cls, text: str) -> SignedGrant:
        from agents.common.abi import decode as abi_decode

        try:
            anon, word, money, r, vs = abi_decode(
                ["address", "uint256", "uint256", "bytes32", "bytes32"], bytes.fromhex(text)
            )
        except Exception as exc:
            raise EncodingError(f"not a signed grant: {exc}") from exc
        perms = [(word >> s) & MAX_ENERGY for s in (32, 128)]
        starts = [(word >> s) & MAX_INTERVAL for s in (96, 192)]
        ends = [(word >> s) & MAX_INTERVAL for s in (112, 208)]
        return cls(
            str(anon),
            word & MAX_OFFER_ID,
            (perms[0], starts[0], ends[0]),
            (perms[1], starts[1], ends[1]),
            int(money),
            bytes(r),
            bytes(vs),
        )
