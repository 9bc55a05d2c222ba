"""Compile contracts/Market.sol (and the SolutionVerifier.sol it imports) with the pinned npm
solc into deterministic artefacts.

    .venv/bin/python contracts/compile.py [--out DIR] [--package-out FILE] [--solcjs PATH]

Writes `Market.json` (ABI, creation and runtime bytecode, compiler version, the exact
settings, the sources' sha256) and `Market.abi.json` into contracts/build/, plus a copy of
`Market.json` into agents/chain/ so that the agents find it as package data when they are
installed without the repository (container images, boards). Same source, same compiler,
same bytes: tests/integration/test_contract_build.py recompiles into a temporary directory
and compares with the committed files.

Settings: optimizer on with runs = 100000: the optimizer then favours runtime gas over code
size (constants pushed rather than rebuilt, ~10% less gas per verified trade than runs = 200;
runtime code ~13 KB, under the 24 KB limit). viaIR, so the assembly verifier's many locals
can be moved off the stack. EVM version cancun. The metadata hash is kept (it depends only on
source and settings).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SOURCES = (
    "Market.sol",
    "MarketBase.sol",
    "SolutionVerifier.sol",
    "GrantSignature.sol",
)  # contracts/<name>, imported as "./<name>"
CONTRACT = "Market"
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 100000},
    "viaIR": True,
    "evmVersion": "cancun",
    "outputSelection": {
        "Market.sol": {
            "Market": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata"]
        }
    },
}


class CompileError(Exception):
    """solc failed or reported errors."""


def solcjs_path() -> Path:
    return Path(os.environ.get("SOLCJS", REPO / "node_modules" / ".bin" / "solcjs"))


def compile_market(solcjs: Path) -> dict[str, Any]:
    """The artefact dictionary of Market.sol (raises CompileError)."""
    sources = {name: (REPO / "contracts" / name).read_text() for name in SOURCES}
    request = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": SETTINGS,
    }
    # solcjs exits before a piped stdout is drained (output cut at 64 KiB): use a file.
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.run(
            [str(solcjs), "--standard-json"],
            input=json.dumps(request),
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise CompileError(f"solcjs exited {proc.returncode}: {proc.stderr.strip()}")
    try:
        # solcjs may print a banner before the JSON document.
        output = json.loads(text[text.index("{") :])
    except ValueError as exc:
        raise CompileError(f"solcjs printed no JSON document: {text[:200]!r}") from exc
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError("\n".join(e.get("formattedMessage", e["message"]) for e in errors))
    out = output["contracts"]["Market.sol"][CONTRACT]
    metadata = json.loads(out["metadata"])
    return {
        "contractName": CONTRACT,
        "abi": out["abi"],
        "bytecode": "0x" + out["evm"]["bytecode"]["object"],
        "deployedBytecode": "0x" + out["evm"]["deployedBytecode"]["object"],
        "compiler": {"name": "solc (npm solc, solcjs)", "version": metadata["compiler"]["version"]},
        "settings": {k: v for k, v in SETTINGS.items() if k != "outputSelection"},
        "sources": {
            f"contracts/{name}": hashlib.sha256(text.encode()).hexdigest()
            for name, text in sources.items()
        },
    }


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True) + "\n"


def write_artefacts(artefact: dict[str, Any], out_dir: Path, package_out: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    package_out.parent.mkdir(parents=True, exist_ok=True)
    files = {
        out_dir / f"{CONTRACT}.json": dump(artefact),
        out_dir / f"{CONTRACT}.abi.json": dump(artefact["abi"]),
        package_out: dump(artefact),
    }
    for path, text in files.items():
        path.write_text(text)
    return list(files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "contracts" / "build")
    parser.add_argument(
        "--package-out", type=Path, default=REPO / "agents" / "chain" / f"{CONTRACT}.json"
    )
    parser.add_argument("--solcjs", type=Path, default=solcjs_path())
    args = parser.parse_args(argv)
    try:
        artefact = compile_market(args.solcjs)
    except (CompileError, OSError) as exc:
        print(f"compile.py: {exc}", file=sys.stderr)
        return 1
    for path in write_artefacts(artefact, args.out, args.package_out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
