"""The common case of the ABI codec without eth-abi: arguments made of 32-byte words.

Every call a prosumer host makes, and every log and view it reads, has arguments of the
elementary static types (`uint<N>`, `bool`, `address`, `bytes<N>`) or dynamic arrays of
them (`uint256[]`). Their ABI encoding is one big-endian word per value (arrays: an
offset in the head, then length and words in the tail). Importing eth-abi (and eth-utils,
pydantic and parsimonious under it) costs a host more CPU than everything else it does
before its first tick is answered (bench/hoststart.py), so these cases are encoded and
decoded here, and everything else goes to eth-abi.

Both functions return None for anything they do not handle in exactly eth-abi's way: a
type outside the list, a value eth-abi would refuse or convert (a float, an address with
a wrong checksum), data eth-abi's strict decoder would reject (short data, non-zero
padding, a pointer outside the data). The caller then asks eth-abi, which gives its
result or its error, so the two paths never differ (tests/unit/test_agents_abiwords.py
checks the bytes and values against eth-abi).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

_ELEMENTARY = re.compile(r"(uint|bytes)(\d+)|(bool|address)")
_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
WORD = 32


@dataclass(frozen=True)
class Kind:
    """An elementary static type: `uint` (bits), `bytes` (size), `bool` or `address`;
    `array` True for its dynamic array `T[]`."""

    name: str
    size: int = 0
    array: bool = False


@cache
def kind_of(abi_type: str) -> Kind | None:
    """The Kind of `abi_type`, or None when this module does not handle it."""
    array = abi_type.endswith("[]")
    base = abi_type[:-2] if array else abi_type
    m = _ELEMENTARY.fullmatch(base)
    if m is None:
        return None
    if m[3]:
        return Kind(m[3], 0, array)
    size = int(m[2])
    if m[2] != str(size):  # "uint08" is no ABI type
        return None
    valid = size % 8 == 0 and 8 <= size <= 256 if m[1] == "uint" else 1 <= size <= 32
    return Kind(m[1], size, array) if valid else None


def encode_words(
    types: Sequence[str], values: Sequence[Any], checksum: Callable[[str], str]
) -> bytes | None:
    """The ABI encoding of `values` as the tuple `types`, or None (ask eth-abi).
    `checksum(lower_hex_address)`: its EIP-55 form, to check mixed-case addresses."""
    kinds = [kind_of(t) for t in types]
    if len(values) != len(kinds):
        return None
    heads: list[bytes] = []
    tails: list[bytes] = []
    offset = WORD * len(kinds)
    for kind, value in zip(kinds, values, strict=True):
        if kind is None:
            return None
        if not kind.array:
            word = _word(kind, value, checksum)
            if word is None:
                return None
            heads.append(word)
            continue
        if not isinstance(value, list | tuple):
            return None
        words = [_word(kind, item, checksum) for item in value]
        if None in words:
            return None
        tail = len(words).to_bytes(WORD, "big") + b"".join(w for w in words if w is not None)
        heads.append(offset.to_bytes(WORD, "big"))
        tails.append(tail)
        offset += len(tail)
    return b"".join(heads) + b"".join(tails)


def _word(kind: Kind, value: Any, checksum: Callable[[str], str]) -> bytes | None:
    if kind.name == "uint":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return value.to_bytes(WORD, "big") if ok and 0 <= value < 1 << kind.size else None
    if kind.name == "bool":
        return (b"\0" * 31 + (b"\1" if value else b"\0")) if isinstance(value, bool) else None
    if kind.name == "bytes":
        ok = isinstance(value, bytes) and len(value) <= kind.size
        return value.ljust(WORD, b"\0") if ok else None
    if not isinstance(value, str) or _HEX_ADDRESS.fullmatch(value) is None:
        return None  # kind.name == "address"; 20 raw bytes and the rest: eth-abi
    digits, lower = value[2:], value[2:].lower()
    if digits not in (lower, digits.upper()) and checksum(lower) != value:
        return None  # mixed case must be the EIP-55 checksum (eth-abi refuses it)
    return bytes(12) + bytes.fromhex(lower)


def decode_words(types: Sequence[str], data: bytes) -> tuple[Any, ...] | None:
    """The values of ABI `data` as the tuple `types` (addresses in lower case, arrays as
    tuples, as eth-abi decodes them), or None (ask eth-abi)."""
    kinds = [kind_of(t) for t in types]
    head_end = WORD * len(kinds)
    if len(data) < head_end:
        return None
    out: list[Any] = []
    for i, kind in enumerate(kinds):
        if kind is None:
            return None
        head = data[WORD * i : WORD * (i + 1)]
        if not kind.array:
            value = _value(kind, head)
            if value is _INVALID:
                return None
            out.append(value)
            continue
        offset = int.from_bytes(head, "big")
        if offset < head_end or offset + WORD > len(data):
            return None
        count = int.from_bytes(data[offset : offset + WORD], "big")
        first = offset + WORD
        if first + WORD * count > len(data):
            return None
        ends = range(first + WORD, first + WORD * (count + 1), WORD)
        items = [_value(kind, data[end - WORD : end]) for end in ends]
        if any(item is _INVALID for item in items):
            return None
        out.append(tuple(items))
    return tuple(out)


_INVALID = object()


def _value(kind: Kind, word: bytes) -> Any:
    if kind.name == "bytes":
        return word[: kind.size] if not any(word[kind.size :]) else _INVALID
    number = int.from_bytes(word, "big")
    if kind.name == "uint":
        return number if number >> kind.size == 0 else _INVALID
    if kind.name == "bool":
        return bool(number) if number in (0, 1) else _INVALID
    return "0x" + word[12:].hex() if number >> 160 == 0 else _INVALID  # address
