"""The compiled market contract (ABI, bytecode, compiler settings), loaded from package data.

contracts/compile.py writes `Market.json` into contracts/build/ and the same file next to
this module, so agents installed without the repository (containers, boards) have it too.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

ARTIFACT_NAME = "Market.json"


@cache
def load_artifact() -> dict[str, Any]:
    """The artefact dictionary: contractName, abi, bytecode, deployedBytecode, compiler,
    settings, source. Cached; do not mutate."""
    from importlib import resources  # with tempfile, shutil...: not at a host's start

    text = resources.files("agents.chain").joinpath(ARTIFACT_NAME).read_text()
    artefact: dict[str, Any] = json.loads(text)
    return artefact


def abi() -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = load_artifact()["abi"]
    return result


def bytecode() -> str:
    return str(load_artifact()["bytecode"])
