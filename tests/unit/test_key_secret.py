"""A key secret file: hex digits, at least 16 bytes; anything else is refused
with the file named, before anything starts (exit 2). The fingerprint tells two
secrets apart and is not the secret."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.planning import KeySecretError, key_secret_fingerprint, read_key_secret
from tests.conftest import REPO


def test_hex_digits_are_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "run.key"
    path.write_text("  " + "ab" * 32 + "\n")
    assert read_key_secret(path) == bytes([0xAB]) * 32
    printed = key_secret_fingerprint(bytes([0xAB]) * 32)
    assert len(printed) == 16 and printed not in ("ab" * 32)
    assert printed != key_secret_fingerprint(bytes([0xAC]) * 32)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("not hex at all", "expected hex digits only"),
        ("ab" * 15, "15 bytes; at least 16 (32 hex digits) are needed"),
        ("", "0 bytes"),
    ],
)
def test_a_bad_secret_file_is_refused(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "run.key"
    path.write_text(text)
    with pytest.raises(KeySecretError, match=re.escape(why)) as err:
        read_key_secret(path)
    assert str(path) in str(err.value) and err.value.exit_code == 2


def test_testbed_run_refuses_a_missing_secret_file_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path / "state"))
    missing = tmp_path / "nowhere.key"
    spec = str(REPO / "topologies" / "smoke.yaml")
    out = tmp_path / "results"
    code = main(["run", spec, "--quiet", "--out", str(out), "--key-secret-file", str(missing)])
    assert code == 2
    assert capsys.readouterr().err.startswith(f"key secret file {missing}: cannot read it")
    assert not out.exists()  # no bundle: nothing started
