"""The `microgrid.grid` section resolved against a dataset: which buses, cables and
transformers the network has and where each prosumer sits. Plain data, no
pandapower (orchestrator/grid/network.py builds the pandapower net from this).

Topology, per feeder f of the dataset: the external grid (slack) at an MV bus; a
head transformer MV -> the feeder's LV busbar; then the feeder's prosumers in id
order, each on its own bus, chained by `span_m` of cable (busbar - p1 - p2 - ...).
Every feeder hangs off the same MV bus.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.datasets import Dataset
from orchestrator.errors import SpecError
from orchestrator.spec.grid import GridConfig, GridLine, GridTransformer


@dataclass(frozen=True, slots=True)
class Band:
    """What counts as a violation."""

    vm_min_pu: float = 0.95
    vm_max_pu: float = 1.05
    max_loading_percent: float = 100.0


@dataclass(frozen=True, slots=True)
class FeederNetwork:
    id: int
    prosumers: tuple[int, ...]
    """Prosumer ids along the cable, nearest to the transformer first."""
    line: GridLine
    transformer: GridTransformer


@dataclass(frozen=True, slots=True)
class NetworkDescription:
    feeders: tuple[FeederNetwork, ...]
    ext_grid_vm_pu: float = 1.0
    load_cos_phi: float = 0.95
    sgen_cos_phi: float = 1.0
    band: Band = Band()

    @property
    def prosumers(self) -> tuple[int, ...]:
        """Every prosumer, in the network's order (feeder by feeder, along the cable)."""
        return tuple(p for f in self.feeders for p in f.prosumers)

    @property
    def buses(self) -> int:
        """MV bus + one busbar per feeder + one bus per prosumer."""
        return 1 + len(self.feeders) + len(self.prosumers)

    def summary(self) -> dict[str, object]:
        lines = sorted({str(f.line.std_type) for f in self.feeders})
        trafos = sorted({str(f.transformer.std_type) for f in self.feeders})
        spans = sorted({float(f.line.span_m or 0) for f in self.feeders})
        return {
            "feeders": len(self.feeders),
            "buses": self.buses,
            "lines": len(self.prosumers),
            "transformers": len(self.feeders),
            "line_std_types": lines,
            "transformer_std_types": trafos,
            "span_m": spans,
            "band": {
                "vm_min_pu": self.band.vm_min_pu,
                "vm_max_pu": self.band.vm_max_pu,
                "max_loading_percent": self.band.max_loading_percent,
            },
        }


def describe_network(
    config: GridConfig, dataset: Dataset, source: str | None = None
) -> NetworkDescription:
    """The radial network of `dataset`'s feeders and prosumers under `config`."""
    present = set(dataset.feeders)
    where = f"{source}: " if source else ""
    problems = [
        f"{where}microgrid.grid.feeders[{i}].id: feeder {f.id} is not in the dataset"
        for i, f in enumerate(config.feeders)
        if f.id not in present
    ]
    if problems:
        raise SpecError(problems)
    by_feeder: dict[int, list[int]] = {f: [] for f in dataset.feeders}
    for prosumer in dataset.prosumers:
        by_feeder[prosumer.feeder].append(prosumer.id)
    feeders = tuple(
        FeederNetwork(
            feeder_id,
            tuple(sorted(ids)),
            config.line_of(feeder_id),
            config.transformer_of(feeder_id),
        )
        for feeder_id, ids in sorted(by_feeder.items())
    )
    band = Band(config.vm_min_pu, config.vm_max_pu, config.max_loading_percent)
    return NetworkDescription(
        feeders, config.ext_grid_vm_pu, config.load_cos_phi, config.sgen_cos_phi, band
    )
