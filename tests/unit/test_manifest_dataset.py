"""The manifest's dataset content hash (what `testbed rerun` checks) and the
orchestrator process it records (what `ps`, `logs -f` and `prune` check)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import psutil

from orchestrator.datasets import load_transax, synthesize, write_transax
from orchestrator.results.manifest import build_manifest, dataset_hash, dataset_record
from orchestrator.spec import DatasetConfig


def test_the_hash_follows_the_offers_not_the_file_format(tmp_path: Path) -> None:
    dataset = synthesize(3, battery=True)
    write_transax(dataset, tmp_path)
    assert dataset_hash(load_transax(tmp_path)) == dataset_hash(dataset)
    assert dataset_hash(synthesize(3, battery=True)) == dataset_hash(dataset)
    assert dataset_hash(synthesize(4, battery=True)) != dataset_hash(dataset)
    first = dataset.prosumers[0]
    one_wh_more = dataclasses.replace(first.offers[0], energy_wh=first.offers[0].energy_wh + 1)
    changed = dataclasses.replace(first, offers=(one_wh_more, *first.offers[1:]))
    edited = dataclasses.replace(dataset, prosumers=(changed, *dataset.prosumers[1:]))
    assert dataset_hash(edited) != dataset_hash(dataset)
    assert dataset_hash(dataset.select(prosumers=[101])) != dataset_hash(dataset)


def test_the_manifest_records_the_dataset_and_this_orchestrator(tmp_path: Path) -> None:
    dataset = synthesize(1).select(feeders=[1])
    record = dataset_record(DatasetConfig(kind="synthetic", seed=1), dataset)
    assert record == {
        "kind": "synthetic",
        "path": None,
        "prosumers": 9,
        "content_hash": dataset_hash(dataset),
    }
    manifest = build_manifest(
        run_id="r", spec_name="s", spec_file=None, seed=1, backend="local", argv=[]
    )
    me = psutil.Process()
    assert manifest["orchestrator"]["pid"] == me.pid
    assert manifest["orchestrator"]["create_time"] == me.create_time()
