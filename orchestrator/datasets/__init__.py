"""Offer traces: the TRANSAX format, the seeded synthetic microgrid, and the
conversion to market offers."""

from orchestrator.datasets.battery import add_battery, charge_start
from orchestrator.datasets.model import (
    INTERVALS_PER_DAY,
    Dataset,
    ProsumerTrace,
    TraceOffer,
    feeder_of,
)
from orchestrator.datasets.offers import (
    OwnedOffer,
    offers_by_prosumer,
    owned_offers,
    to_market_offers,
)
from orchestrator.datasets.synthetic import synthesize
from orchestrator.datasets.transax import format_kwh, load_transax, write_transax

__all__ = [
    "INTERVALS_PER_DAY",
    "Dataset",
    "OwnedOffer",
    "ProsumerTrace",
    "TraceOffer",
    "add_battery",
    "charge_start",
    "feeder_of",
    "format_kwh",
    "load_transax",
    "offers_by_prosumer",
    "owned_offers",
    "synthesize",
    "to_market_offers",
    "write_transax",
]
