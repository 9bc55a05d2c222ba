"""The pandapower net of a NetworkDescription, built once; `solve` changes only the
loads and runs an AC power flow (Newton-Raphson) warm-started from the previous
results, as pandapower recommends for time series (notes/pandapower-timing.md).

Each prosumer is one load element with a signed active power (consumption > 0,
production < 0, load convention) and reactive power |P|·tan(φ) from the power
factor of consumption or production. A power flow that does not converge is a
result (`converged=False` and the reason), never an exception.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from orchestrator.errors import TestbedError
from orchestrator.grid.model import NetworkDescription

LINE_PARAMETERS = ("r_ohm_per_km", "x_ohm_per_km", "c_nf_per_km", "max_i_ka")
RECYCLE = {"bus_pq": True, "trafo": False, "gen": False}
"""What changes between two intervals: only the loads (PQ of the buses)."""


class GridError(TestbedError):
    """The network cannot be built (e.g. transformers of different MV voltages)."""


@dataclass(frozen=True, slots=True)
class FlowResult:
    """One AC power flow. Voltages of the LV buses (busbars and prosumer buses);
    loading of the feeder cables and head transformers; losses of both."""

    converged: bool
    vm_min_pu: float | None = None
    vm_max_pu: float | None = None
    line_loading_max_percent: float | None = None
    trafo_loading_max_percent: float | None = None
    losses_kw: float | None = None
    buses_undervoltage: int = 0
    buses_overvoltage: int = 0
    lines_overloaded: int = 0
    trafos_overloaded: int = 0
    worst_feeder: int | None = None
    """The feeder of the most loaded cable or transformer."""
    reason: str = ""

    @property
    def violations(self) -> int:
        return (
            self.buses_undervoltage
            + self.buses_overvoltage
            + self.lines_overloaded
            + self.trafos_overloaded
        )


class PowerFlowNetwork:
    """A pandapower net of `description`, ready for one power flow per interval."""

    def __init__(self, description: NetworkDescription, *, numba: bool = False) -> None:
        import pandapower as pp  # heavy: only where a power flow is run

        self._pp = pp
        self._numba = numba  # bench/grid.py: its JIT costs more than a day of flows saves
        self.description = description
        self.net, self._lv_buses, self._line_feeder, self._trafo_feeder = _build(description)
        self._tan_load = _tan(description.load_cos_phi)
        self._tan_sgen = _tan(description.sgen_cos_phi)
        self._warm = False

    def solve(self, injection_mw: np.ndarray) -> FlowResult:
        """AC power flow with each prosumer injecting `injection_mw` (network order,
        > 0 = production)."""
        from pandapower.powerflow import LoadflowNotConverged

        p = -np.asarray(injection_mw, dtype=np.float64)
        q = np.abs(p) * np.where(p >= 0, self._tan_load, self._tan_sgen)
        self.net.load["p_mw"] = p
        self.net.load["q_mvar"] = q
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pandapower's FutureWarnings, per call
                self._run()
        except (LoadflowNotConverged, np.linalg.LinAlgError, ValueError) as exc:
            self._warm = False  # the failed iterate is no start for the next interval
            return FlowResult(converged=False, reason=_reason(exc))
        self._warm = True
        return self._result()

    def _run(self) -> None:
        """After a converged flow only the loads change: pandapower's time-series
        `recycle` keeps the admittance matrix and the internal model and starts
        from the last voltages; it does not raise on divergence, so check."""
        from pandapower.powerflow import LoadflowNotConverged

        if not self._warm:
            self._pp.runpp(self.net, init="auto", numba=self._numba)
            return
        self._pp.runpp(self.net, recycle=RECYCLE)
        ppc = self.net["_ppc"]
        if not ppc.get("success", False):
            raise LoadflowNotConverged(
                f"Power Flow nr did not converge after {int(ppc.get('iterations', 0))} iterations!"
            )

    def _result(self) -> FlowResult:
        net, band = self.net, self.description.band
        vm = net.res_bus.vm_pu.to_numpy()[self._lv_buses]
        lines = net.res_line.loading_percent.to_numpy()
        trafos = net.res_trafo.loading_percent.to_numpy()
        losses_mw = float(net.res_line.pl_mw.sum() + net.res_trafo.pl_mw.sum())
        if not (np.all(np.isfinite(vm)) and np.all(np.isfinite(lines))):
            return FlowResult(converged=False, reason="power flow returned non-finite results")
        worst_line = int(np.argmax(lines)) if len(lines) else None
        worst_trafo = int(np.argmax(trafos))
        if worst_line is not None and lines[worst_line] >= trafos[worst_trafo]:
            worst = int(self._line_feeder[worst_line])
        else:
            worst = int(self._trafo_feeder[worst_trafo])
        limit = band.max_loading_percent
        return FlowResult(
            converged=True,
            vm_min_pu=float(vm.min()),
            vm_max_pu=float(vm.max()),
            line_loading_max_percent=float(lines.max()) if len(lines) else 0.0,
            trafo_loading_max_percent=float(trafos.max()),
            losses_kw=losses_mw * 1000,
            buses_undervoltage=int(np.count_nonzero(vm < band.vm_min_pu)),
            buses_overvoltage=int(np.count_nonzero(vm > band.vm_max_pu)),
            lines_overloaded=int(np.count_nonzero(lines > limit)),
            trafos_overloaded=int(np.count_nonzero(trafos > limit)),
            worst_feeder=worst,
        )


def _tan(cos_phi: float) -> float:
    return math.tan(math.acos(min(max(cos_phi, 0.0), 1.0)))


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no detail'}"


def _build(description: NetworkDescription) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """(net, LV bus indices, feeder of each line, feeder of each transformer).
    Elements are created in bulk (pandapower's create_buses/_lines/_transformers):
    one call per element kind, not per feeder, so a 10x microgrid builds in seconds."""
    import pandapower as pp

    net = pp.create_empty_network(name="te-testbed microgrid")
    feeders = description.feeders
    types = {
        str(f.transformer.std_type): pp.load_std_type(net, str(f.transformer.std_type), "trafo")
        for f in feeders
    }
    hv = {float(t["vn_hv_kv"]) for t in types.values()}
    if len(hv) > 1:
        raise GridError(f"microgrid.grid: transformers of different MV voltages {sorted(hv)} kV")
    mv_bus = pp.create_bus(net, vn_kv=hv.pop() if hv else 20.0, name="mv")
    pp.create_ext_grid(net, mv_bus, vm_pu=description.ext_grid_vm_pu, name="external grid")
    vn_lv = np.array([float(types[str(f.transformer.std_type)]["vn_lv_kv"]) for f in feeders])
    busbars = np.asarray(
        pp.create_buses(net, len(feeders), vn_kv=vn_lv, name=[f"feeder {f.id}" for f in feeders])
    )
    trafo_feeder = _add_transformers(net, feeders, mv_bus, busbars)
    counts = [len(f.prosumers) for f in feeders]
    buses = np.asarray(
        pp.create_buses(
            net,
            sum(counts),
            vn_kv=np.repeat(vn_lv, counts),
            name=[f"p{p}" for p in description.prosumers],
        )
    )
    line_feeder = _add_cables(net, feeders, busbars, buses)
    pp.create_loads(net, buses, p_mw=0.0, q_mvar=0.0)
    return net, np.concatenate([busbars, buses]), line_feeder, trafo_feeder


def _add_transformers(net: Any, feeders: Any, mv_bus: int, busbars: np.ndarray) -> np.ndarray:
    """One head transformer per feeder (one bulk call per type); their feeders."""
    import pandapower as pp

    made: list[int] = []
    for std_type in dict.fromkeys(str(f.transformer.std_type) for f in feeders):
        which = [i for i, f in enumerate(feeders) if str(f.transformer.std_type) == std_type]
        index = pp.create_transformers(
            net, [mv_bus] * len(which), busbars[which], std_type=std_type
        )
        made += which
        for i, trafo in zip(which, index, strict=True):
            if feeders[i].transformer.sn_mva is not None:
                net.trafo.loc[trafo, "sn_mva"] = feeders[i].transformer.sn_mva
    return np.array([feeders[i].id for i in made])


def _add_cables(net: Any, feeders: Any, busbars: np.ndarray, buses: np.ndarray) -> np.ndarray:
    """busbar - p1 - p2 - ... per feeder, in one bulk call; the feeder of each line."""
    import pandapower as pp

    starts: list[int] = []
    ends: list[int] = []
    spans: list[tuple[int, int]] = []  # (first line, count) per feeder
    at = 0
    for feeder, busbar in zip(feeders, busbars, strict=True):
        chain = buses[at : at + len(feeder.prosumers)].tolist()
        spans.append((len(starts), len(chain)))
        starts += [int(busbar), *chain[:-1]] if chain else []
        ends += chain
        at += len(chain)
    if not ends:
        return np.array([], dtype=int)
    per_line = [f for f, (_, n) in zip(feeders, spans, strict=True) for _ in range(n)]
    index = np.asarray(
        pp.create_lines(
            net,
            starts,
            ends,
            length_km=[float(f.line.span_m) / 1000 for f in per_line],
            std_type=[str(f.line.std_type) for f in per_line],
        )
    )
    for feeder, (first, n) in zip(feeders, spans, strict=True):
        for column in LINE_PARAMETERS:
            value = getattr(feeder.line, column)
            if value is not None and n:
                net.line.loc[index[first : first + n], column] = value
    return np.array([f.id for f in per_line])
