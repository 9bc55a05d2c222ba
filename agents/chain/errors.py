"""Chain errors, and the contract's revert data decoded into names, arguments and the
`market.verify` violation kind they stand for.

No web3 here (lean agents decode reverts too): the ABI codec is agents.common.abi,
imported when a revert is decoded (a prosumer host gets ready without it: bench/hoststart.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from agents.chain.artifact import load_artifact
from agents.common.errors import AgentError
from market.rules import KIND_OF_ERROR, MALFORMED_ERRORS, ViolationKind


class ChainError(AgentError):
    """Root of the chain module's errors."""


class NodeError(ChainError):
    """The Ethereum node could not be started, reached or stopped."""


class TxTimeout(ChainError):
    """A transaction was not mined in time."""


class EncodingError(ChainError, ValueError):
    """A value does not fit the contract's encoding (negative, too large, ...)."""


# Custom error of the contract -> the market.verify kind it reports (solution checks only),
# from the catalogue of market rules; MALFORMED_ERRORS (also from there): the reverts
# meaning "the encoding is not a solution at all" (never produced by encode_trades).
VIOLATION_BY_ERROR: Mapping[str, ViolationKind] = KIND_OF_ERROR

_PANIC_REASONS = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x32: "array index out of bounds",
    0x41: "out of memory",
}


@dataclass(frozen=True)
class _ErrorAbi:
    name: str
    names: tuple[str, ...]
    types: tuple[str, ...]


@cache
def _errors_by_selector() -> dict[bytes, _ErrorAbi]:
    from agents.common.abi import keccak256

    table = {
        keccak256(b"Error(string)")[:4]: _ErrorAbi("Error", ("message",), ("string",)),
        keccak256(b"Panic(uint256)")[:4]: _ErrorAbi("Panic", ("code",), ("uint256",)),
    }
    for item in load_artifact()["abi"]:
        if item.get("type") != "error":
            continue
        types = tuple(str(p["type"]) for p in item["inputs"])
        sig = f"{item['name']}({','.join(types)})".encode()
        table[keccak256(sig)[:4]] = _ErrorAbi(
            item["name"], tuple(p["name"] for p in item["inputs"]), types
        )
    return table


class ContractRevert(ChainError):
    """A call or transaction reverted; `name` and `params` are the decoded custom error
    ("Unknown" when the data matches none), `violation` the market.verify kind if any."""

    def __init__(
        self, name: str, args: Mapping[str, Any], data: bytes, function: str | None = None
    ) -> None:
        self.name = name
        self.params: dict[str, Any] = dict(args)
        self.data = data
        self.function = function
        inner = ", ".join(f"{k}={v}" for k, v in self.params.items())
        where = f"{function}: " if function else ""
        super().__init__(f"{where}reverted with {name}({inner})")

    @property
    def violation(self) -> ViolationKind | None:
        """The market.verify kind this revert reports (None: not an infeasibility)."""
        return VIOLATION_BY_ERROR.get(self.name)

    @property
    def malformed(self) -> bool:
        return self.name in MALFORMED_ERRORS


def decode_revert(data: bytes | str | None, function: str | None = None) -> ContractRevert:
    """Decode revert data (bytes or 0x-hex) of the market contract."""
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x"))
    from agents.common.abi import decode

    raw = data or b""
    err = _errors_by_selector().get(raw[:4])
    if err is None:
        return ContractRevert("Unknown", {"data": "0x" + raw.hex()}, raw, function)
    try:
        values = decode(list(err.types), raw[4:])
    except Exception:  # malformed payload for a known selector: keep the raw bytes
        return ContractRevert(err.name, {"data": "0x" + raw.hex()}, raw, function)
    args = dict(zip(err.names, values, strict=True))
    if err.name == "Panic":
        args["reason"] = _PANIC_REASONS.get(int(args["code"]), "unknown panic")
    return ContractRevert(err.name, args, raw, function)
