"""The committed contract artefacts are exactly what the pinned compiler makes of the source."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

from tests.conftest import REPO, require_tool

BUILD = REPO / "contracts" / "build"
PACKAGE_COPY = REPO / "agents" / "chain" / "Market.json"


def _compile_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "contracts_compile", REPO / "contracts/compile.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_source_hash_of_committed_artefact_matches_the_source() -> None:
    artefact = json.loads((BUILD / "Market.json").read_text())
    sources = sorted((REPO / "contracts").glob("*.sol"))
    assert artefact["sources"] == {
        f"contracts/{path.name}": hashlib.sha256(path.read_bytes()).hexdigest() for path in sources
    }
    assert artefact["compiler"]["version"].startswith("0.8.28+")
    assert artefact["settings"]["optimizer"] == {"enabled": True, "runs": 100000}
    assert PACKAGE_COPY.read_bytes() == (BUILD / "Market.json").read_bytes()


def test_recompiling_reproduces_the_committed_artefacts_byte_for_byte(tmp_path: Path) -> None:
    solcjs = require_tool("solcjs")
    compile_py = _compile_module()
    code = compile_py.main(
        [
            "--out",
            str(tmp_path / "build"),
            "--package-out",
            str(tmp_path / "pkg.json"),
            "--solcjs",
            solcjs,
        ]
    )
    assert code == 0
    for name in ("Market.json", "Market.abi.json"):
        assert (tmp_path / "build" / name).read_bytes() == (BUILD / name).read_bytes(), name
    assert (tmp_path / "pkg.json").read_bytes() == PACKAGE_COPY.read_bytes()
    artefact = json.loads((tmp_path / "build" / "Market.json").read_text())
    assert len(artefact["bytecode"]) > len(artefact["deployedBytecode"]) > 1000
