"""The command a user types, on the sample shipped in the repository."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from radiograph_deid.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_redact_shipped_sample(tmp_path: Path, key_overrides: list[str], capsys) -> None:
    out = tmp_path / "out"
    code = main(["redact", str(REPO / "examples" / "sample"), str(out), "--no-progress",
                 "--key-file", key_overrides[0].split("=", 1)[1]])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and printed["written"] == 3 and printed["quarantined"] == 0
    assert (out / "ward3" / "portable_dx.dcm").is_file() and (out / "ward3" / "bedside.png").is_file()
    summary = json.loads((out / ".deid" / "summary.json").read_text())
    assert summary["config"]["verify"]["enabled"] is True
    assert "secret" not in json.dumps(summary["config"]).lower().replace("secret.key", "")


def test_configuration_error_exits_2_with_a_message(tmp_path: Path, capsys) -> None:
    code = main(["redact", str(tmp_path), str(tmp_path / "o"), "--set", "detector.long_side=7"])
    assert code == 2 and "detector.long_side" in capsys.readouterr().err


def test_missing_input_exits_2(tmp_path: Path, key_overrides: list[str], capsys) -> None:
    code = main(["redact", str(tmp_path / "nope"), str(tmp_path / "o"), "--set", key_overrides[0]])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_an_output_that_cannot_be_made_exits_2_with_the_reason(tmp_path: Path, key_overrides: list[str], capsys) -> None:
    """OUTPUT under a plain file: the run died with a traceback (NotADirectoryError)."""
    (tmp_path / "in").mkdir()
    (tmp_path / "a-file").write_text("not a folder")
    code = main(["redact", str(tmp_path / "in"), str(tmp_path / "a-file" / "out"), "--set", key_overrides[0]])
    err = capsys.readouterr().err
    assert code == 2 and "Not a directory" in err and "Traceback" not in err


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).with_name("radiograph-deid")
    result = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("radiograph-deid ")
