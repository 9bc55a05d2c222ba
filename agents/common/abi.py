"""The agents' ABI codec, Keccak-256 and legacy (EIP-155) transaction signing, on the
Ethereum libraries: eth-abi (codec), eth-utils (Keccak-256, selectors, checksums),
eth-keys (keys and addresses), rlp (transaction encoding) and coincurve (secp256k1).

Signing does not go through eth-account's `Account.sign_transaction`: with the same
libraries underneath it signs about five times fewer transactions per CPU second than
this module (it validates and reformats the transaction dict, and eth-keys derives
the public key again for every signature), and the prosumer hosts at ten times the
paper's scale sign about 480,000 transactions a day on a machine they share with the
node (bench/encoding.py measures both). Here the transaction's fields are RLP-encoded
by `rlp` and the hash signed by coincurve, eth-keys' fast backend; unit tests check
the bytes against eth-account's. Importing these libraries costs a prosumer host
about 15 MB RSS (eth-utils loads pydantic), well under the 60 MB goal.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import coincurve
import rlp
from eth_abi import decode as _decode
from eth_abi import encode as _encode
from eth_abi.exceptions import DecodingError
from eth_abi.exceptions import EncodingError as _EncodingError
from eth_keys import keys
from eth_keys.constants import SECPK1_N
from eth_keys.validation import validate_private_key_bytes
from eth_utils import (
    ValidationError,
    function_signature_to_4byte_selector,
    keccak,
    to_canonical_address,
)

from agents.common.errors import AgentError

SECP256K1_N = SECPK1_N
# an agent sends to one contract: checking its address's checksum once is enough
_canonical = lru_cache(maxsize=64)(to_canonical_address)


class AbiError(AgentError):
    """A value or type the codec cannot handle."""


def keccak256(data: bytes) -> bytes:
    return keccak(data)


def selector(signature: str) -> bytes:
    """The 4-byte selector of a function signature, e.g. "transfer(address,uint256)"."""
    return function_signature_to_4byte_selector(signature)


def encode(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """ABI-encode `values` as the tuple `types` (AbiError if a value does not fit)."""
    try:
        return _encode(list(types), list(values))
    except (_EncodingError, TypeError, ValueError) as exc:
        raise AbiError(f"cannot encode as ({','.join(types)}): {exc}") from exc


def decode(types: Sequence[str], data: bytes) -> tuple[Any, ...]:
    """Decode ABI `data` as the tuple `types` (addresses in lower case, arrays as tuples)."""
    try:
        return tuple(_decode(list(types), bytes(data)))
    except (DecodingError, TypeError, ValueError) as exc:
        raise AbiError(f"cannot decode {len(data)} bytes as ({','.join(types)}): {exc}") from exc


class Key:
    """A secp256k1 private key: its address and EIP-155 legacy signing."""

    def __init__(self, secret: bytes | str) -> None:
        raw = bytes.fromhex(secret.removeprefix("0x")) if isinstance(secret, str) else secret
        try:
            validate_private_key_bytes(raw)
        except ValidationError as exc:
            raise AbiError(f"invalid private key: {exc}") from exc
        self._key = coincurve.PrivateKey(raw)
        public = self._key.public_key.format(compressed=False)[1:]
        self.address: str = keys.PublicKey(public).to_checksum_address()

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
        digest = keccak(rlp.encode([*fields, chain_id, 0, 0]))
        sig = self._key.sign_recoverable(digest, hasher=None)
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")
        return bytes(rlp.encode([*fields, sig[64] + 35 + 2 * chain_id, r, s]))


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
