"""The agents' ABI codec, Keccak-256, addresses and legacy (EIP-155) transaction signing.

Keccak-256 is pycryptodome's (the backend eth-hash uses here), secp256k1 is coincurve
(eth-keys' fast backend). ABI arguments made of 32-byte words (every call, log and view
of a prosumer host) are encoded and decoded by agents.common.abiwords; anything else by
eth-abi, imported when first needed. A legacy transaction is RLP-encoded here (`rlp`:
byte strings and lists, a dozen lines) and its hash signed by coincurve.

Why not eth-account / eth-abi / eth-keys / rlp for everything: importing them (with
eth-utils, pydantic, parsimonious and importlib.metadata under them) costs a prosumer
host ~0.1 CPU-s, more than a third of what it spends from exec to its first tick
answered; with 255 hosts starting on a few cores that is the bring-up's time
(bench/hoststart.py). And `Account.sign_transaction` signs about five times fewer
transactions per CPU second (it validates and reformats the transaction dict, and
eth-keys derives the public key again for every signature); the prosumer hosts at ten
times the paper's scale sign about 480,000 transactions a day (bench/encoding.py).
The libraries stay the reference: unit tests check bytes and values against eth-account,
eth-abi, eth-utils, eth-keys and rlp (tests/unit/test_agents_abi*.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import coincurve
from Crypto.Hash import keccak as _keccak

from agents.common.abiwords import decode_words, encode_words
from agents.common.errors import AgentError

# the order of secp256k1's group (eth-keys' SECPK1_N): a private key is in 1..N-1
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class AbiError(AgentError):
    """A value or type the codec cannot handle."""


def keccak256(data: bytes) -> bytes:
    return _keccak.new(data=data, digest_bits=256).digest()


def selector(signature: str) -> bytes:
    """The 4-byte selector of a function signature, e.g. "transfer(address,uint256)"."""
    return keccak256(signature.encode())[:4]


@lru_cache(maxsize=4096)
def _checksum_lower(lower: str) -> str:
    digest = keccak256(lower.encode()).hex()
    upper = (c.upper() if d in "89abcdef" else c for c, d in zip(lower, digest, strict=False))
    return "0x" + "".join(upper)


def _canonical(address: str) -> bytes:
    raw = address.removeprefix("0x").removeprefix("0X")
    try:
        out = bytes.fromhex(raw)
    except ValueError:
        out = b""
    if len(out) != 20 or len(raw) != 40:
        raise AbiError(f"not an address: {address!r}")
    return out


def encode(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """ABI-encode `values` as the tuple `types` (AbiError if a value does not fit)."""
    fast = encode_words(types, values, _checksum_lower)
    if fast is not None:
        return fast
    from eth_abi import encode as eth_abi_encode
    from eth_abi.exceptions import EncodingError

    try:
        return eth_abi_encode(list(types), list(values))
    except (EncodingError, TypeError, ValueError) as exc:
        raise AbiError(f"cannot encode as ({','.join(types)}): {exc}") from exc


def decode(types: Sequence[str], data: bytes) -> tuple[Any, ...]:
    """Decode ABI `data` as the tuple `types` (addresses in lower case, arrays as tuples)."""
    fast = decode_words(types, bytes(data))
    if fast is not None:
        return fast
    from eth_abi import decode as eth_abi_decode
    from eth_abi.exceptions import DecodingError

    try:
        return tuple(eth_abi_decode(list(types), bytes(data)))
    except (DecodingError, TypeError, ValueError) as exc:
        raise AbiError(f"cannot decode {len(data)} bytes as ({','.join(types)}): {exc}") from exc


def rlp_encode(item: bytes | int | Sequence[Any]) -> bytes:
    """RLP (Ethereum yellow paper, appendix B) of a byte string, a non-negative integer
    (big-endian, no leading zeros) or a list of items."""
    if isinstance(item, int):
        if item < 0:
            raise AbiError(f"RLP has no negative integers: {item}")
        item = item.to_bytes((item.bit_length() + 7) // 8, "big")
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _rlp_length(len(item), 0x80) + item
    payload = b"".join(rlp_encode(x) for x in item)
    return _rlp_length(len(payload), 0xC0) + payload


def _rlp_length(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes([offset + length])
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(size)]) + size


class Key:
    """A secp256k1 private key: its address and EIP-155 legacy signing."""

    def __init__(self, secret: bytes | str) -> None:
        raw = bytes.fromhex(secret.removeprefix("0x")) if isinstance(secret, str) else secret
        if len(raw) != 32 or not 0 < int.from_bytes(raw, "big") < SECP256K1_N:
            raise AbiError("invalid private key: 32 bytes, 0 < key < the secp256k1 order")
        self._key = coincurve.PrivateKey(raw)
        public = self._key.public_key.format(compressed=False)[1:]
        self.address: str = _checksum_lower(keccak256(public)[12:].hex())

    def sign_transaction(
        self,
        *,
        nonce: int,
        gas_price: int,
        gas: int,
        to: str,
        value: int,
        data: bytes,
        chain_id: int,
    ) -> bytes:
        """Raw signed legacy transaction (EIP-155)."""
        fields = [nonce, gas_price, gas, _canonical(to), value, data]
        digest = keccak256(rlp_encode([*fields, chain_id, 0, 0]))
        sig = self._key.sign_recoverable(digest, hasher=None)
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")
        return rlp_encode([*fields, sig[64] + 35 + 2 * chain_id, r, s])


def decode_event(
    types: Sequence[str], indexed: Sequence[bool], topics: Sequence[bytes], data: bytes
) -> list[Any]:
    """The values of an event's parameters, in ABI order, from a log's topics after the
    first (the indexed ones, each a 32-byte word) and its data (the others)."""
    plain = [t for t, ix in zip(types, indexed, strict=True) if not ix]
    values = iter(decode(plain, data))
    words = iter(topics)
    return [
        decode([t], next(words))[0] if ix else next(values)
        for t, ix in zip(types, indexed, strict=True)
    ]
