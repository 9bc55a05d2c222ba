"""Minimal Solidity ABI codec, Keccak-256 and legacy (EIP-155) transaction signing.

Why not eth_abi/eth_account: importing them costs ~35 MB RSS (eth_utils,
pydantic), and a prosumer host should stay well under 60 MB. This covers what
the agents exchange with the market contract: elementary static types
(uintN, intN, address, bool, bytesN), `bytes`, `string` and dynamic or fixed
arrays of elementary static types. Unit tests check it against eth_abi and
eth_account byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import coincurve
from Crypto.Hash import keccak as _keccak

from agents.common.errors import AgentError

_ARRAY = re.compile(r"^(.*)\[(\d*)\]$")
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class AbiError(AgentError):
    """A value or type the codec cannot handle."""


def keccak256(data: bytes) -> bytes:
    return _keccak.new(digest_bits=256, data=data).digest()


def selector(signature: str) -> bytes:
    return keccak256(signature.encode())[:4]


def _is_dynamic(typ: str) -> bool:
    m = _ARRAY.match(typ)
    if m:
        return m.group(2) == "" or _is_dynamic(m.group(1))
    return typ in ("bytes", "string")


def _word(typ: str, value: Any) -> bytes:
    if typ == "address":
        raw = bytes.fromhex(value[2:]) if isinstance(value, str) else bytes(value)
        if len(raw) != 20:
            raise AbiError(f"bad address {value!r}")
        return raw.rjust(32, b"\0")
    if typ == "bool":
        return int(bool(value)).to_bytes(32, "big")
    if typ.startswith("uint"):
        bits = int(typ[4:] or 256)
        if not 0 <= int(value) < 1 << bits:
            raise AbiError(f"{value} out of range for {typ}")
        return int(value).to_bytes(32, "big")
    if typ.startswith("int"):
        bits = int(typ[3:] or 256)
        if not -(1 << (bits - 1)) <= int(value) < 1 << (bits - 1):
            raise AbiError(f"{value} out of range for {typ}")
        return (int(value) % (1 << 256)).to_bytes(32, "big")
    if typ.startswith("bytes") and typ != "bytes":
        raw = bytes(value)
        if len(raw) > int(typ[5:]):
            raise AbiError(f"too long for {typ}")
        return raw.ljust(32, b"\0")
    raise AbiError(f"unsupported ABI type {typ}")


def _encode_one(typ: str, value: Any) -> bytes:
    m = _ARRAY.match(typ)
    if m:
        inner, size = m.group(1), m.group(2)
        items = list(value)
        if size and len(items) != int(size):
            raise AbiError(f"{typ} needs {size} items, got {len(items)}")
        body = encode([inner] * len(items), items)
        return body if size else len(items).to_bytes(32, "big") + body
    if typ in ("bytes", "string"):
        raw = value.encode() if isinstance(value, str) else bytes(value)
        pad = (-len(raw)) % 32
        return len(raw).to_bytes(32, "big") + raw + b"\0" * pad
    return _word(typ, value)


def encode(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """ABI-encode `values` as the tuple `types` (head/tail layout)."""
    if len(types) != len(values):
        raise AbiError(f"{len(types)} types but {len(values)} values")
    heads: list[bytes] = []
    tails: list[bytes] = []
    head_size = sum(32 if _is_dynamic(t) else _static_size(t) for t in types)
    offset = head_size
    for typ, value in zip(types, values, strict=True):
        enc = _encode_one(typ, value)
        if _is_dynamic(typ):
            heads.append(offset.to_bytes(32, "big"))
            tails.append(enc)
            offset += len(enc)
        else:
            heads.append(enc)
    return b"".join(heads) + b"".join(tails)


def _static_size(typ: str) -> int:
    m = _ARRAY.match(typ)
    if m:
        return int(m.group(2)) * _static_size(m.group(1))
    return 32


def _decode_word(typ: str, word: bytes) -> Any:
    if typ == "address":
        return "0x" + word[12:].hex()
    if typ == "bool":
        return word[-1] == 1
    if typ.startswith("uint"):
        return int.from_bytes(word, "big")
    if typ.startswith("int"):
        return int.from_bytes(word, "big", signed=True)
    if typ.startswith("bytes") and typ != "bytes":
        return word[: int(typ[5:])]
    raise AbiError(f"unsupported ABI type {typ}")


def _decode_at(typ: str, data: bytes, pos: int) -> Any:
    m = _ARRAY.match(typ)
    if m:
        inner, size = m.group(1), m.group(2)
        if size:
            n, start = int(size), pos
        else:
            n, start = int.from_bytes(data[pos : pos + 32], "big"), pos + 32
        return list(decode([inner] * n, data[start:]))
    if typ in ("bytes", "string"):
        n = int.from_bytes(data[pos : pos + 32], "big")
        raw = data[pos + 32 : pos + 32 + n]
        return raw.decode() if typ == "string" else raw
    return _decode_word(typ, data[pos : pos + 32])


def decode(types: Sequence[str], data: bytes) -> tuple[Any, ...]:
    out: list[Any] = []
    pos = 0
    for typ in types:
        if _is_dynamic(typ):
            offset = int.from_bytes(data[pos : pos + 32], "big")
            out.append(_decode_at(typ, data, offset))
            pos += 32
        else:
            out.append(_decode_at(typ, data, pos))
            pos += _static_size(typ)
    return tuple(out)


# --- RLP and signing ----------------------------------------------------------
def _rlp_bytes(raw: bytes) -> bytes:
    if len(raw) == 1 and raw[0] < 0x80:
        return raw
    return _rlp_len(len(raw), 0x80) + raw


def _rlp_len(n: int, base: int) -> bytes:
    if n < 56:
        return bytes([base + n])
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([base + 55 + len(size)]) + size


def _rlp_int(n: int) -> bytes:
    return _rlp_bytes(n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b"")


def _rlp_list(items: Sequence[bytes]) -> bytes:
    body = b"".join(items)
    return _rlp_len(len(body), 0xC0) + body


class Key:
    """A secp256k1 private key: its address and EIP-155 legacy signing."""

    def __init__(self, secret: bytes | str) -> None:
        raw = bytes.fromhex(secret.removeprefix("0x")) if isinstance(secret, str) else secret
        if len(raw) != 32 or not 0 < int.from_bytes(raw, "big") < SECP256K1_N:
            raise AbiError("invalid private key")
        self._key = coincurve.PrivateKey(raw)
        public = self._key.public_key.format(compressed=False)[1:]
        self.address = to_checksum(keccak256(public)[-20:])

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
        fields = [
            _rlp_int(nonce),
            _rlp_int(gas_price),
            _rlp_int(gas),
            _rlp_bytes(bytes.fromhex(to[2:])),
            _rlp_int(value),
            _rlp_bytes(data),
        ]
        digest = keccak256(_rlp_list([*fields, _rlp_int(chain_id), _rlp_int(0), _rlp_int(0)]))
        sig = self._key.sign_recoverable(digest, hasher=None)
        r, s, rec = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
        v = rec + chain_id * 2 + 35
        return _rlp_list([*fields, _rlp_int(v), _rlp_int(r), _rlp_int(s)])


def to_checksum(raw: bytes) -> str:
    """EIP-55 checksummed address of 20 raw bytes."""
    hexaddr = raw.hex()
    digest = keccak256(hexaddr.encode()).hex()
    return "0x" + "".join(
        c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(hexaddr)
    )
