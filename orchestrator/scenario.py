"""Runtime inputs built from a spec: the resolved dataset, the market's
feeders (limits in Wh per interval) and offers, and who owns each offer.

This is where the spec meets I/O (reading or generating traces); the spec
itself stays pure data."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from market.types import Feeder, Offer
from orchestrator.datasets import (
    Dataset,
    OwnedOffer,
    load_transax,
    owned_offers,
    synthesize,
)
from orchestrator.datasets.references import Where, check_references
from orchestrator.errors import DatasetError, SpecError
from orchestrator.spec import DatasetConfig, Spec


@dataclass(frozen=True)
class Scenario:
    """A spec with its dataset resolved into market inputs."""

    spec: Spec
    dataset: Dataset
    feeders: tuple[Feeder, ...]
    owned: tuple[OwnedOffer, ...]
    """Market offers of the spec's interval window, ids 1..n, with owners."""

    @cached_property
    def offers(self) -> tuple[Offer, ...]:
        return tuple(o.offer for o in self.owned)

    @cached_property
    def _by_prosumer(self) -> dict[int, tuple[Offer, ...]]:
        """Offers by owner, built once: planning asks for every prosumer's."""
        mine: dict[int, list[Offer]] = {}
        for o in self.owned:
            mine.setdefault(o.prosumer, []).append(o.offer)
        return {prosumer: tuple(offers) for prosumer, offers in mine.items()}

    def offers_of(self, prosumer_id: int) -> tuple[Offer, ...]:
        return self._by_prosumer.get(prosumer_id, ())


def load_dataset(config: DatasetConfig, where: Where | None = None) -> Dataset:
    """The traces a spec's `microgrid.dataset` describes, selection applied.
    `where(dotted path)` prefixes reference errors with the spec's
    file:line:col (`Spec.where`); they are checked before anything is read."""
    if where is not None:
        check_references(
            config.kind,
            path=config.path,
            scale=config.scale,
            feeders=config.feeders,
            prosumers=config.prosumers,
            where=where,
        )
    if config.kind == "synthetic":
        dataset = synthesize(
            config.seed or 0,
            battery=config.battery,
            scale=config.scale,
            battery_capacity_kwh=config.battery_capacity_kwh,
            battery_rate_kwh=config.battery_rate_kwh,
        )
    elif config.kind == "transax" and config.path is not None:
        dataset = load_transax(config.path)
    else:
        raise DatasetError(f"microgrid.dataset: cannot load kind {config.kind!r}")
    return select(dataset, config.feeders, config.prosumers)


def select(
    dataset: Dataset, feeders: tuple[int, ...] | None, prosumers: tuple[int, ...] | None
) -> Dataset:
    """`dataset.select(...)`, but unknown feeders or prosumers are errors."""
    problems = []
    if feeders is not None:
        known = set(dataset.feeders)
        missing = [f for f in feeders if f not in known]
        if missing:
            problems.append(
                f"microgrid.dataset.feeders: {_ids(missing)} not in the dataset "
                f"(feeders {_span(dataset.feeders)})"
            )
    if prosumers is not None:
        known = {p.id for p in dataset.prosumers}
        missing = [p for p in prosumers if p not in known]
        if missing:
            problems.append(f"microgrid.dataset.prosumers: {_ids(missing)} not in the dataset")
    if problems:
        raise DatasetError("\n".join(problems))
    return dataset.select(feeders, prosumers)


def build_scenario(spec: Spec) -> Scenario:
    """Load the spec's dataset and derive the market inputs of its window."""
    dataset = load_dataset(spec.microgrid.dataset, spec.where)
    present = set(dataset.feeders)
    problems = [
        f"{spec.where(f'microgrid.feeders.overrides[{i}].id')}: feeder {o.id} is not in the "
        "dataset "
        f"(feeders {_span(dataset.feeders)})"
        for i, o in enumerate(spec.microgrid.feeders.overrides)
        if o.id not in present
    ]
    if problems:
        raise SpecError(problems)
    market = spec.market
    prices = spec.microgrid.prices
    owned = owned_offers(
        dataset, prices.sell, prices.buy, market.first_interval, market.last_interval
    )
    feeders = tuple(spec.feeder(f) for f in dataset.feeders)
    return Scenario(spec, dataset, feeders, tuple(owned))


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids)) + (" is" if len(ids) == 1 else " are")


def _span(ids: tuple[int, ...]) -> str:
    """1..11 for a contiguous range, else the list."""
    if ids and list(ids) == list(range(ids[0], ids[-1] + 1)) and len(ids) > 2:
        return f"{ids[0]}..{ids[-1]}"
    return ", ".join(map(str, ids))
