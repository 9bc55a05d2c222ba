"""AC power flows with the real pandapower: a known feeder against a hand-computed
voltage drop, an overloaded cable flagged, a grid that cannot carry its load
reported (not raised), and the market / no-market cases of the smoke spec."""

from __future__ import annotations

import cmath
import math
from pathlib import Path

import numpy as np
import pytest

from orchestrator.grid.flow import grid_of_trades, read_csv, summary_lines
from orchestrator.grid.model import Band, FeederNetwork, NetworkDescription
from orchestrator.grid.network import PowerFlowNetwork
from orchestrator.grid.schedule import injections
from orchestrator.replay import grid_text, run_replay
from orchestrator.reports.data import Window, dataset_energy
from orchestrator.reports.figures import png_size
from orchestrator.reports.gridfig import grid_figure, grid_series
from orchestrator.scenario import build_scenario
from orchestrator.spec import load_spec
from orchestrator.spec.grid import GridLine, GridTransformer
from tests.conftest import REPO

SMOKE = REPO / "topologies" / "smoke.yaml"
R, X, SPAN_M = 0.2, 0.08, 200.0  # ohm/km, ohm/km, m: a 200 m cable without capacitance


def one_feeder(prosumers: int = 1, **line: float | str) -> NetworkDescription:
    cable = GridLine(
        std_type=str(line.pop("std_type", "NAYY 4x150 SE")),
        span_m=float(line.pop("span_m", SPAN_M)),
        r_ohm_per_km=R,
        x_ohm_per_km=X,
        c_nf_per_km=0.0,
        **line,  # type: ignore[arg-type]
    )
    feeder = FeederNetwork(
        1, tuple(range(101, 101 + prosumers)), cable, GridTransformer("0.4 MVA 20/0.4 kV")
    )
    return NetworkDescription((feeder,), load_cos_phi=0.95, sgen_cos_phi=1.0, band=Band())


def test_voltage_drop_along_a_cable_matches_the_hand_computation() -> None:
    """30 kW at cos φ 0.95 at the end of 200 m of cable (R = 0.04 Ω, X = 0.016 Ω).

    Exact, from pandapower's end voltage: V_head = V_end + √3·Z·I with
    I = conj(S / (√3·V_end)) (line-to-line phasors, kV and MVA), within 1e-6 p.u.
    The textbook drop ΔV ≈ (P·R + Q·X) / V (= 3.4 V, 0.85 % of 0.4 kV) within 2 %."""
    network = PowerFlowNetwork(one_feeder())
    p_mw = 0.030
    result = network.solve(np.array([-p_mw]))
    assert result.converged
    res = network.net.res_bus
    head, end = 1, 2  # bus 0: MV, 1: the feeder's busbar, 2: the prosumer
    vn = 0.4
    v_head = res.vm_pu[head] * vn * cmath.exp(1j * math.radians(res.va_degree[head]))
    v_end = res.vm_pu[end] * vn * cmath.exp(1j * math.radians(res.va_degree[end]))
    q_mvar = p_mw * math.tan(math.acos(0.95))
    z = complex(R, X) * SPAN_M / 1000
    current = (complex(p_mw, q_mvar) / (math.sqrt(3) * v_end)).conjugate()
    expected_head = v_end + math.sqrt(3) * z * current
    assert abs(expected_head - v_head) / vn < 1e-6
    drop_v = (abs(v_head) - abs(v_end)) * 1000
    textbook_v = (p_mw * z.real + q_mvar * z.imag) / abs(v_head) * 1000
    assert drop_v == pytest.approx(textbook_v, rel=0.02)
    assert textbook_v == pytest.approx(3.4, abs=0.02)
    assert result.vm_min_pu == pytest.approx(res.vm_pu[end])
    assert result.losses_kw and result.losses_kw > 0
    assert result.violations == 0


def test_a_schedule_that_overloads_a_cable_is_flagged() -> None:
    """NAYY 4x150 SE carries 270 A: 3 x 80 kW on one feeder is ~360 A at its head."""
    network = PowerFlowNetwork(one_feeder(3, span_m=30))
    fine = network.solve(np.array([-0.02, -0.02, -0.02]))
    assert fine.converged and fine.lines_overloaded == 0 and fine.violations == 0
    heavy = network.solve(np.array([-0.08, -0.08, -0.08]))
    assert heavy.converged
    assert heavy.line_loading_max_percent is not None and heavy.line_loading_max_percent > 120
    assert heavy.lines_overloaded >= 1
    assert heavy.worst_feeder == 1
    # production pushes the voltage up: with 80 kW each at the end of 600 m it leaves the band
    long_network = PowerFlowNetwork(one_feeder(3, span_m=200))
    back = long_network.solve(np.array([0.0, 0.0, 0.08]))
    assert back.converged and back.buses_overvoltage >= 1 and back.vm_max_pu > 1.05


def test_non_convergence_is_reported_per_interval_not_raised() -> None:
    network = PowerFlowNetwork(one_feeder(3))
    normal = np.array([-0.01, -0.01, -0.01])
    impossible = np.array([-5.0, -5.0, -5.0])  # 15 MW on a 0.4 MVA LV feeder
    # cold (the first flow) and warm (after a converged one: pandapower's recycle path)
    for before in ([], [normal]):
        for injection in before:
            assert network.solve(injection).converged
        failed = network.solve(impossible)
        assert not failed.converged
        assert failed.reason.startswith("LoadflowNotConverged: "), failed.reason
        assert failed.vm_min_pu is None and failed.violations == 0
        recovered = network.solve(normal)  # the next interval starts afresh
        assert recovered.converged and recovered.vm_min_pu is not None


def test_market_and_no_market_cases_of_the_smoke_spec() -> None:
    spec = load_spec(SMOKE, env={})
    scenario = build_scenario(spec)
    summary = run_replay(scenario, "highs")
    grid = summary["grid"]
    assert grid["enabled"] and grid["intervals"] == 8
    assert grid["network"]["feeders"] == 2 and grid["network"]["buses"] == 9
    for case in ("market", "no_market"):
        c = grid[case]
        assert c["not_converged"] == []
        assert 0.9 < c["vm_min_pu"] <= 1.0 <= c["vm_max_pu"] < 1.1
        assert c["losses_kwh"] > 0
    # the baseline is the dataset: production minus consumption, interval by interval
    prosumers = tuple(sorted(p.id for p in scenario.dataset.prosumers))
    injected = injections(scenario, (), prosumers)
    m = spec.market
    production, consumption = dataset_energy(scenario, Window(m.first_interval, m.last_interval))
    net = [production[t] - consumption[t] for t in injected.intervals]
    assert injected.no_market.sum(axis=1).tolist() == net
    # the batteries: with the market, stored energy flows only when traded
    from market.replay import replay

    result = replay(
        scenario.feeders,
        scenario.offers,
        first_interval=m.first_interval,
        last_interval=m.last_interval,
        prediction_window=m.prediction_window,
        t_clear=m.t_clear,
    )
    traded = injections(scenario, result.trades, prosumers)
    assert not np.array_equal(traded.market, traded.no_market)
    assert traded.market.sum() <= traded.no_market.sum()
    assert grid["market"] != grid["no_market"]
    text = grid_text(summary)
    assert text.startswith("grid: 2 feeders, 9 buses, 8 intervals")
    assert "market" in text and "no_market" in text


def test_grid_block_is_deterministic_and_can_be_disabled() -> None:
    spec = load_spec(SMOKE, env={})
    scenario = build_scenario(spec)
    first = grid_of_trades(scenario, ()).block()
    again = grid_of_trades(scenario, ()).block()
    first.pop("seconds"), again.pop("seconds")
    assert first == again
    off = load_spec(SMOKE, ["microgrid.grid.enabled=false"], env={})
    summary = run_replay(build_scenario(off), "highs")
    assert summary["grid"] == {"enabled": False}
    assert summary_lines(summary["grid"])[0].startswith("grid: power flow disabled")


def test_warm_started_flows_equal_fresh_ones() -> None:
    """The recycled model (admittance matrix kept, last voltages as the start) gives
    what a freshly built net gives, interval after interval."""
    loads = [np.array([-0.02, 0.01, -0.03]), np.array([0.05, -0.01, 0.02]), np.zeros(3)]
    warm = PowerFlowNetwork(one_feeder(3))
    for injection in loads:
        recycled = warm.solve(injection)
        fresh = PowerFlowNetwork(one_feeder(3)).solve(injection)
        assert recycled.vm_min_pu == pytest.approx(fresh.vm_min_pu, abs=1e-6)
        assert recycled.vm_max_pu == pytest.approx(fresh.vm_max_pu, abs=1e-6)
        assert recycled.line_loading_max_percent == pytest.approx(
            fresh.line_loading_max_percent, abs=1e-3
        )
        assert recycled.losses_kw == pytest.approx(fresh.losses_kw, rel=1e-4)


def test_an_undersized_transformer_fails_some_intervals_and_the_rest_is_reported(
    tmp_path: Path,
) -> None:
    """8 kVA head transformers (sn_mva overridden): the heavy intervals do not
    converge, each with its reason; the others are computed; CSV and figure follow."""
    spec = load_spec(SMOKE, ["microgrid.grid.transformer.sn_mva=0.008"], env={})
    result = grid_of_trades(build_scenario(spec), ())
    block = result.block()
    failed = block["market"]["not_converged"]
    assert failed and len(failed) < 8
    assert all(f["reason"].startswith("LoadflowNotConverged: ") for f in failed)
    assert block["market"]["vm_min_pu"] is not None  # from the intervals that converged
    assert block["market"]["vm_min_pu"] < 0.95 and block["market"]["intervals_undervoltage"] > 0
    rows = result.rows()
    assert sum(not r["converged"] for r in rows if r["case"] == "market") == len(failed)
    csv_path = result.write_csv(tmp_path / "grid.csv")
    series = grid_series(read_csv(csv_path), Window(49, 56), block["network"]["band"], "t")
    assert list(series.cases["market"].failed) == [f["interval"] for f in failed]
    width, height = png_size(grid_figure(series, tmp_path / "grid.png"))
    assert width > 600 and height > 400
    assert "not converged" in " ".join(summary_lines(block))
