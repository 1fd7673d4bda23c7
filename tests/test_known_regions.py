"""Known burned-in regions (``detector.known_regions``): filled in every image whose header (or size) matches a
rule, whatever the detectors find; a rules file with a mistake stops the run before any file is read."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from radiograph_deid.cli import main as cli_main
from radiograph_deid.config import ConfigError, load_config
from radiograph_deid.folder_run import run, settings_digest
from radiograph_deid.enums import BoxClass
from radiograph_deid.known_regions import load_rules
from radiograph_deid.labels import LabelledBox, LabelledImage, write_labels
from radiograph_deid.synthetic import phantom

from .conftest import deid_data, sha256, tree_hashes

EXAMPLE = Path(__file__).resolve().parents[1] / "configs" / "known_regions.example.yaml"


def _rules(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "regions.yaml"
    path.write_text(text)
    return path


def _redact(inp: Path, out: Path, overrides: list[str]) -> dict:
    """Each input's record, as written under OUTPUT."""
    summary = run(inp, out, load_config(overrides=overrides), progress=False)
    return {d["input"]: json.loads((out / ".deid" / "records" / f"{d['input']}.json").read_text())
            for d in summary["images_detail"]}


@pytest.fixture(scope="module")
def cat_runs(tmp_path_factory: pytest.TempPathFactory, key_overrides: list[str]):
    """deid-data's DX (Agfa) with its burned-in lead R, redacted with no rules, then with a rule for its maker
    whose region covers the R, then with a rule for another maker."""
    root = tmp_path_factory.mktemp("known")
    inp = root / "in"
    inp.mkdir()
    shutil.copy(deid_data("animals/cat.dcm"), inp / "dx.dcm")
    before = tree_hashes(inp)
    plain = _redact(inp, root / "plain", key_overrides)["dx.dcm"]
    kept = [b for b in plain["boxes"] if b["action"] == "kept_laterality"]
    assert len(kept) == 1 and kept[0]["glyph"] == "R"  # the detectors keep the R as laterality...
    x0, y0, x1, y1 = kept[0]["box"]
    region = [x0 - 10, y0 - 10, x1 + 10, y1 + 10]
    runs = {}
    for maker in ("Agfa", "Philips.*"):
        rules = _rules(root, f"- name: plate-corner\n  match:\n    Manufacturer: {maker}\n    Modality: DX\n"
                             f"  fill:\n    - {region}\n")
        out = root / f"out-{maker[:3]}"
        runs[maker] = (_redact(inp, out, [*key_overrides, f"detector.known_regions={rules}"])["dx.dcm"], out)
    return {"region": region, "plain": plain, "runs": runs, "inp": inp, "before": before}


def test_a_known_region_is_filled_where_the_header_matches_even_over_a_kept_marker(cat_runs) -> None:
    rec, out = cat_runs["runs"]["Agfa"]
    x0, y0, x1, y1 = cat_runs["region"]
    ds = pydicom.dcmread(out / "dx.dcm")
    src = pydicom.dcmread(cat_runs["inp"] / "dx.dcm")
    assert src.pixel_array[y0:y1, x0:x1].std() > 20  # the R is there in the input...
    assert (ds.pixel_array[y0:y1, x0:x1] == 0).all()  # ...and the region is black (MONOCHROME2) in the output
    assert rec["decision"] == "written" and rec["laterality"]["kept"] == []
    assert not [b for b in rec["boxes"] if b["action"] == "kept_laterality"]
    region = [b for b in rec["boxes"] if b["source"] == "known-region:plate-corner"]
    assert [b["box"] for b in region] == [cat_runs["region"]] and region[0]["action"] == "redacted"
    assert "Agfa" not in json.dumps(rec)  # the values matched are not recorded
    assert tree_hashes(cat_runs["inp"]) == cat_runs["before"]


def test_a_rule_for_another_device_leaves_the_image_as_the_detectors_decide(cat_runs) -> None:
    rec, out = cat_runs["runs"]["Philips.*"]
    assert rec["laterality"]["kept"] == ["R"] == cat_runs["plain"]["laterality"]["kept"]
    assert not [b for b in rec["boxes"] if b["source"].startswith("known-region")]
    assert sha256(out / "dx.dcm") == sha256(Path(f"{out.parent / 'plain'}") / "dx.dcm")


def test_the_review_shows_the_known_regions_redact_fills_and_labels_leave_them_out(cat_runs, tmp_path: Path,
                                                                                  key_overrides: list[str]) -> None:
    """The review (MONAI Label's /infer/markers) lists a matching rule's region as redact fills it, the R under it
    no longer kept; a label sent back as the review gave it teaches the detector no rule's rectangle."""
    from radiograph_deid.workflows import MarkerFinder, parse_box_label

    src = cat_runs["inp"] / "dx.dcm"
    reviews = {}
    for maker in ("Agfa", "Philips.*"):
        rules = _rules(tmp_path, f"- name: plate-corner\n  match:\n    Manufacturer: {maker}\n    Modality: DX\n"
                                 f"  fill:\n    - {cat_runs['region']}\n")
        reviews[maker] = MarkerFinder(load_config(overrides=[*key_overrides, f"detector.known_regions={rules}"]))(src)
    region = [b for b in reviews["Agfa"].boxes if b["source"] == "known-region:plate-corner"]
    assert [(b["xyxy"], b["action"], b["cls"]) for b in region] == [(cat_runs["region"], "redacted", "text")]
    assert not [b for b in reviews["Agfa"].boxes if b["action"] == "kept_laterality"]
    other = reviews["Philips.*"].boxes  # another maker's rule: the detectors' boxes alone, the R kept
    assert [b["glyph"] for b in other if b["action"] == "kept_laterality"] == ["R"]
    assert not [b for b in other if b["source"].startswith("known-region")]
    sent = parse_box_label(json.dumps(reviews["Agfa"].to_json()), "review")
    assert [list(b.xyxy) for b in sent] == [b["xyxy"] for b in reviews["Agfa"].boxes if b not in region]


def test_rows_and_columns_alone_match_an_image_file_with_edges_counted_back(tmp_path: Path,
                                                                           key_overrides: list[str]) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    img = (60 + phantom(700, 900, 3) * 180).astype(np.uint8)  # no black outside the body
    cv2.imwrite(str(inp / "a.png"), img)
    rules = _rules(tmp_path, "- match: {Rows: 700, Columns: 900}\n  fill: [[-100, -50, null, null]]\n"
                             "- match: {Modality: CR, Rows: 700}\n  fill: [[0, 0, 50, 50]]\n")
    rec = _redact(inp, tmp_path / "out", [*key_overrides, f"detector.known_regions={rules}"])["a.png"]
    out = cv2.imread(str(tmp_path / "out" / "a.png"), cv2.IMREAD_UNCHANGED)
    assert (out[-50:, -100:] == 0).all() and img[-50:, -100:].min() > 0
    assert (out[:50, :50] == img[:50, :50]).all()  # a rule naming a header keyword never matches a PNG
    assert [b["box"] for b in rec["boxes"] if b["source"] == "known-region:rule-1"] == [[800, 650, 900, 700]]


def test_editing_the_rules_file_redoes_the_files_a_rerun_would_skip(tmp_path: Path, key_overrides: list[str]) -> None:
    from radiograph_deid.pseudonym import load_or_create_key

    rules = _rules(tmp_path, "- match: {Rows: 700}\n  fill: [[0, 0, 10, 10]]\n")
    cfg = load_config(overrides=[*key_overrides, f"detector.known_regions={rules}"])
    key = load_or_create_key(cfg.header.key_file)
    first = settings_digest(cfg, key)
    rules.write_text("- match: {Rows: 700}\n  fill: [[0, 0, 20, 20]]\n")
    assert settings_digest(cfg, key) != first


@pytest.mark.parametrize("text, says", [
    ("- match: {Manufacturr: Agfa}\n  fill: [[0, 0, 10, 10]]\n", "'Manufacturr' is not a DICOM keyword"),
    ("- match: {Manufacturer: '(Agfa'}\n  fill: [[0, 0, 10, 10]]\n", "not a regular expression"),
    ("- match: {Rows: 700}\n  fill: [[0, 0, 10]]\n", "must be [x0, y0, x1, y1]"),
    ("- match: {Rows: 700}\n  fill: [[20, 0, 10, 10]]\n", "x1 (10) must lie beyond x0 (20)"),
    ("- match: {Rows: 700}\n  fill: [[0.5, 0, 10, 10]]\n", "whole pixels"),
    ("- match: {}\n  fill: [[0, 0, 10, 10]]\n", "'match' is empty"),
    ("- name: banner\n  match: {Rows: 700}\n  fil: [[0, 0, 10, 10]]\n", "rule 1 (banner): unknown key(s) fil"),
    ("match: {Rows: 700}\n", "must be a YAML list of rules"),
])
def test_a_mistake_in_the_rules_is_named_with_its_rule(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_rules(_rules(tmp_path, text))
    assert says in str(err.value)


def test_a_bad_rules_file_stops_redact_before_anything_is_written(tmp_path: Path, key_overrides: list[str],
                                                                  capsys: pytest.CaptureFixture) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(deid_data("animals/cat.dcm"), inp / "dx.dcm")
    for rules, says in ((tmp_path / "missing.yaml", "cannot read"),
                        (_rules(tmp_path, "- match: {Manufacturr: Agfa}\n  fill: [[0, 0, 1, 1]]\n"), "not a DICOM keyword")):
        code = cli_main(["redact", str(inp), str(tmp_path / "out"), "--no-progress", "--set", key_overrides[0],
                         "--set", f"detector.known_regions={rules}"])
        err = capsys.readouterr().err
        assert code == 2 and "configuration error" in err and says in err and str(rules) in err
        assert not (tmp_path / "out").exists()


def test_check_names_the_rules_a_run_would_fill() -> None:
    from radiograph_deid.selfcheck import known_regions

    found = known_regions(load_config(overrides=[f"detector.known_regions={EXAMPLE}"]))
    assert found.status.value == "ok" and found.detail.startswith(f"3 rule(s) in {EXAMPLE}")
    assert "example-us-banner, example-film-digitiser-edge, example-png-export-corner" in found.detail


def test_the_shipped_example_rules_load() -> None:
    known = load_rules(EXAMPLE)
    assert known.keywords == ["Manufacturer", "ManufacturerModelName", "Modality"]
    assert [b.as_list() for b in known.boxes({"Modality": "US", "Manufacturer": "example medical"}, 600, 800)] == \
        [[0, 0, 800, 56]]
    assert known.boxes({"Modality": "US", "Manufacturer": "Other"}, 600, 800) == []


def test_evaluate_fills_the_configured_regions_as_redact_does(tmp_path: Path, key_overrides: list[str]) -> None:
    """A label on plain anatomy that no detector can find is de-identified only by a rule for the image's maker,
    read from its DICOM header; the old evaluate scored the detectors alone."""
    root = tmp_path / "data"
    root.mkdir()
    shutil.copy(deid_data("animals/cat.dcm"), root / "dx.dcm")
    write_labels(tmp_path / "labels.jsonl", [LabelledImage("dx.dcm", 3072, 2614, (
        LabelledBox((1500, 1200, 1700, 1240), BoxClass.OTHER_MARKER, "nothing drawn here"),))])
    rules = tmp_path / "rules.yaml"
    rules.write_text("- name: agfa-middle\n  match:\n    Manufacturer: Agfa\n  fill:\n    - [1490, 1190, 1710, 1250]\n")
    reports = {}
    for name, extra in (("plain", []), ("rules", ["--set", f"detector.known_regions={rules}"])):
        reports[name] = tmp_path / f"{name}.json"
        assert cli_main(["evaluate", "--labels", str(tmp_path / "labels.jsonl"), "--data-root", str(root),
                         "--split", "all", "--report", str(reports[name]), *extra]) == 0
    plain, ruled = (json.loads(reports[k].read_text())["images"][0] for k in ("plain", "rules"))
    assert not plain["deidentified"] and ruled["deidentified"]
    assert ruled["boxes"] == plain["boxes"] + 1
    metrics = [json.loads(reports[k].read_text())["metrics"] for k in ("plain", "rules")]
    assert metrics[0]["auprc"] == metrics[1]["auprc"]  # the detectors' precision: a rule's fill is no detection
