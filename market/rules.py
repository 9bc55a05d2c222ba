"""The catalogue of market rules: every constraint a solution must keep (paper section 4,
equations (1)-(9), (12), (17), and the structural checks), in one table.

For each rule: the `ViolationKind` that `market.verify` reports, the paper equation, where
it applies (`Stage`), the contract's custom error with its arguments (None: cannot occur
on chain), the side of the trade it bounds, how an adversarial solver breaks it (`Attack`,
built by agents.solver.adversary), and for the feeder rules their linear row (`FeederRow`,
read by verify, the solver's on-chain prediction and rounding). The contract's structural
checks of the encoding (`ENCODING_ERRORS`) have no verify kind. Orders derive from here:

- `RULES` is verify's report order (violations are sorted by `REPORT_RANK`, then by ids);
- `CONTRACT_ORDER` is the order in which SolutionVerifier.sol checks and reverts: trades
  sorted by their words (interval, seller, buyer, energy, price); each trade runs the
  encoding, trade and offer checks in that order (offer sums include the trade); the
  feeders an interval touched are checked when the interval closes (before the next
  interval's first trade, or at the end), each feeder in the order the interval's trades
  first touched it, its rules in this order.

Units as in market.types: Wh per interval, integer prices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from market.types import Feeder, Kind


class ViolationKind(StrEnum):
    """What is violated. Names and values are stable (used by the contract tests)."""

    UNKNOWN_OFFER = "UNKNOWN_OFFER"
    NOT_MATCHABLE_KIND = "NOT_MATCHABLE_KIND"
    UNKNOWN_FEEDER = "UNKNOWN_FEEDER"
    NONPOSITIVE = "NONPOSITIVE"
    NEGATIVE_PRICE = "NEGATIVE_PRICE"
    NOT_MATCHABLE_PRICE = "NOT_MATCHABLE_PRICE"
    NOT_MATCHABLE_INTERVAL = "NOT_MATCHABLE_INTERVAL"
    FINALIZED_INTERVAL = "FINALIZED_INTERVAL"
    DUPLICATE = "DUPLICATE"
    PRICE = "PRICE"
    SELL_ENERGY = "SELL_ENERGY"
    BUY_ENERGY = "BUY_ENERGY"
    FEEDER_EXT_OUT = "FEEDER_EXT_OUT"
    FEEDER_EXT_IN = "FEEDER_EXT_IN"
    FEEDER_INT_CONSUMPTION = "FEEDER_INT_CONSUMPTION"
    FEEDER_INT_PRODUCTION = "FEEDER_INT_PRODUCTION"


class Stage(StrEnum):
    """What a rule looks at."""

    TRADE = "trade"  # one trade on its own (or with the trade before it)
    OFFER = "offer"  # one offer's energy over every trade naming it, (3), (4)
    FEEDER = "feeder"  # one feeder in one interval, (5)-(8)


class Attack(StrEnum):
    """How agents.solver.adversary breaks a rule, starting from the solver's optimum."""

    GHOST_OFFER = "ghost_offer"  # a trade between ids no market reaches
    SWAPPED_KINDS = "swapped_kinds"  # a buy offer as the seller or a sell offer as the buyer
    ZERO_ENERGY = "zero_energy"  # a trade of 0 Wh
    PAST_INTERVAL = "past_interval"  # a trade in an interval already finalized
    OUTSIDE_RANGE = "outside_range"  # a trade outside an offer's intervals
    CROSSED_PRICES = "crossed_prices"  # a seller priced above the buyer
    PRICE_ABOVE_BUYER = "price_above_buyer"  # a trade price above the buyer's reservation
    COPIED_TRADE = "copied_trade"  # a second trade of the same (seller, buyer, interval)
    OVERDRAWN_OFFER = "overdrawn_offer"  # one Wh more than the offer has left
    OVERLOADED_FEEDER = "overloaded_feeder"  # one Wh over the feeder's limit


@dataclass(frozen=True, slots=True)
class ContractError:
    """A custom error of the contract: name and (argument name, Solidity type) pairs."""

    name: str
    args: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class FeederRow:
    """A feeder rule as a linear row over one feeder and interval:
    sold * `sold` + bought * `bought` <= the feeder's `limit` ("c_ext" or "c_int"), where
    sold / bought = Wh sold by its sellers / bought by its buyers (to or from anywhere)."""

    sold: int
    bought: int
    limit: str

    def bound(self, feeder: Feeder) -> int:
        return feeder.c_ext if self.limit == "c_ext" else feeder.c_int

    def excess(self, feeder: Feeder, sold: int, bought: int) -> int:
        """Wh over the limit (<= 0: the row holds)."""
        return self.sold * sold + self.bought * bought - self.bound(feeder)


@dataclass(frozen=True, slots=True)
class Rule:
    """One constraint. `side`: the offer kind whose energy or feeder the rule bounds
    (None for rules on the pair); `also`: kinds verify always reports with this one."""

    kind: ViolationKind
    stage: Stage
    equation: str  # paper equation(s), "" for the structural checks
    text: str
    error: ContractError | None  # None: cannot occur on chain
    attack: Attack | None
    side: Kind | None = None
    also: frozenset[ViolationKind] = frozenset()
    row: FeederRow | None = None  # feeder rules only

    @property
    def onchain(self) -> bool:
        return self.error is not None


def _e(name: str, *args: str) -> ContractError:
    """ContractError from "type name" strings, as the Solidity declaration reads."""
    pairs = tuple((a.split()[1], a.split()[0]) for a in args)
    return ContractError(name, pairs)


_V, _S, _A = ViolationKind, Stage, Attack
_PAIR = ("uint32 seller", "uint32 buyer")
_AT = ("uint32 feeder", "uint16 interval")

# fmt: off
RULES: tuple[Rule, ...] = (
    Rule(_V.UNKNOWN_OFFER, _S.TRADE, "", "seller and buyer are offers of the market",
         _e("UnknownOffer", "uint32 offerId"), _A.GHOST_OFFER),
    Rule(_V.NOT_MATCHABLE_KIND, _S.TRADE, "", "the seller is a SELL offer, the buyer a BUY offer",
         _e("NotMatchableKind", *_PAIR), _A.SWAPPED_KINDS),
    Rule(_V.UNKNOWN_FEEDER, _S.TRADE, "", "both offers lie in feeders of the market",
         None, None),  # offers on chain are posted from addresses linked to a known feeder
    Rule(_V.NONPOSITIVE, _S.TRADE, "(17)", "a listed trade moves energy > 0",
         _e("NonPositiveEnergy", *_PAIR, "uint16 interval"), _A.ZERO_ENERGY),
    Rule(_V.NEGATIVE_PRICE, _S.TRADE, "(17)", "price >= 0",
         None, None),  # prices are unsigned in the contract's encoding
    Rule(_V.NOT_MATCHABLE_PRICE, _S.TRADE, "(1)", "seller reservation <= buyer reservation",
         _e("NotMatchablePrice", *_PAIR), _A.CROSSED_PRICES, also=frozenset({_V.PRICE})),
    Rule(_V.NOT_MATCHABLE_INTERVAL, _S.TRADE, "(2)", "the interval lies in both offers' ranges",
         _e("NotMatchableInterval", "uint32 offerId", "uint16 interval"), _A.OUTSIDE_RANGE),
    Rule(_V.FINALIZED_INTERVAL, _S.TRADE, "(12)", "the interval is not finalized yet",
         _e("FinalizedInterval", *_PAIR, "uint16 interval", "uint16 nextFinalize"),
         _A.PAST_INTERVAL),
    Rule(_V.DUPLICATE, _S.TRADE, "", "one trade per (seller, buyer, interval)",
         _e("DuplicateTrade", *_PAIR, "uint16 interval"), _A.COPIED_TRADE),
    Rule(_V.PRICE, _S.TRADE, "(9)", "seller reservation <= price <= buyer reservation",
         _e("PriceOutOfRange", *_PAIR, "uint16 interval", "uint64 price"), _A.PRICE_ABOVE_BUYER),
    Rule(_V.SELL_ENERGY, _S.OFFER, "(3)", "energy sold by a sell offer <= its energy",
         _e("SellEnergyExceeded", "uint32 offerId", "uint256 traded", "uint64 available"),
         _A.OVERDRAWN_OFFER, Kind.SELL),
    Rule(_V.BUY_ENERGY, _S.OFFER, "(4)", "energy bought by a buy offer <= its energy",
         _e("BuyEnergyExceeded", "uint32 offerId", "uint256 traded", "uint64 available"),
         _A.OVERDRAWN_OFFER, Kind.BUY),
    Rule(_V.FEEDER_EXT_OUT, _S.FEEDER, "(5)", "sold - bought <= c_ext",
         _e("FeederExtOut", *_AT, "uint256 netOut", "uint64 cExt"), _A.OVERLOADED_FEEDER,
         Kind.SELL, row=FeederRow(1, -1, "c_ext")),
    Rule(_V.FEEDER_EXT_IN, _S.FEEDER, "(6)", "bought - sold <= c_ext",
         _e("FeederExtIn", *_AT, "uint256 netIn", "uint64 cExt"), _A.OVERLOADED_FEEDER,
         Kind.BUY, row=FeederRow(-1, 1, "c_ext")),
    Rule(_V.FEEDER_INT_CONSUMPTION, _S.FEEDER, "(7)", "bought <= c_int",
         _e("FeederIntConsumption", *_AT, "uint256 consumption", "uint64 cInt"),
         _A.OVERLOADED_FEEDER, Kind.BUY, row=FeederRow(0, 1, "c_int")),
    Rule(_V.FEEDER_INT_PRODUCTION, _S.FEEDER, "(8)", "sold <= c_int",
         _e("FeederIntProduction", *_AT, "uint256 production", "uint64 cInt"),
         _A.OVERLOADED_FEEDER, Kind.SELL, row=FeederRow(1, 0, "c_int")),
)
# fmt: on

# Structural checks of the encoding (contracts/README.md "Solutions"): no verify kind,
# agents.chain.encoding.encode_trades never produces them.
MALFORMED_TRADE = _e("MalformedTrade", "uint256 index")  # bits 208..255 not zero
UNSORTED_TRADES = _e("UnsortedTrades", "uint256 index")  # keys not increasing
ENCODING_ERRORS: tuple[ContractError, ...] = (MALFORMED_TRADE, UNSORTED_TRADES)
# submitSolution's refusals outside the verification (Market.sol), in its order; the
# candidate stays. A solution that does not beat the candidate (`beats_candidate`):
NOT_BETTER = _e("NotBetter", "uint256 objective", "uint256 candidateObjective")
# The T_clear deadline of the first unfinalized interval has passed (before verification):
# finalize() first, so that no solution changes an interval after its deadline.
DEADLINE_PASSED = _e("DeadlinePassed", "uint16 interval", "uint256 finalizableAt")
SUBMISSION_ERRORS: tuple[ContractError, ...] = (
    DEADLINE_PASSED,
    # while a candidate has trades left: before the verification, from the sum of the
    # words' energies (the objective, should it verify), so a copy reverts cheaply and
    # an infeasible solution that does not beat it reverts NotBetter, not with its rule
    NOT_BETTER,
    # (the verification, CONTRACT_ORDER) then with no candidate: an objective of 0
    NOT_BETTER,
)

# The contract's order of checks, by error name (see the module docstring).
CONTRACT_ORDER: tuple[str, ...] = (
    "MalformedTrade",
    "DuplicateTrade",
    "UnsortedTrades",
    "UnknownOffer",
    "NotMatchableKind",
    "NonPositiveEnergy",
    "FinalizedInterval",
    "NotMatchableInterval",
    "NotMatchablePrice",
    "PriceOutOfRange",
    "SellEnergyExceeded",
    "BuyEnergyExceeded",
    "FeederExtOut",
    "FeederExtIn",
    "FeederIntConsumption",
    "FeederIntProduction",
)

RULE_OF: Mapping[ViolationKind, Rule] = {r.kind: r for r in RULES}
REPORT_RANK: Mapping[ViolationKind, int] = {r.kind: i for i, r in enumerate(RULES)}
ONCHAIN: tuple[ViolationKind, ...] = tuple(r.kind for r in RULES if r.onchain)
OFFCHAIN: tuple[ViolationKind, ...] = tuple(r.kind for r in RULES if not r.onchain)
ERROR_OF_KIND: Mapping[ViolationKind, str] = {
    r.kind: r.error.name for r in RULES if r.error is not None
}
KIND_OF_ERROR: Mapping[str, ViolationKind] = {name: k for k, name in ERROR_OF_KIND.items()}
MALFORMED_ERRORS = frozenset(e.name for e in ENCODING_ERRORS)


def beats_candidate(objective: int, candidate: int, min_improvement: int = 1) -> bool:
    """Does a solution of `objective` Wh replace a candidate with `candidate` Wh left?
    While it has trades left, only by `min_improvement` Wh or more (the market's
    min_improvement_wh, >= 1); with none left (0 Wh), any objective above 0 does."""
    return objective >= candidate + min_improvement if candidate > 0 else objective > 0


def verifier_errors() -> tuple[ContractError, ...]:
    """Every custom error the contract's verification of a solution can revert with."""
    return (*ENCODING_ERRORS, *(r.error for r in RULES if r.error is not None))


def contract_order(*stages: Stage) -> tuple[ViolationKind, ...]:
    """The on-chain kinds of `stages` in the order the contract checks them."""
    return tuple(
        KIND_OF_ERROR[name]
        for name in CONTRACT_ORDER
        if name in KIND_OF_ERROR and RULE_OF[KIND_OF_ERROR[name]].stage in stages
    )


def feeder_excess(kind: ViolationKind, feeder: Feeder, sold: int, bought: int) -> int:
    """Wh by which `feeder` in one interval breaks the feeder rule `kind` (<= 0: kept), with
    `sold` Wh sold by its sellers and `bought` Wh bought by its buyers (net flow = sold -
    bought). One more Wh on the rule's `side` moves the excess up by one."""
    row = RULE_OF[kind].row
    if row is None:
        raise ValueError(f"{kind} is not a feeder rule")
    return row.excess(feeder, sold, bought)


def feeder_rows(kinds: Iterable[ViolationKind]) -> tuple[tuple[ViolationKind, FeederRow], ...]:
    """(kind, row) of the feeder rules `kinds`, in that order (for loops over many feeders)."""
    return tuple((k, row) for k in kinds if (row := RULE_OF[k].row) is not None)
