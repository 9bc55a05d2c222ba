"""The `microgrid.grid` section: its JSON Schema and its frozen dataclasses.

Only the standard library here: orchestrator.spec imports this module (pandapower
is imported by orchestrator.grid.network, only when a power flow is run).

The network (orchestrator/grid/model.py): per feeder, a head transformer from the
external grid's MV bus to the feeder's LV busbar, then one bus per prosumer along
a radial cable, in prosumer id order, `span_m` apart. Defaults: a European LV
feeder (20/0.4 kV, 0.4 MVA transformer, NAYY 4x150 SE cable, 30 m spans).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# pandapower's standard types (pandapower.std_types), so that a misspelt name is a
# spec error at file:line:col with a "did you mean"; tests/unit/test_grid_model.py
# checks that every name here is one pandapower knows.
LINE_STD_TYPES = (
    "NAYY 4x50 SE",
    "NAYY 4x120 SE",
    "NAYY 4x150 SE",
    "NA2XS2Y 1x95 RM/25 12/20 kV",
    "NA2XS2Y 1x185 RM/25 12/20 kV",
    "NA2XS2Y 1x240 RM/25 12/20 kV",
    "NA2XS2Y 1x150 RM/25 12/20 kV",
    "15-AL1/3-ST1A 0.4",
    "24-AL1/4-ST1A 0.4",
    "48-AL1/8-ST1A 0.4",
    "94-AL1/15-ST1A 0.4",
)
TRAFO_STD_TYPES = (
    "0.25 MVA 20/0.4 kV",
    "0.4 MVA 20/0.4 kV",
    "0.63 MVA 20/0.4 kV",
    "0.25 MVA 10/0.4 kV",
    "0.4 MVA 10/0.4 kV",
    "0.63 MVA 10/0.4 kV",
)
DEFAULT_LINE = "NAYY 4x150 SE"
DEFAULT_TRAFO = "0.4 MVA 20/0.4 kV"


def _number(description: str, default: float | None = None, **bounds: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number", "description": description, **bounds}
    if default is not None:
        schema["default"] = default
    return schema


def _object(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties, **extra}


_LINE_PARAMETERS = {
    "r_ohm_per_km": _number("Overrides the type's resistance.", minimum=0),
    "x_ohm_per_km": _number("Overrides the type's reactance.", minimum=0),
    "c_nf_per_km": _number("Overrides the type's capacitance.", minimum=0),
    "max_i_ka": _number(
        "Overrides the type's thermal current (100 % loading).", exclusiveMinimum=0
    ),
}

GRID_LINE = _object(
    {
        "std_type": {"enum": list(LINE_STD_TYPES), "description": "pandapower line type."},
        "span_m": _number("Cable length between two prosumer buses.", exclusiveMinimum=0),
        **_LINE_PARAMETERS,
    },
    description="The feeder cable.",
)

GRID_TRANSFORMER = _object(
    {
        "std_type": {
            "enum": list(TRAFO_STD_TYPES),
            "description": "pandapower transformer type (its rated voltages are the buses').",
        },
        "sn_mva": _number("Overrides the type's rating (100 % loading).", exclusiveMinimum=0),
    },
    description="The feeder head transformer to the external grid.",
)

GRID_FEEDER = _object(
    {
        "id": {"type": "integer", "minimum": 1, "description": "Feeder id."},
        "line": GRID_LINE,
        "transformer": GRID_TRANSFORMER,
    },
    required=["id"],
)

GRID: dict[str, Any] = _object(
    {
        "enabled": {
            "type": "boolean",
            "default": True,
            "description": "Run an AC power flow of every interval (market and no market).",
        },
        "ext_grid_vm_pu": _number("Voltage of the external grid (slack).", 1.0, exclusiveMinimum=0),
        "line": {
            **GRID_LINE,
            "default": {},
            "properties": {
                **GRID_LINE["properties"],
                "std_type": {**GRID_LINE["properties"]["std_type"], "default": DEFAULT_LINE},
                "span_m": {**GRID_LINE["properties"]["span_m"], "default": 30},
            },
        },
        "transformer": {
            **GRID_TRANSFORMER,
            "default": {},
            "properties": {
                **GRID_TRANSFORMER["properties"],
                "std_type": {
                    **GRID_TRANSFORMER["properties"]["std_type"],
                    "default": DEFAULT_TRAFO,
                },
            },
        },
        "load_cos_phi": _number(
            "Power factor of consumption (inductive).", 0.95, minimum=0.1, maximum=1
        ),
        "sgen_cos_phi": _number("Power factor of production.", 1.0, minimum=0.1, maximum=1),
        "vm_min_pu": _number("Lower end of the voltage band.", 0.95, exclusiveMinimum=0),
        "vm_max_pu": _number("Upper end of the voltage band.", 1.05, exclusiveMinimum=0),
        "max_loading_percent": _number(
            "Line and transformer loading above this is a violation.", 100, exclusiveMinimum=0
        ),
        "feeders": {
            "type": "array",
            "default": [],
            "items": GRID_FEEDER,
            "description": "Per-feeder line or transformer that differ from the defaults above.",
        },
    },
    default={},
    description="The physical network under the market: an AC power flow (pandapower) of every "
    "interval's finalized schedule and of the same interval without a local market.",
)


@dataclass(frozen=True, slots=True)
class GridLine:
    std_type: str | None = None
    span_m: float | None = None
    r_ohm_per_km: float | None = None
    x_ohm_per_km: float | None = None
    c_nf_per_km: float | None = None
    max_i_ka: float | None = None


@dataclass(frozen=True, slots=True)
class GridTransformer:
    std_type: str | None = None
    sn_mva: float | None = None


@dataclass(frozen=True, slots=True)
class GridFeeder:
    id: int
    line: GridLine | None = None
    transformer: GridTransformer | None = None


@dataclass(frozen=True, slots=True)
class GridConfig:
    enabled: bool = True
    ext_grid_vm_pu: float = 1.0
    line: GridLine = GridLine(DEFAULT_LINE, 30)
    transformer: GridTransformer = GridTransformer(DEFAULT_TRAFO)
    load_cos_phi: float = 0.95
    sgen_cos_phi: float = 1.0
    vm_min_pu: float = 0.95
    vm_max_pu: float = 1.05
    max_loading_percent: float = 100
    feeders: tuple[GridFeeder, ...] = ()

    def line_of(self, feeder_id: int) -> GridLine:
        """The default line with feeder `feeder_id`'s overrides applied."""
        return _merged(self.line, *(f.line for f in self.feeders if f.id == feeder_id))

    def transformer_of(self, feeder_id: int) -> GridTransformer:
        return _merged(
            self.transformer, *(f.transformer for f in self.feeders if f.id == feeder_id)
        )


def _merged(base: Any, *overrides: Any) -> Any:
    """`base` with every non-None field of the overrides (dataclasses of its type)."""
    values = {name: getattr(base, name) for name in base.__slots__}
    for override in overrides:
        if override is None:
            continue
        values.update({n: getattr(override, n) for n in values if getattr(override, n) is not None})
    return type(base)(**values)
