"""Experiment specs: YAML in, a frozen, validated `Spec` out.

    spec = load_spec("topologies/smoke.yaml", ["market.prediction_window=5"])

Errors: SpecError with one `file:line:col: dotted.path: message` per problem.
"""

from orchestrator.spec.loader import load_spec, parse_spec
from orchestrator.spec.model import (
    ChainConfig,
    DatasetConfig,
    DeploymentConfig,
    FeederLimits,
    FeedersConfig,
    HostConfig,
    MarketConfig,
    MetricsConfig,
    MicrogridConfig,
    PricesConfig,
    PrometheusConfig,
    SolverConfig,
    Spec,
)
from orchestrator.spec.schema import json_schema

__all__ = [
    "ChainConfig",
    "DatasetConfig",
    "DeploymentConfig",
    "FeederLimits",
    "FeedersConfig",
    "HostConfig",
    "MarketConfig",
    "MetricsConfig",
    "MicrogridConfig",
    "PricesConfig",
    "PrometheusConfig",
    "SolverConfig",
    "Spec",
    "json_schema",
    "load_spec",
    "parse_spec",
]
