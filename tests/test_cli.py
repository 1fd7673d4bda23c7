"""The command a user types, on the sample shipped in the repository."""
from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom

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


def test_a_steward_looks_up_what_a_run_gave_a_patient_and_a_study(tmp_path: Path, capsys) -> None:
    """The pseudonym, date shift and study UID printed are those the run wrote; a lookup never makes a key."""
    src = REPO / "examples" / "sample" / "chest_cr_monochrome1.dcm"
    (tmp_path / "in").mkdir()
    shutil.copy(src, tmp_path / "in" / src.name)
    key, dates = str(tmp_path / "k" / "secret.key"), "header.retain_longitudinal_modified_dates=true"
    assert main(["redact", str(tmp_path / "in"), str(tmp_path / "out"), "--no-progress", "--key-file", key,
                 "--set", dates]) == 0
    before = pydicom.dcmread(src, stop_before_pixels=True)
    after = pydicom.dcmread(tmp_path / "out" / src.name, stop_before_pixels=True)
    (tmp_path / "ids.txt").write_text(f"OTHER-1\n\n{before.PatientID}\n")
    capsys.readouterr()
    assert main(["pseudonym", "--from", str(tmp_path / "ids.txt"), "--uid", before.StudyInstanceUID,
                 "--key-file", key, "--set", dates]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r.get("patient_id") for r in rows] == ["OTHER-1", before.PatientID, None]
    patient, study = rows[1], rows[2]
    assert patient["pseudonym"] == after.PatientID == str(after.PatientName) != rows[0]["pseudonym"]
    shifted = dt.datetime.strptime(before.StudyDate, "%Y%m%d") + dt.timedelta(days=patient["date_shift_days"])
    assert after.StudyDate == shifted.strftime("%Y%m%d") != before.StudyDate
    assert study == {"uid": before.StudyInstanceUID, "remapped": after.StudyInstanceUID}
    assert main(["pseudonym", before.PatientID, "--key-file", key]) == 0  # dates removed: no shift to give
    assert "date_shift_days" not in capsys.readouterr().out
    missing = tmp_path / "no" / "secret.key"
    assert main(["pseudonym", before.PatientID, "--key-file", str(missing)]) == 2
    assert "--key-file" in capsys.readouterr().err and not missing.exists()


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


def test_check_runs_the_data_flow_on_generated_radiographs_and_names_what_is_missing(tmp_path: Path, monkeypatch,
                                                                                    capsys) -> None:
    """`radiograph-deid check` on this installation: every part ok, the generated radiographs de-identified. It
    reads the key without creating it, and fails (exit 1) naming what is wrong: a detector that finds nothing
    leaves the invented name in the pixels; no tesseract program stops the safety net."""
    import shutil as shutil_module

    key = tmp_path / "never-made.key"
    monkeypatch.delenv("RADIOGRAPH_DEID_KEY", raising=False)
    assert main(["check", "--set", f"header.key_file={key}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["ok"] * 8, lines
    assert "3 generated radiographs de-identified" in lines[-1] and "L kept" in lines[-1]
    assert "is absent: the first run creates it" in lines[6] and not key.exists()
    assert "known regions" in lines[3] and "none" in lines[3]
    assert lines[4].split()[1] == "header" and "Basic Application Confidentiality Profile (113100)" in lines[4]
    assert "Retain" not in lines[4]  # every option off by default

    assert main(["check", "--set", f"header.key_file={key}", "--set", "detector.name=ruler",
                 "--set", "verify.enabled=false"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  end to end" in out and "'DOE, JANE  MRN00482913' was not filled" in out
    assert "warn  tesseract" in out and "safety net is off" in out

    which = shutil_module.which
    monkeypatch.setattr(shutil_module, "which", lambda name, *a, **k: None if name == "tesseract" else which(name, *a, **k))
    assert main(["check", "--set", f"header.key_file={key}"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  tesseract" in out and "apt-get install tesseract-ocr" in out and "FAIL  end to end" in out
    short = tmp_path / "short.key"
    short.write_text("abcd\n")  # a run refuses it: so does the check
    main(["check", "--set", f"header.key_file={short}"])
    assert "FAIL  key" in capsys.readouterr().out
    monkeypatch.setenv("RADIOGRAPH_DEID_KEY", "not hex")
    main(["check"])
    assert "FAIL  key" in capsys.readouterr().out


def test_check_names_the_header_options_a_run_stamps_its_outputs_with() -> None:
    """What `check` says of the header stage is what the stage writes into DeidentificationMethodCodeSequence."""
    from radiograph_deid.config import load_config
    from radiograph_deid.dicom_profile import HeaderDeidentifier
    from radiograph_deid.pseudonym import Pseudonymizer
    from radiograph_deid.selfcheck import header
    from radiograph_deid.synthetic import sample_radiograph

    cfg = load_config(None, ["header.retain_patient_characteristics=true", "header.clean_descriptors=true"])
    ds, _ = sample_radiograph(32, 32)
    deidentifier = HeaderDeidentifier(cfg.header, Pseudonymizer(bytes(32)))
    deidentifier(ds)
    deidentifier.stamp_methods(ds, pixels_cleaned=True)
    line = header(cfg).line()
    stamped = [f"{item.CodeMeaning} ({item.CodeValue})" for item in ds.DeidentificationMethodCodeSequence]
    assert line.split()[:2] == ["ok", "header"] and all(code in line for code in stamped) and len(stamped) == 4
    assert "Retain Patient Characteristics Option (113108)" in line and "ages over 90 years written as 90" in line


def test_check_of_the_output_folder_makes_nothing_and_names_a_case_blind_one(tmp_path: Path, monkeypatch) -> None:
    """`check --output DIR`: where a run would write, nothing made there; a file system blind to letter case (an
    SMB share) is a warning, a folder this user cannot write to a failure."""
    from radiograph_deid import fileio
    from radiograph_deid.enums import CheckStatus
    from radiograph_deid.selfcheck import output_folder

    target = tmp_path / "not" / "yet"
    got = output_folder(target)
    assert got.status is CheckStatus.OK and "GiB free" in got.detail and not (tmp_path / "not").exists()
    assert not list(tmp_path.iterdir())  # the probe of letter case is gone too
    monkeypatch.setattr(fileio, "case_blind", lambda folder: True)
    got = output_folder(target)
    assert got.status is CheckStatus.WARN and "letter case" in got.detail
    (tmp_path / "a-file").write_text("")
    assert output_folder(tmp_path / "a-file" / "out").status is CheckStatus.FAIL
