"""The backend registry (orchestrator/spec/backends.py): one data-only entry per
backend, read by the spec, the CLI, the planner and `run`/`clean`."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.backends import backend_class
from orchestrator.backends.base import Backend, backend_state_root
from orchestrator.cli import build_parser
from orchestrator.spec import DeploymentConfig, json_schema
from orchestrator.spec.backends import BACKENDS, NAMES, backend_entry


def test_reading_the_registry_imports_no_backend() -> None:
    """The spec and the backends package load no implementation (nor the docker
    SDK or paramiko) until a backend is asked for."""
    code = (
        "import sys, orchestrator.spec, orchestrator.backends\n"
        "from orchestrator.spec.backends import BACKENDS\n"
        "assert BACKENDS['docker'].fault_actions\n"
        "heavy = ['docker', 'paramiko'] + ['orchestrator.backends.' + n for n in BACKENDS]\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", NAMES)
def test_each_entry_names_its_implementation(name: str) -> None:
    cls = backend_class(name)
    assert issubclass(cls, Backend) and cls.name == name


@pytest.mark.parametrize("name", NAMES)
def test_settings_are_the_specs_section_of_that_name(name: str) -> None:
    settings = backend_entry(name).settings
    fields = {f.name: f for f in dataclasses.fields(DeploymentConfig)}
    if settings is None:
        assert name not in fields
    else:
        assert isinstance(getattr(DeploymentConfig(), name), settings)


def test_schema_enum_and_cli_choices_come_from_the_registry() -> None:
    deployment = json_schema()["properties"]["deployment"]["properties"]
    assert deployment["backend"]["enum"] == list(NAMES)
    assert {"local", "docker", "ssh"} <= set(NAMES)
    parser = build_parser()
    for name in NAMES:
        assert parser.parse_args(["run", "spec.yaml", "--backend", name]).backend == name
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "spec.yaml", "--backend", "kubernetes"])


def test_state_dirs_are_distinct_and_under_the_state_root(tmp_path: Path) -> None:
    dirs = {backend_state_root(name, tmp_path) for name in NAMES}
    assert len(dirs) == len(NAMES) and all(d.parent == tmp_path for d in dirs)
    assert backend_state_root("local", tmp_path).name == "runs"


def test_default_prosumers_per_host() -> None:
    local, docker = backend_entry("local"), backend_entry("docker")
    assert [local.default_prosumers_per_host(n) for n in (0, 1, 4, 5, 102)] == [1, 1, 1, 2, 26]
    assert docker.default_prosumers_per_host(102) == 4  # the paper: 102 prosumers, 31 boards
    assert BACKENDS["ssh"].hosts_need_address and not local.hosts_need_address
