"""Prosumer accounts at the DSO and the safety check before issuing assets.

Pure bookkeeping, no chain and no sockets, so it is unit tested directly.

An account holds what the prosumer may still trade: its declared trace offers
(each with the energy not yet withdrawn) and its money. A `withdrawAssets`
request is safe when:
- the prosumer is known and asks for its own feeder (an anonymous address is
  linked to exactly one feeder, paper 6.3) and the address is not someone else's;
- every asset is a non-empty range inside the market's intervals, not yet
  finalized, and covered by one of the prosumer's declared offers of the same
  kind with enough energy left (the trace bounds: no reckless trading from
  fresh addresses);
- the money asked for is covered by the account balance.
Declared offers are clipped to the traded intervals, as prosumers post them
(see agents.prosumer.plan.clip). Feeder flow limits (c_ext, c_int) are
enforced per trade by the contract on every solution; here the feeder is
checked as the address's link.
Deposits (EnergyDeposited / FinancialDeposited) credit the account back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from agents.common.config import DsoConfig, ProsumerSpec
from agents.common.protocol import Asset, WithdrawAssets
from market.types import Kind


@dataclass
class Account:
    prosumer: int
    feeder: int
    declared: list[tuple[int, int, int, int]]  # (kind, start, end, energy left in Wh)
    balance: int
    deposited_energy_wh: int = 0
    deposited_money: int = 0
    addresses: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Grant:
    """What one granted withdrawal took, so that `undo` can give exactly that back
    (in any order relative to other grants) if issuing it on chain fails."""

    request: WithdrawAssets
    taken: tuple[tuple[int, int], ...]  # (index into the declared offers, Wh)


class Refused(Exception):
    """A withdrawal that is not safe; the message is the failedWithdrawal reason."""


class Accounts:
    """All prosumer accounts and the address -> prosumer links (DSO-private)."""

    def __init__(
        self,
        prosumers: tuple[ProsumerSpec, ...],
        balances: dict[int, int],
        feeders: set[int],
        first_interval: int,
        last_interval: int,
    ) -> None:
        self.accounts = {
            p.id: Account(
                prosumer=p.id,
                feeder=p.feeder,
                declared=[
                    (int(o.kind), max(o.start, first_interval), min(o.end, last_interval), o.energy)
                    for o in p.offers
                    if max(o.start, first_interval) <= min(o.end, last_interval)
                ],
                balance=balances.get(p.id, 0),
            )
            for p in prosumers
        }
        self.feeders = feeders
        self.first_interval = first_interval
        self.last_interval = last_interval
        self.finalized = first_interval - 1  # last finalized delivery interval
        self.owner: dict[str, int] = {}  # anonymous address (lower case) -> prosumer
        self._granted: set[WithdrawAssets] = set()
        self._uses: Counter[str] = Counter()  # grants per linked address

    @classmethod
    def from_config(cls, config: DsoConfig) -> Accounts:
        return cls(
            config.prosumers,
            dict(config.initial_balance),
            {f.id for f in config.feeders},
            config.market.first_interval,
            config.market.last_interval,
        )

    def undo(self, grant: Grant) -> None:
        """Give back what `grant` took (its assets could not be issued)."""
        req = grant.request
        acct = self.accounts[req.prosumer]
        for index, energy in grant.taken:
            kind, start, end, left = acct.declared[index]
            acct.declared[index] = (kind, start, end, left + energy)
        acct.balance += req.amount
        anon = req.anon.lower()
        self._uses[anon] -= 1
        if self._uses[anon] <= 0:  # no other grant uses the link
            del self._uses[anon]
            acct.addresses.discard(anon)
            self.owner.pop(anon, None)
        self._granted.discard(req)

    def is_duplicate(self, req: WithdrawAssets) -> bool:
        """True if exactly this request was granted before (a client retry)."""
        return req in self._granted

    def withdraw(self, req: WithdrawAssets) -> Grant:
        """Check `req`; on success debit the account and link the address.

        Raises Refused (with the reason) and then changes nothing.
        """
        acct = self.accounts.get(req.prosumer)
        if acct is None:
            raise Refused(f"unknown prosumer {req.prosumer}")
        if req.feeder not in self.feeders:
            raise Refused(f"unknown feeder {req.feeder}")
        if req.feeder != acct.feeder:
            raise Refused(f"prosumer {req.prosumer} is on feeder {acct.feeder}, not {req.feeder}")
        anon = req.anon.lower()
        if not _is_address(anon):
            raise Refused(f"malformed address {req.anon!r}")
        owner = self.owner.get(anon)
        if owner is not None and owner != req.prosumer:
            raise Refused(f"address {req.anon} belongs to another prosumer")
        if req.amount < 0:
            raise Refused("negative amount")
        if req.amount > acct.balance:
            raise Refused(f"insufficient funds: asked {req.amount}, balance {acct.balance}")
        if not req.assets and req.amount == 0:
            raise Refused("nothing to withdraw")
        declared = list(acct.declared)
        taken = tuple(self._take(declared, asset, req.prosumer) for asset in req.assets)
        acct.declared = declared
        acct.balance -= req.amount
        acct.addresses.add(anon)
        self.owner[anon] = req.prosumer
        self._uses[anon] += 1
        self._granted.add(req)
        return Grant(req, taken)

    def _take(
        self, declared: list[tuple[int, int, int, int]], a: Asset, who: int
    ) -> tuple[int, int]:
        what = f"{_kind_name(a.kind)} {a.energy_wh} Wh in {a.start}..{a.end}"
        if a.kind not in (Kind.SELL, Kind.BUY):
            raise Refused(f"unknown asset kind {a.kind}")
        if a.energy_wh <= 0 or a.end < a.start:
            raise Refused(f"empty asset ({what})")
        if a.start < self.first_interval or a.end > self.last_interval:
            raise Refused(
                f"{what} outside the market's intervals {self.first_interval}..{self.last_interval}"
            )
        if a.end <= self.finalized:
            raise Refused(f"{what}: intervals up to {self.finalized} are already finalized")
        for i, (kind, start, end, left) in enumerate(declared):
            if kind == a.kind and start <= a.start and a.end <= end and left >= a.energy_wh:
                declared[i] = (kind, start, end, left - a.energy_wh)
                return i, a.energy_wh
        raise Refused(f"{what} exceeds prosumer {who}'s declared offers")

    def deposit_energy(self, anon: str, energy_wh: int, kind: int, start: int, end: int) -> bool:
        """Credit an EnergyDeposited event; False if the address is not ours."""
        acct = self._account_of(anon)
        if acct is None:
            return False
        acct.deposited_energy_wh += energy_wh
        for i, (k, s, e, left) in enumerate(acct.declared):
            if k == kind and s <= start and end <= e:
                acct.declared[i] = (k, s, e, left + energy_wh)
                break
        return True

    def deposit_money(self, anon: str, amount: int) -> bool:
        acct = self._account_of(anon)
        if acct is None:
            return False
        acct.balance += amount
        acct.deposited_money += amount
        return True

    def summary(self) -> dict[str, dict[str, int]]:
        """Per prosumer: balance, deposits credited, addresses used (JSON-ready)."""
        return {
            str(a.prosumer): {
                "feeder": a.feeder,
                "balance": a.balance,
                "deposited_energy_wh": a.deposited_energy_wh,
                "deposited_money": a.deposited_money,
                "addresses": len(a.addresses),
                "undrawn_energy_wh": sum(left for *_, left in a.declared),
            }
            for a in self.accounts.values()
        }

    def _account_of(self, anon: str) -> Account | None:
        prosumer = self.owner.get(anon.lower())
        return None if prosumer is None else self.accounts[prosumer]


def _kind_name(kind: int) -> str:
    return {0: "sell", 1: "buy"}.get(kind, f"kind {kind}")


def _is_address(anon: str) -> bool:
    if len(anon) != 42 or not anon.startswith("0x"):
        return False
    try:
        int(anon[2:], 16)
    except ValueError:
        return False
    return True
