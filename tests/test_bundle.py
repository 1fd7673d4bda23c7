"""The MONAI bundle: metadata valid offline, inference and fine-tuning run through MONAI's ConfigWorkflow."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest

from radiograph_deid.enums import BoxClass
from radiograph_deid.labels import LabelledBox, LabelledImage, write_labels
from radiograph_deid.train import SHIPPED_ONNX, SHIPPED_PT

from .conftest import crash_hook, deid_data, labelled_synthetic

monai = pytest.importorskip("monai")
BUNDLE = Path(__file__).resolve().parents[1] / "monai_bundle"
SCHEMA_MD5 = "a88036be6363d93274ec8644920927dc"


def verify(meta: Path) -> None:
    from monai.bundle import verify_metadata

    verify_metadata(meta_file=str(meta), filepath=str(BUNDLE / "docs" / "meta_schema_20240725.json"),
                    hash_val=SCHEMA_MD5)


def test_metadata_is_valid_against_the_schema_offline(tmp_path: Path) -> None:
    verify(BUNDLE / "configs" / "metadata.json")
    broken = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    del broken["network_data_format"]["inputs"]["image"]["spatial_shape"]
    (tmp_path / "metadata.json").write_text(json.dumps(broken))
    with pytest.raises(Exception):
        verify(tmp_path / "metadata.json")


def test_bundle_models_are_the_shipped_weights() -> None:
    for name, shipped in (("marker_detector.onnx", SHIPPED_ONNX), ("marker_detector.pt", SHIPPED_PT)):
        assert os.path.samefile(BUNDLE / "models" / name, shipped), f"models/{name} is a copy, not the shipped file"


def workflow(config: str, **overrides):  # type: ignore[no-untyped-def]
    from monai.bundle import ConfigWorkflow

    wf = ConfigWorkflow(config_file=str(BUNDLE / "configs" / config), meta_file=str(BUNDLE / "configs" / "metadata.json"),
                        workflow_type=None, **overrides)
    wf.initialize()
    return wf


def test_inference_workflow_deidentifies_a_folder(tmp_path: Path, key_overrides: list[str]) -> None:
    src = tmp_path / "in"
    (src / "ward").mkdir(parents=True)
    shutil.copy(deid_data("animals/cat.dcm"), src / "ward" / "dx.dcm")
    (src / "broken.dcm").write_bytes(b"\0" * 300)
    wf = workflow("inference.json", bundle_root=str(BUNDLE), input_dir=str(src), output_dir=str(tmp_path / "out"),
                  overrides=key_overrides)
    wf.run()
    wf.finalize()
    ds = pydicom.dcmread(tmp_path / "out" / "ward" / "dx.dcm")
    assert ds.PatientIdentityRemoved == "YES" and ds.BurnedInAnnotation == "NO"
    summary = json.loads((tmp_path / "out" / ".deid" / "summary.json").read_text())
    assert summary["counts"] == {"written": 1, "quarantined": 1, "skipped": 0}
    assert (tmp_path / "out_quarantine" / "broken.dcm").is_file()
    assert wf.parser.get_parsed_content("detector_weights") == str(SHIPPED_ONNX)


def test_bundle_runs_standalone_from_the_command_line(tmp_path: Path, key_overrides: list[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(deid_data("animals/cat.dcm"), src / "dx.dcm")
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json",
           "--meta_file", "configs/metadata.json", "--bundle_root", ".", "--input_dir", str(src),
           "--output_dir", str(tmp_path / "out"), "--overrides", repr(key_overrides)]
    done = subprocess.run(cmd, cwd=BUNDLE, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'written': 1" in done.stdout
    assert (tmp_path / "out" / "dx.dcm").is_file()


def test_a_file_that_kills_its_process_does_not_end_the_bundle_run(tmp_path: Path, key_overrides: list[str]) -> None:
    """The bundle redacted in its own process (it passed run a redactor): a decoder's crash on one file ended the
    bundle run. Its files are now done in worker processes, as redact does them: the file is quarantined with the
    reason and the rest written. The crash is real: a hook loaded into every process kills the one taking
    bomb.dcm."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(deid_data("animals/cat.dcm"), src / "dx.dcm")
    shutil.copy(deid_data("animals/cat.dcm"), src / "bomb.dcm")
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json",
           "--meta_file", "configs/metadata.json", "--bundle_root", ".", "--input_dir", str(src),
           "--output_dir", str(tmp_path / "out"), "--overrides", repr(key_overrides)]
    paths = [str(crash_hook(tmp_path)), str(BUNDLE.parent), os.environ.get("PYTHONPATH", "")]
    done = subprocess.run(cmd, cwd=BUNDLE, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'written': 1" in done.stdout and "'quarantined': 1" in done.stdout
    rec = json.loads((tmp_path / "out" / ".deid" / "records" / "bomb.dcm.json").read_text())
    assert rec["decision"] == "quarantined" and "died 2 times" in rec["reason"]
    assert (tmp_path / "out" / "dx.dcm").is_file() and (tmp_path / "out_quarantine" / "bomb.dcm").is_file()


def test_train_workflow_fine_tunes_and_publishes_beside_the_shipped_weights(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A round trains for real; its validation scores are given, better than the served weights' (one epoch on
    three phantoms is not; a round that scores no better is refused: test_serving_lib)."""
    pytest.importorskip("ultralytics")
    from radiograph_deid.train import SiteScore

    scores = iter((SiteScore(0.5, 1, 1), SiteScore(1, 1, 1)))
    monkeypatch.setattr("radiograph_deid.train.pipeline_score", lambda onnx, images, root, cfg: next(scores))
    images = [replace(im, patient=f"p{i}") for i, im in
              enumerate(labelled_synthetic(tmp_path, "im", 1000, 900, range(40, 43), np.random.default_rng(5)))]
    write_labels(tmp_path / "labels.jsonl", images)
    shipped = SHIPPED_ONNX.read_bytes()
    wf = workflow("train.json", bundle_root=str(BUNDLE), labels=str(tmp_path / "labels.jsonl"), epochs=1,
                  work_dir=str(tmp_path / "work"), model_store={"_target_": "radiograph_deid.model_store.ModelStore",
                                                               "root": str(tmp_path / "site")})
    wf.run()
    version = wf.parser.get_parsed_content("version")
    assert (tmp_path / "site" / version.name / "marker_detector.onnx").is_file()
    assert set(version.info["train_images"]).isdisjoint(version.info["val_images"])
    assert SHIPPED_ONNX.read_bytes() == shipped
    # inference now serves the published version
    wf = workflow("inference.json", bundle_root=str(BUNDLE), model_store={
        "_target_": "radiograph_deid.model_store.ModelStore", "root": str(tmp_path / "site")})
    assert wf.parser.get_parsed_content("detector_weights") == str(version.onnx)


def test_regions_workflow_proposes_a_rules_file_from_a_label_file(tmp_path: Path) -> None:
    """regions.json: the known regions a label file's images put text in one place on, written for a person to
    read; an existing file is never replaced."""
    import cv2

    from radiograph_deid.known_regions import load_rules

    images = []
    for i in range(3):  # an ID stamped at the top right of plates of one size
        cv2.imwrite(str(tmp_path / f"im{i}.png"), np.full((500, 400), 80, np.uint8))
        line = LabelledBox((300 - 12 * i, 20, 385, 36), BoxClass.OTHER_MARKER, "ID")
        images.append(LabelledImage(f"im{i}.png", 400, 500, (line,)))
    write_labels(tmp_path / "labels.jsonl", images)
    out = tmp_path / "eval" / "proposed.yaml"
    wf = workflow("regions.json", bundle_root=str(BUNDLE), labels=str(tmp_path / "labels.jsonl"), output=str(out))
    wf.run()
    assert wf.parser.get_parsed_content("proposed")["rules"][0]["images"] == 3
    (rule,) = load_rules(out).rules
    assert dict(rule.match) == {"Rows": 500.0, "Columns": 400.0}
    (region,) = rule.regions
    assert region.x0 < 0 and region.y0 >= 0 and region.x0 <= 288 - 400  # from the top right, the longest ID inside
    before = out.read_bytes()
    with pytest.raises(Exception) as refused:  # MONAI wraps it: the cause is the library's refusal
        workflow("regions.json", bundle_root=str(BUNDLE), labels=str(tmp_path / "labels.jsonl"),
                 output=str(out)).run()
    causes = [refused.value]
    while causes[-1].__cause__ or causes[-1].__context__:
        causes.append(causes[-1].__cause__ or causes[-1].__context__)
    assert any(isinstance(c, FileExistsError) for c in causes) and out.read_bytes() == before
