"""Spec loading and validation, datasets, planning, backends, runs, results, CLI."""

__version__ = "0.1.0"
