"""Domain types of the energy trading problem (paper section 4.2, Table 1).

Units are integers everywhere (ARCHITECTURE.md "Domain model and units"):
- time: interval numbers (the dataset's 1..96 for a day of 15-minute intervals);
- energy: Wh per interval (p·Δ of the paper);
- prices: micro-units of currency per kWh;
- money: energy_Wh * price (so 1 unit = 1e-9 currency); no rounding ever.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class Kind(IntEnum):
    """Offer kind. The integer values are the contract's encoding."""

    SELL = 0
    BUY = 1


@dataclass(frozen=True, slots=True)
class Feeder:
    """A feeder f with its safety limits, both in Wh per interval.

    c_ext bounds the net flow into or out of the feeder (equations 5-6);
    c_int bounds total production and total consumption inside it (7-8).
    """

    id: int
    c_ext: int
    c_int: int


@dataclass(frozen=True, slots=True)
class Offer:
    """A selling or buying offer (E, I, R): energy in Wh over the whole offer,
    the contiguous inclusive interval range [start, end], reservation price."""

    id: int
    feeder: int
    kind: Kind
    energy: int
    start: int
    end: int
    price: int

    def covers(self, interval: int) -> bool:
        return self.start <= interval <= self.end


@dataclass(frozen=True, slots=True, order=True)
class Trade:
    """p[s,b,t]·Δ and π[s,b,t]: `energy` Wh from sell offer `seller` to buy
    offer `buyer` in interval `interval`, at unit price `price`."""

    seller: int
    buyer: int
    interval: int
    energy: int
    price: int


@dataclass(frozen=True, slots=True)
class Solution:
    """A set of trades. Its objective (16) is the total energy traded in Wh."""

    trades: tuple[Trade, ...] = ()

    @property
    def objective(self) -> int:
        return sum(t.energy for t in self.trades)


@dataclass(frozen=True, slots=True)
class Problem:
    """An instance of the (extended, section 4.3) energy trading problem.

    `fixed` are trades already finalized; they use up offer energy and are
    never changed. When `free_from` is set, only intervals >= free_from may be
    traded by a solution (t + T_clear in the paper); fixed trades must all lie
    before it.
    """

    feeders: tuple[Feeder, ...]
    offers: tuple[Offer, ...]
    fixed: tuple[Trade, ...] = field(default=())
    free_from: int | None = None
