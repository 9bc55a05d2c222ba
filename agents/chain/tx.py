"""Sending transactions: local signing, explicit nonces, receipts with timeouts.

A `Sender` owns one local key and hands out nonces itself, so an agent can send several
transactions before the first is mined (pipelining) and wait for them later:

    pending = [market.post_offer(anon, ...) for ...]     # sent, not waited for
    receipts = [p.wait() for p in pending]

Reverts surface as `ContractRevert` with the contract's custom error decoded: before sending
when the gas is estimated (the default), or from the mined receipt when `gas` is given.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError, TimeExhausted
from web3.types import TxReceipt

from agents.chain.errors import ChainError, ContractRevert, TxTimeout, decode_revert

RECEIPT_TIMEOUT = 120.0
RECEIPT_POLL = 0.02
FEE_REFRESH_SECONDS = 2.0
# Estimates are exact for the state they ran on; pipelined transactions may run on another.
GAS_MARGIN_NUM, GAS_MARGIN_DEN, GAS_MARGIN_ADD = 6, 5, 20_000


def revert_from_exception(exc: ContractLogicError, function: str | None) -> ContractRevert:
    data = exc.data if isinstance(exc.data, str) and exc.data.startswith("0x") else None
    if data is None:
        return ContractRevert("Unknown", {"message": exc.message or str(exc)}, b"", function)
    return decode_revert(data, function)


class PendingTx:
    """A sent transaction. `wait()` returns its receipt or raises (TxTimeout, ContractRevert)."""

    def __init__(self, w3: Web3, tx_hash: bytes, function: str, sender: str, nonce: int) -> None:
        self.w3 = w3
        self.hash = HexBytes(tx_hash)
        self.function = function
        self.sender = sender
        self.nonce = nonce
        self._receipt: TxReceipt | None = None

    def wait(self, timeout: float = RECEIPT_TIMEOUT) -> TxReceipt:
        if self._receipt is None:
            try:
                receipt = self.w3.eth.wait_for_transaction_receipt(
                    self.hash, timeout=timeout, poll_latency=RECEIPT_POLL
                )
            except TimeExhausted as exc:
                raise TxTimeout(
                    f"{self.function}: transaction 0x{self.hash.hex()} not mined in {timeout} s"
                ) from exc
            self._receipt = receipt
        if self._receipt["status"] != 1:
            raise self._revert()
        return self._receipt

    @property
    def gas_used(self) -> int:
        return int(self.wait()["gasUsed"])

    def _revert(self) -> ContractRevert:
        """Revert data of the mined transaction: from a call trace, else by replaying it."""
        try:
            trace = self.w3.provider.make_request(
                "debug_traceTransaction",  # type: ignore[arg-type]
                ["0x" + self.hash.hex(), {"tracer": "callTracer"}],
            )
            output = (trace.get("result") or {}).get("output")
            if output:
                return decode_revert(output, self.function)
        except (OSError, ValueError):
            pass
        tx = self.w3.eth.get_transaction(self.hash)
        assert self._receipt is not None
        call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
        try:
            self.w3.eth.call(call, block_identifier=self._receipt["blockNumber"] - 1)  # type: ignore[arg-type]
        except ContractLogicError as exc:
            return revert_from_exception(exc, self.function)
        return ContractRevert("Unknown", {"status": 0}, b"", self.function)


class Sender:
    """One local key with a locally tracked nonce. Thread-safe. Legacy (type 0) transactions
    at the node's gas price (0 on the testbed chain), refreshed every FEE_REFRESH_SECONDS."""

    def __init__(self, w3: Web3, account: LocalAccount, gas_price: int | None = None) -> None:
        self.w3 = w3
        self.account = account
        self.address: str = account.address
        self._fixed_gas_price = gas_price
        self._gas_price: tuple[float, int] | None = None
        self._nonce: int | None = None
        self._lock = threading.Lock()
        self._chain_id: int | None = None

    def __repr__(self) -> str:
        return f"Sender({self.address})"

    def gas_price(self) -> int:
        if self._fixed_gas_price is not None:
            return self._fixed_gas_price
        now = time.monotonic()
        if self._gas_price is None or now - self._gas_price[0] > FEE_REFRESH_SECONDS:
            self._gas_price = (now, int(self.w3.eth.gas_price))
        return self._gas_price[1]

    def set_nonce(self, nonce: int) -> None:
        """Set the next nonce (e.g. after an evm_revert to a state whose nonce is known)."""
        with self._lock:
            self._nonce = nonce

    def sync_nonce(self) -> int:
        with self._lock:
            self._nonce = self.w3.eth.get_transaction_count(self.address, "pending")  # type: ignore[arg-type]
            return self._nonce

    def estimate(self, tx: dict[str, Any], function: str) -> int:
        try:
            gas = self.w3.eth.estimate_gas({"from": self.address, **tx})  # type: ignore[typeddict-item]
        except ContractLogicError as exc:
            raise revert_from_exception(exc, function) from None
        return gas * GAS_MARGIN_NUM // GAS_MARGIN_DEN + GAS_MARGIN_ADD

    def send(
        self, to: str | None, data: bytes | str, *, function: str, gas: int | None = None
    ) -> PendingTx:
        """Sign and send; `gas` None = estimate (a revert raises ContractRevert here)."""
        tx: dict[str, Any] = {"data": data, "value": 0}
        if to is not None:
            tx["to"] = to
        if gas is None:
            gas = self.estimate(tx, function)
        if self._chain_id is None:
            self._chain_id = self.w3.eth.chain_id
        price = self.gas_price()
        with self._lock:
            if self._nonce is None:
                self._nonce = self.w3.eth.get_transaction_count(self.address, "pending")  # type: ignore[arg-type]
            nonce = self._nonce
            signed = self.account.sign_transaction(
                {**tx, "gas": gas, "gasPrice": price, "nonce": nonce, "chainId": self._chain_id}
            )
            try:
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except (ValueError, OSError) as exc:
                self._nonce = None  # resynchronise from the node next time
                raise ChainError(f"{function}: node refused the transaction: {exc}") from exc
            self._nonce = nonce + 1
        return PendingTx(self.w3, bytes(tx_hash), function, self.address, nonce)
