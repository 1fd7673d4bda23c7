"""End to end on real DICOM (pydicom-data, deid-data) and generated cases: what reaches OUTPUT, what goes to
quarantine and why, and that INPUT is never modified."""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset

from radiograph_deid.boxes import Box
from radiograph_deid.cli import main as cli_main
from radiograph_deid.config import load_config
from radiograph_deid.enums import BoxAction, OutputNames
from radiograph_deid.folder_run import run, settings_digest
from radiograph_deid.pipeline import Redactor
from radiograph_deid.synthetic import FAKE_PHI, Burn, burn, make_dataset, phantom, sample_radiograph, to_stored

from .conftest import crash_hook, deid_data, in_colour_alone, pydicom_data, sha256, tree_hashes

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample"
US_PHI = ["ZZZ", "PATIENT", "CLEVELAN", "0007924", "1951", "DOWNTIME", "MARY", "00047431395", "120907058", "2020"]


def _sr() -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds = pydicom.dataset.FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.Modality = FAKE_PHI["PatientName"], "SR"
    return ds


def build_input(root: Path) -> None:
    (root / "real").mkdir(parents=True)
    (root / "us").mkdir()
    (root / "gen" / "deep" / "er").mkdir(parents=True)
    (root / "bad").mkdir()
    shutil.copy(deid_data("animals/cat.dcm"), root / "real" / "cat.dcm")
    for name in ("RG3_J2KR.dcm", "RG1_UNCR.dcm", "RG1_J2KI.dcm"):
        shutil.copy(pydicom_data(name), root / "real" / name)
    for name in ("GREYSCALE_IMAGE.dcm", "RGB_IMAGE.dcm"):
        shutil.copy(deid_data(f"ultrasounds/{name}"), root / "us" / name)
    ds, _ = sample_radiograph(1024, 1024, "MONOCHROME1", 12, "CR", seed=5)
    ds.save_as(root / "gen" / "deep" / "er" / "mono1_cr.dcm", write_like_original=False)
    ds, _ = sample_radiograph(640, 640, "MONOCHROME2", 16, "DX", seed=6, signed=True)
    ds.save_as(root / "gen" / "signed16.dcm", write_like_original=False)
    img = to_stored(burn(phantom(700, 700, 7), [Burn("JOHNSON 1984-02-11", 30, 30, 22)]), 8, False)
    cv2.imwrite(str(root / "gen" / "photo.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwritemulti(str(root / "bad" / "pages.tif"), [img, 255 - img])  # a second page would be lost
    cv2.imwrite(str(root / "gen" / "page.tif"), img)
    _sr().save_as(root / "gen" / "report_sr.dcm", write_like_original=False)
    rg1 = pydicom_data("RG1_UNCR.dcm").read_bytes()
    (root / "bad" / "truncated.dcm").write_bytes(rg1[: len(rg1) // 3])
    (root / "bad" / "corrupt.dcm").write_bytes(np.random.default_rng(0).bytes(4096))
    ds, _ = sample_radiograph(64, 64)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder here
    ds.PixelData = pydicom.encaps.encapsulate([b"\0\0\1\xb3" + bytes(60)])
    ds["PixelData"].is_undefined_length = True
    ds.save_as(root / "bad" / "unsupported.dcm", write_like_original=False)
    (root / "notes.txt").write_text("not an image")


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory, key_overrides: list[str]):
    root = tmp_path_factory.mktemp("job")
    inp, out = root / "in", root / "out"
    build_input(inp)
    before = tree_hashes(inp)
    cfg = load_config(overrides=key_overrides)
    redactor = Redactor(cfg)
    summary = run(inp, out, cfg, progress=False, redactor=redactor)
    records = {d["input"]: d for d in summary["images_detail"]}
    return {"inp": inp, "out": out, "quar": Path(f"{out.resolve()}_quarantine"), "summary": summary,
            "records": records, "before": before, "cfg": cfg, "redactor": redactor}


def record(job, rel: str) -> dict:
    return json.loads((job["out"] / ".deid" / "records" / f"{rel}.json").read_text())


def test_input_is_never_modified(job) -> None:
    assert tree_hashes(job["inp"]) == job["before"]


def test_every_file_has_a_decision(job) -> None:
    decisions = {k: v["decision"] for k, v in job["records"].items()}
    assert decisions == {
        "notes.txt": "skipped", "bad/corrupt.dcm": "quarantined", "bad/truncated.dcm": "quarantined",
        "bad/unsupported.dcm": "quarantined", "bad/pages.tif": "quarantined", "gen/photo.jpg": "written",
        "gen/page.tif": "written", "gen/report_sr.dcm": "skipped",
        "gen/signed16.dcm": "written", "gen/deep/er/mono1_cr.dcm": "written", "real/RG1_J2KI.dcm": "written",
        "real/RG1_UNCR.dcm": "written", "real/RG3_J2KR.dcm": "written", "real/cat.dcm": "written",
        "us/GREYSCALE_IMAGE.dcm": "written", "us/RGB_IMAGE.dcm": "written",
    }
    assert (job["out"] / ".deid" / "summary.csv").read_text().count("\n") == len(decisions) + 1


def test_bad_inputs_are_quarantined_whole_with_a_reason(job) -> None:
    reasons = {k: job["records"][k]["reason"]
               for k in ("bad/corrupt.dcm", "bad/truncated.dcm", "bad/unsupported.dcm", "bad/pages.tif")}
    assert "corrupt" in reasons["bad/corrupt.dcm"]
    assert "TIFF of 2 pages" in reasons["bad/pages.tif"]
    assert "truncated" in reasons["bad/truncated.dcm"] or "length" in reasons["bad/truncated.dcm"]
    assert "unsupported transfer syntax" in reasons["bad/unsupported.dcm"]
    for rel in reasons:
        assert sha256(job["quar"] / rel) == job["before"][rel]  # nothing lost: the original, byte for byte
        assert json.loads((job["quar"] / f"{rel}.reason.json").read_text())["reason"] == reasons[rel]
        assert not (job["out"] / rel).exists()
    assert "pixel data" in job["records"]["gen/report_sr.dcm"]["reason"]


def test_laterality_markers_are_kept_on_real_radiographs(job) -> None:
    for rel in ("real/cat.dcm", "real/RG3_J2KR.dcm"):  # upright R on a grey tile; mirrored R on a tibia
        kept = [b for b in record(job, rel)["boxes"] if b["action"] == BoxAction.KEPT_LATERALITY.value]
        assert [b["glyph"] for b in kept] == ["R"], rel
        x0, y0, x1, y1 = kept[0]["box"]
        src = pydicom.dcmread(job["inp"] / rel).pixel_array
        out = pydicom.dcmread(job["out"] / rel).pixel_array
        glyph = src[y0:y1, x0:x1] == out[y0:y1, x0:x1]
        assert 0.05 < glyph.mean() < 0.95  # the glyph's pixels stay, the rest of its box is filled
        outside = np.ones(src.shape, bool)
        for b in record(job, rel)["boxes"]:
            if b["action"] != BoxAction.REJECTED.value:
                bx0, by0, bx1, by1 = b["box"]
                outside[by0:by1, bx0:bx1] = False
        np.testing.assert_array_equal(src[outside], out[outside])  # nothing changes outside the decided boxes


def test_header_is_deidentified_and_burned_in_annotation_set_after_pixels(job) -> None:
    ds = pydicom.dcmread(job["out"] / "real" / "cat.dcm")
    assert "Wetzel" not in str(ds.PatientName) and ds.PatientIdentityRemoved == "YES"
    assert ds.BurnedInAnnotation == "NO"
    assert "113101" in [i.CodeValue for i in ds.DeidentificationMethodCodeSequence]
    gen = pydicom.dcmread(job["out"] / "gen" / "deep" / "er" / "mono1_cr.dcm")
    text = str(gen)
    for value in ("DOE", "MRN00482913", "ACC7731920", "SAINT EXAMPLE", "19610412"):
        assert value not in text


def test_a_dicom_stored_without_its_file_meta_is_redacted_and_written_as_part_10(job, tmp_path: Path) -> None:
    """Older systems export a bare dataset (no preamble, no "DICM", no File Meta Information); it was quarantined
    as undecodable. It is read in the encoding found, redacted, and written with its meta completed. Such a file
    named with no extension ("IM000001") was skipped as "not a DICOM file"; it is known by its first bytes now."""
    inp = tmp_path / "in"
    inp.mkdir()
    ds, _ = sample_radiograph(512, 512, "MONOCHROME2", 12, "DX", seed=3)
    pixels = ds.pixel_array
    ds.preamble, ds.file_meta, ds.is_implicit_VR, ds.is_little_endian = None, FileMetaDataset(), True, True
    ds.save_as(inp / "bare.dcm", write_like_original=True)
    shutil.copy(inp / "bare.dcm", inp / "IM000001")
    assert (inp / "bare.dcm").read_bytes()[128:132] != b"DICM"
    summary = run(inp, tmp_path / "out", job["cfg"], progress=False, redactor=job["redactor"])
    for rec in summary["images_detail"]:
        assert rec["decision"] == "written" and rec["boxes_redacted"] > 0, (rec["input"], rec["reason"])
    assert pydicom.dcmread(tmp_path / "out" / "IM000001").PatientIdentityRemoved == "YES"
    out = pydicom.dcmread(tmp_path / "out" / "bare.dcm")  # no force: a Part 10 file
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID != ds.SOPInstanceUID
    assert "DOE" not in str(out.PatientName) and out.BurnedInAnnotation == "NO"
    assert not np.array_equal(out.pixel_array, pixels)


def test_pixels_bit_identical_when_nothing_found(job) -> None:
    """Every written DICOM on which nothing was filled keeps its pixel bytes and syntax (the real lossy JPEG 2000
    chest among them). The shipped detector puts one false box on bone edges of its uncompressed twin, RG1_UNCR
    (recorded in the README's false-positive rate), so that one is not a 'nothing found' case."""
    untouched = [rel for rel, r in job["records"].items() if r["decision"] == "written" and rel.endswith(".dcm")
                 and not any(b["action"] != "rejected" for b in record(job, rel)["boxes"])]
    assert "real/RG1_J2KI.dcm" in untouched
    for rel in untouched:
        assert not record(job, rel)["pixels_modified"], rel
        src, out = pydicom.dcmread(job["inp"] / rel), pydicom.dcmread(job["out"] / rel)
        assert out.PixelData == src.PixelData, rel  # the very bytes: a lossy JPEG 2000 is not re-encoded
        assert out.file_meta.TransferSyntaxUID == src.file_meta.TransferSyntaxUID, rel


def test_modified_lossless_input_is_written_uncompressed(job) -> None:
    out = pydicom.dcmread(job["out"] / "real" / "RG3_J2KR.dcm")
    assert out.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert out.PhotometricInterpretation == "MONOCHROME1"


def _ocr_oracle(image: np.ndarray) -> str:
    """RapidOCR's own end-to-end pipeline, independent of our detector's scale and thresholds."""
    from rapidocr_onnxruntime import RapidOCR

    result, _ = RapidOCR()(image)
    return " ".join(r[1] for r in result or [])


@pytest.mark.parametrize("rel", ["us/GREYSCALE_IMAGE.dcm", "us/RGB_IMAGE.dcm"])
def test_ultrasound_phi_is_unreadable_after_redaction(job, rel: str) -> None:
    src = pydicom.dcmread(job["inp"] / rel)
    out = pydicom.dcmread(job["out"] / rel)
    before, after = _ocr_oracle(src.pixel_array), _ocr_oracle(out.pixel_array)
    assert sum(p in before for p in US_PHI) >= 3  # the oracle can read the PHI in the original...
    assert not [p for p in US_PHI if p in after]  # ...and none of it in the output
    assert "ZZZ" not in str(out.PatientName)


def test_ultrasound_anatomy_is_not_taken_for_markers_and_its_text_still_goes() -> None:
    """The marker detector, trained on radiographs, boxed the beating heart and its colour flow in deid-data's
    echo as markers (0.45-0.65), and the fill blacked out four fifths of the flow. On an ultrasound its boxes are
    now filled only when read (``detector.doubt_modalities``); the burned-in text is filled as before."""
    from radiograph_deid.evaluate import filled_mask
    from radiograph_deid.fileio import read_view
    from radiograph_deid.pipeline import MarkerDecider

    view, ds = read_view(deid_data("ultrasounds/ultrasound-multiframe.dcm"), 10**8, 100)
    assert ds.Modality == "US"
    flow = np.abs(view[..., 0].astype(int) - view[..., 2].astype(int)) > 60  # red or blue: the Doppler colour
    flow[:, 600:] = False  # the colour scale beside the image is a legend, not anatomy
    text = (view.mean(axis=2) > 200) & ~flow
    text[200:] = False  # the settings listed down the left edge
    text[:, 90:] = False
    decider = MarkerDecider(load_config())
    filled = {m: filled_mask(view.shape[:2], decider.decide(view, modality=m)[1]) for m in ("", "us")}
    assert flow.sum() > 5000 and filled[""][flow].mean() > 0.5  # as a radiograph, the flow is filled
    assert filled["us"][flow].mean() < 0.05
    assert filled["us"][text].mean() > 0.9 and text.sum() > 500
    # frame 17: a doubted box on the colour flow read "45." at 0.8, and was filled in every frame of the loop
    from radiograph_deid.pipeline import frame_views
    from radiograph_deid.pixels.decode import decode_dataset

    frames = decode_dataset(pydicom.dcmread(deid_data("ultrasounds/ultrasound-multiframe.dcm")), 10**8, 100)
    view17 = dict(frame_views(frames, 8))["17"]
    assert not filled_mask(view17.shape[:2], decider.decide(view17, modality="US")[1])[296:373, 359:508].any()
    from radiograph_deid.workflows import MarkerFinder  # the review (MONAI Label /infer/markers) knows it too

    found = MarkerFinder(load_config(), decider=decider)(deid_data("ultrasounds/ultrasound-multiframe.dcm"))
    ys, xs = np.nonzero(flow)
    assert found.boxes and not [b for b in found.boxes if b["action"] != "rejected" and b["xyxy"][0] <= xs.mean()
                                <= b["xyxy"][2] and b["xyxy"][1] <= ys.mean() <= b["xyxy"][3]]


def test_generated_text_is_removed_and_l_marker_survives(job) -> None:
    rel = "gen/deep/er/mono1_cr.dcm"
    out = pydicom.dcmread(job["out"] / rel)
    text = _ocr_oracle(cv2.normalize(65535 - out.pixel_array.astype(np.int32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8))
    for word in ("DOE", "MRN", "2024", "PORTABLE", "SAINT"):
        assert word not in text.upper()


def test_jpeg_input_becomes_lossless_png(job) -> None:
    rec = job["records"]["gen/photo.jpg"]
    assert rec["output"] == "gen/photo.jpg.png" and (job["out"] / "gen" / "photo.jpg.png").is_file()
    assert not (job["out"] / "gen" / "photo.jpg").exists()
    img = cv2.imread(str(job["out"] / "gen" / "photo.jpg.png"), cv2.IMREAD_UNCHANGED)
    assert "JOHNSON" not in _ocr_oracle(img).upper()


@pytest.mark.parametrize("ext", [".bmp", ".jp2"])
def test_bmp_and_jpeg_2000_images_are_redacted_to_png(job, tmp_path: Path, ext: str) -> None:
    """A scanner's BMP or a standalone JPEG 2000 file was skipped as "not a supported image"."""
    inp = tmp_path / "in"
    inp.mkdir()
    img = to_stored(burn(phantom(600, 600, 8), [Burn("JOHNSON 1984-02-11", 30, 30, 24)]), 8, False)
    cv2.imwrite(str(inp / f"scan{ext}"), img)
    summary = run(inp, tmp_path / "out", job["cfg"], progress=False, redactor=job["redactor"])
    (rec,) = summary["images_detail"]
    assert (rec["decision"], rec["output"]) == ("written", f"scan{ext}.png"), rec["reason"]
    out = cv2.imread(str(tmp_path / "out" / f"scan{ext}.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == img.shape and "JOHNSON" not in _ocr_oracle(out).upper()


def test_a_jpeg_and_a_png_of_one_name_both_reach_output(job, tmp_path: Path) -> None:
    """"x.jpg" was written as "x.png" and replaced the output of the PNG "x.png" beside it: one image lost."""
    inp = tmp_path / "in"
    inp.mkdir()
    for i, name in enumerate(("x.jpg", "x.png", "x.jpeg")):
        cv2.imwrite(str(inp / name), to_stored(phantom(300, 300, 20 + i), 8, False))
    summary = run(inp, tmp_path / "out", job["cfg"], progress=False, redactor=job["redactor"])
    outputs = [d["output"] for d in summary["images_detail"]]
    assert sorted(outputs) == ["x.jpeg.png", "x.jpg.png", "x.png"]
    sources = {name: cv2.imread(str(inp / name), cv2.IMREAD_UNCHANGED) for name in ("x.jpg", "x.png", "x.jpeg")}
    for name, src in sources.items():  # each output is its own input's image (nothing burned in: all but unchanged)
        out = cv2.imread(str(tmp_path / "out" / ("x.png" if name == "x.png" else name + ".png")), cv2.IMREAD_UNCHANGED)
        assert np.mean(out == src) > 0.95, name


def test_an_image_whose_output_name_is_another_input_goes_to_quarantine(job, tmp_path: Path) -> None:
    """"x.jpg" is written as "x.jpg.png": an input of that name beside it was written to the same path, and one of
    the two outputs replaced the other. The renamed one is quarantined, the other written; once the clash is
    gone, a rerun writes it."""
    inp = tmp_path / "in"
    inp.mkdir()
    for i, name in enumerate(("x.jpg", "x.jpg.png")):
        cv2.imwrite(str(inp / name), to_stored(phantom(300, 300, 30 + i), 8, False))
    out = tmp_path / "out"
    summary = run(inp, out, job["cfg"], progress=False, redactor=job["redactor"])
    recs = {d["input"]: d for d in summary["images_detail"]}
    assert (recs["x.jpg.png"]["decision"], recs["x.jpg.png"]["output"]) == ("written", "x.jpg.png")
    assert recs["x.jpg"]["decision"] == "quarantined" and "rename" in recs["x.jpg"]["reason"]
    quarantine = Path(f"{out.resolve()}_quarantine")
    assert (quarantine / "x.jpg").read_bytes() == (inp / "x.jpg").read_bytes()
    written = cv2.imread(str(out / "x.jpg.png"), cv2.IMREAD_UNCHANGED)
    assert np.mean(written == cv2.imread(str(inp / "x.jpg.png"), cv2.IMREAD_UNCHANGED)) > 0.95
    (inp / "x.jpg.png").rename(inp / "y.png")
    again = {d["input"]: d for d in run(inp, out, job["cfg"], progress=False, redactor=job["redactor"])["images_detail"]}
    assert (again["x.jpg"]["decision"], again["x.jpg"]["output"]) == ("written", "x.jpg.png")


def test_signed_16_bit_output_round_trips(job) -> None:
    out = pydicom.dcmread(job["out"] / "gen" / "signed16.dcm")
    assert out.PixelRepresentation == 1 and out.pixel_array.dtype == np.int16
    assert out.pixel_array.min() == -(2**15)  # the fill: black under any window


def test_nothing_unredacted_in_output(job) -> None:
    outputs = {p.relative_to(job["out"]).as_posix() for p in job["out"].rglob("*") if p.is_file()
               and ".deid" not in p.parts}
    written = {r["output"] for r in job["records"].values() if r["decision"] == "written"}
    assert outputs == written


def _texts(node: object) -> list[str]:
    if isinstance(node, dict):
        return [t for k, v in node.items() for t in [str(k), *_texts(v)]]
    if isinstance(node, list):
        return [t for v in node for t in _texts(v)]
    return [node] if isinstance(node, str) else []


def test_logs_and_records_carry_no_phi(job, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="radiograph_deid"):
        run(job["inp"] / "us", tmp_path / "o", job["cfg"], progress=False, redactor=job["redactor"])
    files = [*(tmp_path / "o" / ".deid").rglob("*.json"), *(job["out"] / ".deid").rglob("*.json")]
    # Every text in the records (keys and string values): header values could only arrive as text, while the
    # numbers (timings, file mtimes in ns, box coordinates) are measurements whose digits can hold "1951" by chance.
    blob = caplog.text + "\n".join(t for p in files for t in _texts(json.loads(p.read_text())))
    for value in ["Wetzel", "ZZZDOWNTIME", "PATIENTFIVE", "MRN00482913", "DOE^JANE", "19610412"] + US_PHI[2:6]:
        assert value not in blob


def test_rerun_resumes_and_skips_finished_files(job) -> None:
    summary = run(job["inp"], job["out"], job["cfg"], progress=False, redactor=job["redactor"])
    assert summary["resumed"] == summary["images"] == len(job["records"])


def test_a_rerun_under_other_settings_redoes_every_file(job, tmp_path: Path, key_overrides: list[str]) -> None:
    """A rerun into the same OUTPUT with other settings skipped every file its records called done: a site that
    tightened a setting and ran again kept the first run's output. Such a record is not resumed now; a file the
    new settings quarantine leaves no earlier output in OUTPUT, and the same settings still resume."""
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    shutil.copy(job["inp"] / "gen" / "deep" / "er" / "mono1_cr.dcm", inp / "a.dcm")  # 1024 x 1024
    shutil.copy(job["inp"] / "gen" / "signed16.dcm", inp / "b.dcm")  # 640 x 640
    first = run(inp, out, job["cfg"], progress=False, redactor=job["redactor"])
    assert [d["decision"] for d in first["images_detail"]] == ["written", "written"]
    small = load_config(overrides=key_overrides + ["input.max_pixels_per_frame=500000"])  # a.dcm is larger
    again = run(inp, out, small, progress=False)
    assert again["resumed"] == 0
    assert [d["decision"] for d in again["images_detail"]] == ["quarantined", "written"]
    assert not (out / "a.dcm").exists(), "the first run's output of a file now quarantined is still in OUTPUT"
    assert (out / "b.dcm").is_file()
    assert run(inp, out, small, progress=False)["resumed"] == 2


def test_a_second_run_into_the_same_output_is_refused_while_the_first_runs(job, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    """Two runs into one OUTPUT (a second terminal, a cron job) redid each other's files and wrote the summary
    over each other's; the second is now refused with the reason, and runs once the first is done."""
    import fcntl

    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    shutil.copy(job["inp"] / "gen" / "signed16.dcm", inp / "b.dcm")
    (out / ".deid").mkdir(parents=True)
    with open(out / ".deid" / "run.lock", "a+") as held:  # as the first run holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        assert cli_main(["redact", str(inp), str(out), "--no-progress", "--key-file", str(tmp_path / "key")]) == 2
        assert "another run is writing to" in capsys.readouterr().err
        assert not (out / "b.dcm").exists()
        fcntl.flock(held, fcntl.LOCK_UN)
    assert run(inp, out, job["cfg"], progress=False, redactor=job["redactor"])["counts"]["written"] == 1


FULL_DISK_HOOK = """
import errno
from radiograph_deid import pipeline
def full(ds, dst):  # as pydicom raises it: the disk's error wrapped with the tag it was writing
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as exc:
        raise OSError("With tag (7fe0, 0010) got exception: No space left on device") from exc
pipeline.write_dicom_atomic = full
"""


def test_a_full_disk_stops_the_run_with_the_reason_and_quarantines_nothing(job, tmp_path: Path,
                                                                           key_overrides: list[str]) -> None:
    """OUTPUT's disk full: each file was quarantined as an "internal error" until the quarantine's copy hit the
    same full disk and the run died with a traceback. The run now stops with the reason; the file was not at fault
    and is done on the next run. The full disk is simulated in every process of the run (a sitecustomize hook)."""
    inp, out, hook = tmp_path / "in", tmp_path / "out", tmp_path / "hook"
    inp.mkdir()
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FULL_DISK_HOOK)
    shutil.copy(job["inp"] / "gen" / "signed16.dcm", inp / "b.dcm")
    full = _redact_cli(inp, out, key_overrides, hook, "--workers", "1")
    assert full.returncode == 2 and "No space left on device" in full.stderr, full.stderr
    assert not Path(f"{out.resolve()}_quarantine").exists() or not any(Path(f"{out.resolve()}_quarantine").iterdir())
    assert not (out / ".deid" / "records" / "b.dcm.started").exists()  # the disk's fault, not the file's
    room = _redact_cli(inp, out, key_overrides, None, "--workers", "1")
    assert room.returncode == 0, room.stderr
    assert (out / "b.dcm").is_file()


def test_an_output_folder_this_user_may_not_write_stops_the_run(job, tmp_path: Path, monkeypatch,
                                                               capsys: pytest.CaptureFixture) -> None:
    """An OUTPUT made by another user: every file was quarantined as an "internal error ... please report", a
    copy of each original made for nothing. The run now stops with the reason, as for a full disk. (The tests
    run as root, whom permissions do not stop: the refusal is raised where the tool makes its temporary file.)"""
    import errno
    import tempfile

    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    shutil.copy(job["inp"] / "gen" / "signed16.dcm", inp / "b.dcm")
    mkstemp = tempfile.mkstemp

    def refused(*args, **kwargs):  # type: ignore[no-untyped-def]
        folder = Path(kwargs.get("dir") or "")
        if folder.resolve().is_relative_to(out.resolve()) and folder.resolve() != (out / ".deid").resolve():
            raise PermissionError(errno.EACCES, "Permission denied", str(folder / "tmpfile"))
        return mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    key = ["--key-file", str(tmp_path / "key")]
    assert cli_main(["redact", str(inp), str(out), "--no-progress", "--workers", "1", *key]) == 2
    assert "Permission denied" in capsys.readouterr().err
    assert not Path(f"{out.resolve()}_quarantine").exists() or not any(Path(f"{out.resolve()}_quarantine").iterdir())


def test_a_kept_marker_that_contradicts_the_header_is_in_the_summary(job, tmp_path: Path) -> None:
    """The cross-check of a kept L/R against ImageLaterality was in each image's record only; a reviewer reading
    summary.csv did not see it. It has its columns now, and the run its count."""
    inp = tmp_path / "in"
    inp.mkdir()
    for side in ("L", "R"):  # deid-data's DX keeps its burned-in R
        ds = pydicom.dcmread(job["inp"] / "real" / "cat.dcm")
        ds.ImageLaterality = side
        ds.save_as(inp / f"tagged_{side}.dcm")
    summary = run(inp, tmp_path / "out", job["cfg"], progress=False, redactor=job["redactor"])
    rows = {r["input"]: r for r in csv.DictReader(io.StringIO((tmp_path / "out" / ".deid" / "summary.csv").read_text()))}
    assert rows["tagged_L.dcm"]["laterality_kept"] == rows["tagged_R.dcm"]["laterality_kept"] == "R"
    assert (rows["tagged_L.dcm"]["laterality_mismatch"], rows["tagged_R.dcm"]["laterality_mismatch"]) == ("True", "False")
    assert summary["laterality_mismatches"] == 1


def test_the_summary_says_where_a_reviewer_looks_first(job, tmp_path: Path) -> None:
    """What a run leaves readable it cannot see, so each image's summary row gives the highest score among the marker
    detector's boxes it left unfilled (doubted and not read, a ring or spot spared): review in that order. Filled
    boxes, the text detector's unread proposals (scored on another scale) and a doubt lying on a box filled in its
    frame do not count. The contact sheet's ``--review N`` shows the N such images, their unfilled boxes outlined."""
    from radiograph_deid.records import top_unfilled_score

    written = {rel: row for rel, row in job["records"].items() if row["decision"] == "written"}
    for rel, row in written.items():
        assert row["top_unfilled_score"] == round(top_unfilled_score(record(job, rel)["boxes"]), 4), rel
    assert sum(row["top_unfilled_score"] > 0 for row in written.values()) >= 2  # real images hold doubts
    boxes = [{"box": [0, 0, 50, 20], "action": "redacted", "source": "marker-yolo", "score": 0.9},
             {"box": [100, 0, 150, 20], "action": "rejected", "source": "rapidocr-text", "score": 0.8},
             {"box": [200, 0, 220, 20], "action": "rejected", "source": "marker-yolo", "score": 0.31},
             {"box": [10, 5, 30, 20], "action": "rejected", "source": "marker-yolo", "score": 0.6}]
    assert (top_unfilled_score(boxes), top_unfilled_score(boxes[:2])) == (0.31, 0.0)  # 0.6 lies in a filled box
    assert top_unfilled_score(boxes[:1] + [{**boxes[3], "frame": "3"}]) == 0.6  # ... of another frame
    sheet = tmp_path / "review.png"
    script = Path(__file__).resolve().parents[1] / "scripts" / "contact_sheet.py"
    subprocess.run([sys.executable, str(script), str(job["inp"]), str(job["out"]), str(sheet), "--review", "2",
                    "--size", "200"], check=True)
    assert cv2.imread(str(sheet)).shape[:2] == (400, 400)


def test_the_contact_sheet_reads_a_run_whose_records_went_elsewhere(job, tmp_path: Path) -> None:
    """A run with its own ``output.records_dir`` left the contact sheet looking in the default folder only; it is
    told the folder as the run was (``--records-dir``), and says what to pass when it finds no summary."""
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(job["inp"] / "real" / "cat.dcm", inp / "cat.dcm")
    out = tmp_path / "out"
    cfg = replace(job["cfg"], output=replace(job["cfg"].output, records_dir="review/records"))
    assert run(inp, out, cfg, progress=False, redactor=job["redactor"])["counts"]["written"] == 1
    script = [sys.executable, str(Path(__file__).resolve().parents[1] / "scripts" / "contact_sheet.py"), str(inp),
              str(out), str(tmp_path / "sheet.png"), "--size", "100"]
    lost = subprocess.run(script, capture_output=True, text=True)
    assert lost.returncode != 0 and "--records-dir" in lost.stderr
    subprocess.run(script + ["--records-dir", "review/records", "--review", "1"], check=True)
    assert cv2.imread(str(tmp_path / "sheet.png")).shape[:2] == (100, 200)


def test_a_file_name_that_is_not_utf8_is_redacted_and_summarised(job, tmp_path: Path) -> None:
    """A name written in Latin-1 ("M\\xfcller.dcm", an old Windows share) stopped the run as it wrote summary.csv;
    it is written, summarised with its odd bytes shown as escapes, and resumed like any other."""
    inp = tmp_path / "in"
    inp.mkdir()
    odd = Path(os.fsdecode(os.fsencode(inp) + b"/M\xfcller.dcm"))
    try:
        shutil.copy(job["inp"] / "gen" / "signed16.dcm", odd)
    except OSError:
        pytest.skip("this file system takes UTF-8 names only")
    out = tmp_path / "out"
    summary = run(inp, out, job["cfg"], progress=False, redactor=job["redactor"])
    assert summary["counts"]["written"] == 1 and (out / odd.name).is_file()
    rows = list(csv.DictReader(io.StringIO((out / ".deid" / "summary.csv").read_text(encoding="utf-8"))))
    assert [r["input"] for r in rows] == ["M\\xfcller.dcm"]
    assert run(inp, out, job["cfg"], progress=False, redactor=job["redactor"])["resumed"] == 1


def test_names_that_differ_only_in_case_are_refused_where_output_cannot_tell_them_apart(
        job, tmp_path: Path, monkeypatch) -> None:
    """OUTPUT on a file system blind to letter case (macOS, an SMB share): "Scan.dcm" and "scan.dcm" were both
    recorded as written to what is one file there, one output lost. Such a run is refused, naming the pair; where
    case is told apart (this machine) both are written."""
    from radiograph_deid import folder_run
    from radiograph_deid.fileio import case_blind

    inp = tmp_path / "in"
    inp.mkdir()
    for name in ("Scan.dcm", "scan.dcm"):
        shutil.copy(job["inp"] / "gen" / "signed16.dcm", inp / name)
    blind = case_blind(tmp_path)
    assert not list(tmp_path.glob(".case-probe-*"))
    if not blind:
        summary = run(inp, tmp_path / "out", job["cfg"], progress=False, redactor=job["redactor"])
        assert summary["counts"]["written"] == 2
    monkeypatch.setattr(folder_run, "case_blind", lambda folder: True)
    with pytest.raises(ValueError, match="differ only in letter case"):
        run(inp, tmp_path / "out2", job["cfg"], progress=False, redactor=job["redactor"])
    assert not (tmp_path / "out2" / "Scan.dcm").exists()
    # with pseudonymous names the message names no input (paths may name patients); the records folder does
    hidden = replace(job["cfg"], output=replace(job["cfg"].output, names=OutputNames.PSEUDONYMOUS))
    with pytest.raises(ValueError, match="differ only in letter case") as refused:
        run(inp, tmp_path / "out3", hidden, progress=False, redactor=job["redactor"])
    assert "scan.dcm" not in str(refused.value).lower()
    named = tmp_path / "out3_deid" / folder_run.CASE_CLASH
    assert str(named) in str(refused.value) and "Scan.dcm" in named.read_text() and "scan.dcm" in named.read_text()
    assert not (tmp_path / "out3").exists() or not any((tmp_path / "out3").iterdir())


def test_a_run_clears_the_partly_written_files_an_interrupted_run_left(job, tmp_path: Path) -> None:
    """Writes go through a temporary file renamed into place; a run killed mid-write (power cut, SIGKILL) left it,
    half a DICOM, in OUTPUT for good. The next run removes such files, in OUTPUT and the quarantine."""
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    shutil.copy(job["inp"] / "gen" / "signed16.dcm", inp / "b.dcm")
    quarantine = Path(f"{out.resolve()}_quarantine")
    for left in (out / "sub" / ".tmp-k2j4.dcm", out / ".deid" / "records" / ".tmp-9x.json", quarantine / ".tmp-a.dcm"):
        left.parent.mkdir(parents=True, exist_ok=True)
        left.write_bytes(b"DICM half")
    run(inp, out, job["cfg"], progress=False, redactor=job["redactor"])
    assert not [p for folder in (out, quarantine) for p in folder.rglob(".tmp-*")]
    assert (out / "b.dcm").is_file()


def test_outputs_of_inputs_no_longer_there_are_reported_not_deleted(job, tmp_path: Path) -> None:
    """An input removed after a run (a patient who withdrew consent) left its output in OUTPUT while the next
    summary listed only the inputs present: nothing said it was there. The summary lists it now (inputs_gone);
    it is not deleted unasked."""
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    for name in ("a.dcm", "b.dcm"):
        shutil.copy(job["inp"] / "gen" / "signed16.dcm", inp / name)
    assert run(inp, out, job["cfg"], progress=False, redactor=job["redactor"])["inputs_gone"] == []
    (inp / "b.dcm").unlink()
    summary = run(inp, out, job["cfg"], progress=False, redactor=job["redactor"])
    assert summary["inputs_gone"] == [{"input": "b.dcm", "output": "b.dcm"}]
    assert (out / "b.dcm").is_file()


def test_prune_removes_what_was_made_of_inputs_withdrawn(job, tmp_path: Path) -> None:
    """A patient who withdrew consent: their inputs are deleted, and a site must be able to remove what was made
    of them, the quarantine's untouched copy (an original) included; --prune does, and refuses where OUTPUT was
    made from another INPUT, whose other inputs it would take for withdrawn."""
    inp, out, quarantine = tmp_path / "in", tmp_path / "out", tmp_path / "out_quarantine"
    (inp / "ward").mkdir(parents=True)
    for name in ("a.dcm", "ward/b.dcm"):
        shutil.copy(job["inp"] / "gen" / "signed16.dcm", inp / name)
    shutil.copy(job["inp"] / "bad" / "truncated.dcm", inp / "ward" / "c.dcm")
    run(inp, out, job["cfg"], progress=False, redactor=job["redactor"])
    assert (out / "ward" / "b.dcm").is_file() and (quarantine / "ward" / "c.dcm").is_file()
    shutil.rmtree(inp / "ward")
    pruning = replace(job["cfg"], output=replace(job["cfg"].output, prune=True))
    (inp / "icu").mkdir()
    with pytest.raises(ValueError, match="made from"):  # a run over one subfolder would take a.dcm for withdrawn
        run(inp / "icu", out, pruning, progress=False, redactor=job["redactor"])
    summary = run(inp, out, pruning, progress=False, redactor=job["redactor"])
    assert sorted(summary["pruned"]) == ["ward/b.dcm", "ward/c.dcm"] and summary["inputs_gone"] == []
    assert not (out / "ward").exists() and not (quarantine / "ward").exists()
    assert not list((out / ".deid" / "records").rglob("ward*")) and (out / "a.dcm").is_file()
    assert run(inp, out, pruning, progress=False, redactor=job["redactor"])["pruned"] == []


def test_hidden_files_get_a_record_and_hidden_folders_are_named(job, tmp_path: Path) -> None:
    """Hidden files and folders were passed over without a word: a DICOM saved as ".IM0001" by an export tool
    left no trace in the run. A hidden file now has its record (skipped, with the reason); a hidden folder is not
    searched, and the summary names it."""
    inp = tmp_path / "in"
    (inp / ".git").mkdir(parents=True)
    shutil.copy(job["inp"] / "gen" / "signed16.dcm", inp / "a.dcm")
    shutil.copy(job["inp"] / "gen" / "signed16.dcm", inp / ".IM0001")
    (inp / ".git" / "HEAD").write_text("ref: refs/heads/main")
    summary = run(inp, tmp_path / "out", job["cfg"], progress=False, redactor=job["redactor"])
    decisions = {d["input"]: (d["decision"], d["reason"]) for d in summary["images_detail"]}
    assert decisions["a.dcm"][0] == "written" and decisions[".IM0001"][0] == "skipped"
    assert "hidden file" in decisions[".IM0001"][1] and ".git/HEAD" not in decisions
    assert summary["hidden_folders_passed_over"] == [".git"]


def test_an_archive_in_input_is_named_as_one_not_searched(job, tmp_path: Path) -> None:
    """A study sent zipped was skipped as "not a DICOM file or a supported image", as if nothing were in it. The
    reason now says it is an archive whose contents were not searched, and what to do."""
    import tarfile
    import zipfile

    inp = tmp_path / "in"
    inp.mkdir()
    with zipfile.ZipFile(inp / "study.zip", "w") as z:
        z.write(job["inp"] / "gen" / "signed16.dcm", "IM0001.dcm")
    with tarfile.open(inp / "study.tar.gz", "w:gz") as t:
        t.add(job["inp"] / "gen" / "signed16.dcm", "IM0001.dcm")
    summary = run(inp, tmp_path / "out", job["cfg"], progress=False, redactor=job["redactor"])
    reasons = {d["input"]: (d["decision"], d["reason"]) for d in summary["images_detail"]}
    assert reasons["study.zip"][0] == reasons["study.tar.gz"][0] == "skipped"
    assert "ZIP archive" in reasons["study.zip"][1] and "gzip archive" in reasons["study.tar.gz"][1]
    assert "unpack it" in reasons["study.zip"][1]


def test_a_dicomdir_is_skipped_with_the_reason_not_quarantined(job, tmp_path: Path) -> None:
    """Every CD a patient brings has a DICOMDIR. Its SOP class is in its File Meta only, so it was quarantined
    as "corrupt or not DICOM", a false alarm on each CD. It is skipped now, by name or by class, and never
    written: it names the patients and would not match the de-identified files."""
    from pydicom.data import get_testdata_file

    inp = tmp_path / "in"
    (inp / "CD2").mkdir(parents=True)
    shutil.copy(get_testdata_file("DICOMDIR"), inp / "DICOMDIR")
    shutil.copy(get_testdata_file("DICOMDIR"), inp / "CD2" / "index.dcm")
    shutil.copy(job["inp"] / "gen" / "signed16.dcm", inp / "CD2" / "IM000001")
    summary = run(inp, tmp_path / "out", job["cfg"], progress=False, redactor=job["redactor"])
    got = {d["input"]: (d["decision"], d["reason"]) for d in summary["images_detail"]}
    assert got["DICOMDIR"][0] == got["CD2/index.dcm"][0] == "skipped", got
    assert "DICOMDIR" in got["CD2/index.dcm"][1] and got["CD2/IM000001"][0] == "written"
    assert not (tmp_path / "out_quarantine").exists() or not any((tmp_path / "out_quarantine").iterdir())
    assert not (tmp_path / "out" / "DICOMDIR").exists() and not (tmp_path / "out" / "CD2" / "index.dcm").exists()


def test_an_overlay_in_the_unused_high_bits_is_not_written(job, tmp_path: Path) -> None:
    """Bits above BitsStored (retired overlays in pixel data) went to OUTPUT untouched when nothing was boxed:
    the pixel data was written bit-identical. They are cleared, counted in the record, and the rest kept."""
    from radiograph_deid.synthetic import sample_radiograph

    ds, _ = sample_radiograph(512, 512, bits=12, burns=[])
    clean = ds.pixel_array.copy()
    marked = clean.copy()
    rng = np.random.default_rng(1)
    ys, xs = rng.integers(0, 512, 300), rng.integers(0, 512, 300)
    marked[ys, xs] |= 0x8000
    ds.PixelData = marked.tobytes()
    inp = tmp_path / "in"
    inp.mkdir()
    ds.save_as(inp / "overlay.dcm", write_like_original=False)
    run(inp, tmp_path / "out", job["cfg"], progress=False, redactor=job["redactor"])
    rec = json.loads((tmp_path / "out" / ".deid" / "records" / "overlay.dcm.json").read_text())
    assert rec["decision"] == "written" and rec["unused_bits_cleared"] == len(set(zip(ys, xs)))
    out = pydicom.dcmread(tmp_path / "out" / "overlay.dcm").pixel_array
    assert int(out.max()) < 4096, "bits above BitsStored were written"
    untouched = np.ones_like(clean, bool)
    for b in rec["boxes"]:
        if b["action"] == "redacted":
            x0, y0, x1, y1 = b["box"]
            untouched[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(out[untouched], clean[untouched])


def test_pseudonymous_names_leave_no_input_name_in_output(job, tmp_path: Path, caplog) -> None:
    """Sites name folders after patients; the outputs kept those names, and the records in OUTPUT/.deid too.
    With output.names=pseudonymous OUTPUT names no input: DICOM by its de-identified header, images by a keyed
    digest, records beside OUTPUT. Copies of one instance name one output: a byte-identical copy is skipped as
    a copy, a different file under the same SOP Instance UID is quarantined, and nothing is lost."""
    inp, out = tmp_path / "in", tmp_path / "out"
    patient = inp / "DOE^JOHN_1234567"
    (patient / "CD").mkdir(parents=True)
    shutil.copy(job["inp"] / "gen" / "signed16.dcm", patient / "CHEST PA.dcm")
    shutil.copy(job["inp"] / "gen" / "signed16.dcm", patient / "CD" / "IM000001")
    other = pydicom.dcmread(job["inp"] / "gen" / "signed16.dcm")
    other.SeriesDescription = "another image under the same SOP Instance UID"
    other.save_as(patient / "ANOTHER.dcm")  # found before CD/: the file of CD/ is written last, and stands
    shutil.copy(job["inp"] / "gen" / "photo.jpg", patient / "photo DOE.jpg")
    cfg = replace(job["cfg"], output=replace(job["cfg"].output, names=OutputNames.PSEUDONYMOUS))
    redactor = Redactor(cfg)
    summary = run(inp, out, cfg, progress=False, redactor=redactor)
    shown = [p.relative_to(out).as_posix() for p in out.rglob("*")]
    logged = [r.getMessage() for r in caplog.records]
    assert logged and not [m for m in logged if "DOE" in m or "CHEST" in m], "the log named an input"
    assert any("summary.csv row" in m for m in logged)
    assert shown and not [p for p in shown if "DOE" in p or "1234567" in p or "CHEST" in p or p.startswith(".")]
    got = {d["input"]: d for d in summary["images_detail"]}
    written = got["DOE^JOHN_1234567/CD/IM000001"]
    assert written["decision"] == "written" and got["DOE^JOHN_1234567/photo DOE.jpg"]["decision"] == "written"
    assert got["DOE^JOHN_1234567/CHEST PA.dcm"]["decision"] == "skipped"
    assert "a copy of DOE^JOHN_1234567/CD/IM000001" in got["DOE^JOHN_1234567/CHEST PA.dcm"]["reason"]
    assert got["DOE^JOHN_1234567/CHEST PA.dcm"]["output"] == written["output"]  # the copy's record names it
    assert got["DOE^JOHN_1234567/ANOTHER.dcm"]["decision"] == "quarantined"
    assert "SOP Instance UID" in got["DOE^JOHN_1234567/ANOTHER.dcm"]["reason"]
    assert (tmp_path / "out_quarantine" / "DOE^JOHN_1234567" / "ANOTHER.dcm").is_file()
    ds = pydicom.dcmread(out / written["output"])
    assert written["output"] == f"{ds.PatientID}/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
    assert (tmp_path / "out_deid" / "summary.json").is_file() and (tmp_path / "out_deid").stat().st_mode & 0o077 == 0
    sheet = tmp_path / "sheet.png"  # the contact sheet finds the summary beside OUTPUT
    script = Path(__file__).resolve().parents[1] / "scripts" / "contact_sheet.py"
    subprocess.run([sys.executable, str(script), str(inp), str(out), str(sheet), "--review", "1", "--size", "100"],
                   check=True)
    assert cv2.imread(str(sheet)).shape[:2] == (100, 200)
    again = run(inp, out, cfg, progress=False, redactor=redactor)  # the same names on every run with the key
    assert again["resumed"] == 4 and sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == sorted(shown)
    with pytest.raises(ValueError, match="output.names=pseudonymous"):
        run(inp, out, job["cfg"], progress=False, redactor=job["redactor"])
    shutil.rmtree(patient / "CD")  # the one written is withdrawn; its copy stays, and so does their one output
    pruned = run(inp, out, replace(cfg, output=replace(cfg.output, prune=True)), progress=False, redactor=redactor)
    assert pruned["pruned"] == ["DOE^JOHN_1234567/CD/IM000001"] and (out / written["output"]).is_file()


def test_a_name_at_the_length_limit_is_redacted_not_a_stopped_run(job, tmp_path: Path) -> None:
    """A file named with 250 characters (the limit is 255 bytes) stopped the whole run: its record, its name
    and ".json", could not be written. Records, reason files and a JPEG's PNG now shorten such a name with a
    digest; the file is redacted (or quarantined) like any other, and resumed."""
    inp = tmp_path / "in"
    inp.mkdir()
    long = "Ä" * 60 + "A" * 128  # 248 bytes in UTF-8: 252 with ".dcm", 256 with ".jpg.png", 257 with ".dcm.json"
    shutil.copy(job["inp"] / "gen" / "signed16.dcm", inp / f"{long}.dcm")
    shutil.copy(job["inp"] / "gen" / "photo.jpg", inp / f"{long}.jpg")
    (inp / f"{long}.dcx").write_bytes(job["inp"].joinpath("bad", "corrupt.dcm").read_bytes()[:100] + b"DICM")
    shutil.copy(job["inp"] / "bad" / "truncated.dcm", inp / f"{long}.dic")
    summary = run(inp, tmp_path / "out", job["cfg"], progress=False, redactor=job["redactor"])
    got = {d["input"]: d for d in summary["images_detail"]}
    assert got[f"{long}.dcm"]["decision"] == got[f"{long}.jpg"]["decision"] == "written"
    assert (tmp_path / "out" / got[f"{long}.jpg"]["output"]).is_file()
    assert got[f"{long}.dic"]["decision"] == "quarantined"
    reasons = list((tmp_path / "out_quarantine").glob("*.reason.json"))
    assert len(reasons) == 1 and json.loads(reasons[0].read_text())["input"] == f"{long}.dic"
    assert all(len(p.name.encode()) <= 255 for p in (tmp_path / "out").rglob("*"))
    assert run(inp, tmp_path / "out", job["cfg"], progress=False, redactor=job["redactor"])["resumed"] == 4


def test_the_quarantine_is_no_more_open_than_its_originals(job, tmp_path: Path) -> None:
    """A site keeps its PHI readable by few (0600). The quarantine's untouched copy of such a file was made 0644,
    readable by every user of the server; it now keeps its original's permissions, and a quarantine folder the
    run makes is open to its user alone."""
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(job["inp"] / "bad" / "truncated.dcm", inp / "private.dcm")
    shutil.copy(job["inp"] / "bad" / "truncated.dcm", inp / "shared.dcm")
    os.chmod(inp / "private.dcm", 0o600)
    os.chmod(inp / "shared.dcm", 0o644)
    run(inp, tmp_path / "out", job["cfg"], progress=False, redactor=job["redactor"])
    quarantine = tmp_path / "out_quarantine"
    assert (quarantine / "private.dcm").stat().st_mode & 0o777 == 0o600
    assert (quarantine / "shared.dcm").stat().st_mode & 0o077 == (0o644 & ~current_umask()) & 0o077
    assert quarantine.stat().st_mode & 0o077 == 0


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_in_input_is_skipped_not_waited_on(job, tmp_path: Path) -> None:
    """A named pipe in INPUT (os.walk lists it as a file) hung the run for ever: opening it waits for a writer.
    Anything but a regular file is now skipped with the reason."""
    import signal

    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(job["inp"] / "gen" / "signed16.dcm", inp / "a.dcm")
    os.mkfifo(inp / "pipe.dcm")

    def hung(*_: object) -> None:
        raise TimeoutError("the run waited on the named pipe")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    try:
        summary = run(inp, tmp_path / "out", job["cfg"], progress=False, redactor=job["redactor"])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    got = {d["input"]: d for d in summary["images_detail"]}
    assert got["a.dcm"]["decision"] == "written" and got["pipe.dcm"]["decision"] == "skipped"
    assert "not a regular file" in got["pipe.dcm"]["reason"]


def _redact_cli(inp: Path, out: Path, key_overrides: list[str], hook: Path | None, *extra: str, timeout: int = 900):
    """``radiograph-deid redact`` in a process of its own; with ``hook``, a sitecustomize loaded into it and into
    each worker it spawns (CRASH_HOOK) kills or stalls the process that takes bomb.dcm, doom.dcm, hang.dcm or
    late.dcm."""
    import subprocess
    import sys

    args = [sys.executable, "-m", "radiograph_deid.cli", "redact", str(inp), str(out), "--no-progress",
            "--set", key_overrides[0], *extra]
    repo = str(Path(__file__).resolve().parents[1])  # the code under test, whatever is installed
    paths = ([str(hook)] if hook else []) + [repo]
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
                          timeout=timeout)


def test_a_file_that_kills_or_stalls_its_worker_is_quarantined_and_the_run_finishes(tmp_path: Path,
                                                                                    key_overrides: list[str]) -> None:
    """A decoder that crashes on a corrupt file kills its worker process, and one caught in a loop never
    returns. A crash had ended the run (two more runs quarantined the file) and a loop stalled it for ever. Now a
    worker's death is met in the run: the files it had in work are done again, each alone in a process of its
    own, and one that kills that process too is quarantined; a file still in work after
    input.max_seconds_per_file is quarantined at once. The rest of the folder is written in the same run. The
    crash and the stall are real: a hook loaded into every process of the run ends or stalls the one that
    takes bomb.dcm or hang.dcm, and ends the one that takes late.dcm once its output is written. That output
    stayed in OUTPUT while its record said quarantined: it is removed now."""
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    for name in ("bomb.dcm", "hang.dcm", "late.dcm", "good.dcm", "fine.dcm"):
        shutil.copy(SAMPLE / "chest_cr_monochrome1.dcm", inp / name)
    done = _redact_cli(inp, out, key_overrides, crash_hook(tmp_path), "--workers", "2",
                       "--set", "input.max_seconds_per_file=20")
    assert done.returncode == 1, done.stderr  # 1: something was quarantined, the rest written
    recs = {n: json.loads((out / ".deid" / "records" / f"{n}.json").read_text())
            for n in ("bomb.dcm", "hang.dcm", "late.dcm")}
    assert recs["bomb.dcm"]["decision"] == "quarantined" and "died 2 times" in recs["bomb.dcm"]["reason"]
    assert recs["late.dcm"]["decision"] == "quarantined" and "died 2 times" in recs["late.dcm"]["reason"]
    assert recs["hang.dcm"]["decision"] == "quarantined" and "20 s" in recs["hang.dcm"]["reason"]
    assert (tmp_path / "out_quarantine" / "bomb.dcm").is_file() and (tmp_path / "out_quarantine" / "hang.dcm").is_file()
    assert (out / "good.dcm").is_file() and (out / "fine.dcm").is_file()
    assert sorted(p.name for p in out.iterdir()) == [".deid", "fine.dcm", "good.dcm"]  # no partial write left
    assert not list((out / ".deid" / "records").glob("*.started")) + list((out / ".deid" / "records").glob("*.writing"))


def test_a_run_of_one_file_is_held_to_the_time_limit(tmp_path: Path, key_overrides: list[str]) -> None:
    """A run of one file did it in the run's own process, where nothing could end a decoder caught in a loop: the
    run stalled for ever. Every file of a run is now done in a worker, so the limit holds for one file too."""
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    shutil.copy(SAMPLE / "chest_cr_monochrome1.dcm", inp / "hang.dcm")
    done = _redact_cli(inp, out, key_overrides, crash_hook(tmp_path), "--set", "input.max_seconds_per_file=10",
                       timeout=180)
    assert done.returncode == 1, done.stderr
    rec = json.loads((out / ".deid" / "records" / "hang.dcm.json").read_text())
    assert rec["decision"] == "quarantined" and "10 s" in rec["reason"]
    assert (tmp_path / "out_quarantine" / "hang.dcm").is_file() and not (out / "hang.dcm").exists()


def test_a_file_in_work_when_the_run_died_is_done_first_alone(tmp_path: Path, key_overrides: list[str]) -> None:
    """When the run itself dies (the out-of-memory killer takes it, the machine goes down), the marks of the
    files in work stay. The next run does a marked file first, alone, in a worker of its own, and quarantines it
    with the reason if it kills that one too; the rest of the folder is written."""
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    hook = crash_hook(tmp_path)
    shutil.copy(SAMPLE / "chest_cr_monochrome1.dcm", inp / "doom.dcm")
    died = _redact_cli(inp, out, key_overrides, hook)
    assert died.returncode == -9 and (out / ".deid" / "records" / "doom.dcm.started").read_text().split()[0] == "1"
    shutil.copy(SAMPLE / "chest_cr_monochrome1.dcm", inp / "good.dcm")
    (inp / "doom.dcm").rename(inp / "bomb.dcm")  # the same file, now killing its worker alone
    (out / ".deid" / "records" / "doom.dcm.started").rename(out / ".deid" / "records" / "bomb.dcm.started")
    done = _redact_cli(inp, out, key_overrides, hook)
    assert done.returncode == 1, done.stderr
    assert "in work when a run died" in done.stderr
    rec = json.loads((out / ".deid" / "records" / "bomb.dcm.json").read_text())
    assert rec["decision"] == "quarantined" and "died 2 times" in rec["reason"]
    assert (tmp_path / "out_quarantine" / "bomb.dcm").is_file() and (out / "good.dcm").is_file()
    assert not list((out / ".deid" / "records").glob("*.started"))


def test_an_image_over_the_pixel_limit_is_quarantined_before_it_is_decoded(job, tmp_path: Path,
                                                                             key_overrides: list[str]) -> None:
    """input.max_pixels_per_frame held for DICOM frames only: a PNG of a few kilobytes can hold a billion
    pixels, and it was decoded whole. An image over the limit is now refused from its header, with the reason."""
    inp = tmp_path / "in"
    inp.mkdir()
    cv2.imwrite(str(inp / "wide.png"), np.zeros((1200, 1000), np.uint8))
    cv2.imwrite(str(inp / "small.png"), to_stored(phantom(300, 300, 4), 8, False))
    cfg = load_config(overrides=key_overrides + ["input.max_pixels_per_frame=1000000"])
    summary = run(inp, tmp_path / "out", cfg, progress=False, redactor=Redactor(cfg, job["redactor"].markers.detector))
    recs = {d["input"]: d for d in summary["images_detail"]}
    assert recs["wide.png"]["decision"] == "quarantined" and "1000x1200" in recs["wide.png"]["reason"]
    assert recs["small.png"]["decision"] == "written"


def test_links_in_the_input_tree(job, tmp_path: Path) -> None:
    """A broken link stopped the whole run ("No such file or directory"); it is now skipped with the reason. A
    folder linked into INPUT (a site's archive) was passed over without a word; it is searched now, each real
    folder once (a link back up does not loop), and never a link into OUTPUT."""
    inp, out, archive = tmp_path / "in", tmp_path / "out", tmp_path / "archive"
    (archive / "2019").mkdir(parents=True)
    inp.mkdir()
    shutil.copy(job["inp"] / "gen" / "signed16.dcm", inp / "a.dcm")
    shutil.copy(job["inp"] / "gen" / "signed16.dcm", archive / "2019" / "b.dcm")
    (inp / "gone.dcm").symlink_to(tmp_path / "nowhere.dcm")
    (inp / "archive").symlink_to(archive)
    (inp / "up").symlink_to(inp)
    out.mkdir()
    (inp / "results").symlink_to(out)
    summary = run(inp, out, job["cfg"], progress=False, redactor=job["redactor"])
    decisions = {d["input"]: d["decision"] for d in summary["images_detail"]}
    assert decisions == {"a.dcm": "written", "archive/2019/b.dcm": "written", "gone.dcm": "skipped"}
    assert "cannot be read" in next(d for d in summary["images_detail"] if d["input"] == "gone.dcm")["reason"]
    assert (out / "archive" / "2019" / "b.dcm").is_file()


def test_an_output_that_cannot_be_locked_still_runs_with_a_warning(job, tmp_path: Path, monkeypatch, caplog) -> None:
    """A share that keeps no locks (flock answers ENOLCK) must not stop the tool: the run goes on, and says that
    it is unguarded."""
    import errno
    import fcntl

    def no_locks(fh, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(job["inp"] / "gen" / "signed16.dcm", inp / "b.dcm")
    with caplog.at_level(logging.WARNING, logger="radiograph_deid"):
        summary = run(inp, tmp_path / "out", job["cfg"], progress=False, redactor=job["redactor"])
    assert summary["counts"]["written"] == 1 and "cannot be locked" in caplog.text


def test_the_settings_digest_follows_what_decides_the_output(tmp_path: Path) -> None:
    """Settings and weights retrained into the same file change it; threads, where records go and the key file's
    path do not; the key itself does."""
    weights = tmp_path / "w.onnx"
    weights.write_bytes(b"first")
    base = [f"detector.weights={weights}"]
    digest = settings_digest(load_config(overrides=base), b"k" * 32)
    same = ["detector.threads=1", "output.records_dir=elsewhere", f"header.key_file={tmp_path / 'k'}"]
    assert all(settings_digest(load_config(overrides=base + [o]), b"k" * 32) == digest for o in same)
    assert settings_digest(load_config(overrides=base + ["detector.score_threshold=0.3"]), b"k" * 32) != digest
    assert settings_digest(load_config(overrides=base), b"j" * 32) != digest
    weights.write_bytes(b"retrained")
    assert settings_digest(load_config(overrides=base), b"k" * 32) != digest


class _BlindDetector:
    """A detector that misses everything: the safety net must catch what it leaves."""

    def __call__(self, view: np.ndarray) -> list[tuple[Box, BoxAction]]:
        return []


def test_verifier_quarantines_text_the_detector_missed(job, tmp_path: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(job["inp"] / "us" / "RGB_IMAGE.dcm", inp / "x.dcm")
    blind = Redactor(job["cfg"], detector=_BlindDetector())
    summary = run(inp, tmp_path / "out", job["cfg"], progress=False, redactor=blind)
    (rec,) = summary["images_detail"]
    assert rec["decision"] == "quarantined" and rec["stage"] == "verify"
    assert not (tmp_path / "out" / "x.dcm").exists()
    assert sha256(Path(f"{(tmp_path / 'out').resolve()}_quarantine") / "x.dcm") == sha256(inp / "x.dcm")


def test_text_in_colour_alone_is_filled() -> None:
    """A cyan line as bright as the lung under it: the marker detector sees luminance and the OCR detector a view
    reduced 2.5 times, and neither filled it (13-16 px on a 2400-px export). Thin colour on grey ground now shows
    black or white, whichever stands out from it, in the grey view they see (``pixels.display.detector_gray``)."""
    from radiograph_deid.evaluate import filled_mask
    from radiograph_deid.pipeline import MarkerDecider

    rgb, _, ink = in_colour_alone(1.25, 14)
    assert max(rgb.shape[:2]) > 2400
    filled = filled_mask(rgb.shape[:2], MarkerDecider(load_config()).decide(rgb)[1])
    assert filled[ink].mean() > 0.95


def test_the_safety_net_reads_text_in_colour_alone() -> None:
    """The safety net read the view's luminance alone, where a line in colour alone is not there: an image the
    detectors left it on was written. It reads colour on grey ground now as the detectors see it."""
    from radiograph_deid.verify import build_verifier

    rgb, lum, ink = in_colour_alone(0.5, 22)
    ys, xs = np.nonzero(ink)
    line = Box(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    verifier = build_verifier(load_config().verify)
    assert not [f for f in verifier(lum) if f.box.intersection(line)]
    assert [f for f in verifier(rgb) if f.box.intersection(line)]


def test_an_image_the_verifier_cannot_check_in_time_is_quarantined(job, tmp_path: Path) -> None:
    """Tesseract took 48 s on a 900 x 700 black page with a tenth of its pixels white specks; past
    ``verify.timeout_s`` its process is killed and the image, unchecked, goes to quarantine with the reason, never
    to OUTPUT."""
    inp = tmp_path / "in"
    inp.mkdir()
    noise = np.random.default_rng(0).random((900, 700)) < 0.1
    cv2.imwrite(str(inp / "noise.png"), noise.astype(np.uint8) * 255)
    cfg = replace(job["cfg"], verify=replace(job["cfg"].verify, timeout_s=1.0))
    summary = run(inp, tmp_path / "out", cfg, progress=False, redactor=Redactor(cfg, detector=_BlindDetector()))
    (rec,) = summary["images_detail"]
    assert (rec["decision"], rec["stage"]) == ("quarantined", "verify")
    assert "longer than 1 s" in rec["reason"] and "verify.timeout_s" in rec["reason"]
    assert not (tmp_path / "out" / "noise.png").exists()


def test_multiframe_static_text_is_filled_in_every_frame(job, tmp_path: Path) -> None:
    base = phantom(384, 384, 9)
    frames = np.stack([to_stored(burn(np.roll(base, 8 * i, axis=1), [Burn("DOE JANE 0048", 20, 20, 18)]), 8, False)
                       for i in range(3)])
    ds = make_dataset(frames, modality="XA")
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "cine.dcm", write_like_original=False)
    summary = run(tmp_path / "in", tmp_path / "out", job["cfg"], progress=False, redactor=job["redactor"])
    assert summary["counts"]["written"] == 1
    out = pydicom.dcmread(tmp_path / "out" / "cine.dcm").pixel_array
    assert out.shape == frames.shape
    assert (out[:, 24:36, 25:150] == 0).all()


def test_multiframe_text_in_one_unsampled_frame_is_found(job, tmp_path: Path) -> None:
    """A cine loop is searched on a sample of its frames (verify.max_frames), and text burned into one frame
    the sample passed over (a name stamped on one frame of an XA run) went to OUTPUT as it was: the detector
    and the safety net both looked at the same sampled frames. The brightest and darkest value each pixel takes
    in any frame are now searched too, over every frame."""
    base = phantom(384, 384, 9)
    frames = np.stack([to_stored(burn(np.roll(base, 8 * i, axis=1), [Burn("DOE JANE 0048", 20, 20, 18)] * (i == 7)),
                                 8, False) for i in range(20)])
    ds = make_dataset(frames, modality="XA")
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "cine.dcm", write_like_original=False)
    summary = run(tmp_path / "in", tmp_path / "out", job["cfg"], progress=False, redactor=job["redactor"])
    assert summary["counts"]["written"] == 1, summary["images_detail"]
    out = pydicom.dcmread(tmp_path / "out" / "cine.dcm").pixel_array
    text = frames[7] != to_stored(np.roll(base, 56, axis=1), 8, False)
    assert text.sum() > 500 and not text[60:].any()  # the name, at the top of frame 7 alone
    assert (out[7][text] == 0).mean() > 0.95


def test_output_inside_input_is_refused(job, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must not contain"):
        run(job["inp"], job["inp"] / "out", job["cfg"], progress=False, redactor=job["redactor"])


def test_non_image_dicom_header_only_option(job, tmp_path: Path, key_overrides: list[str]) -> None:
    (tmp_path / "in").mkdir()
    _sr().save_as(tmp_path / "in" / "sr.dcm", write_like_original=False)
    cfg = load_config(overrides=key_overrides + ["input.non_image=header_only"])
    summary = run(tmp_path / "in", tmp_path / "out", cfg, progress=False,
                  redactor=Redactor(cfg, detector=job["redactor"].markers.detector))
    assert summary["counts"]["written"] == 1
    out = pydicom.dcmread(tmp_path / "out" / "sr.dcm")
    assert "DOE" not in str(out.PatientName) and out.PatientIdentityRemoved == "YES"
    assert "BurnedInAnnotation" not in out  # no pixel stage ran, so no claim about pixels


def test_header_only_refuses_an_encapsulated_report_and_empties_a_presentation_states_text(
        job, tmp_path: Path, key_overrides: list[str]) -> None:
    """With input.non_image=header_only, an encapsulated PDF report and a presentation state's text annotation were
    written as they came, the patient's name in both: the header profile does not read inside a PDF. The report
    is quarantined with the reason; the annotation (Graphic Annotation Sequence, emptied as PS3.15 asks) goes."""
    (tmp_path / "in").mkdir()
    pdf = _sr()
    pdf.SOPClassUID = pdf.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"
    pdf.Modality, pdf.MIMETypeOfEncapsulatedDocument = "DOC", "application/pdf"
    pdf.EncapsulatedDocument = b"%PDF-1.4 Patient DOE^JANE MRN00482913 " + b"\0" * 64
    pdf.save_as(tmp_path / "in" / "report.dcm", write_like_original=False)
    state = _sr()
    state.SOPClassUID = state.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.11.1"
    text = Dataset()
    text.UnformattedTextValue = "DOE^JANE MRN00482913"
    note = Dataset()
    note.GraphicLayer, note.TextObjectSequence = "NOTES", pydicom.Sequence([text])
    state.Modality, state.GraphicAnnotationSequence = "PR", pydicom.Sequence([note])
    state.save_as(tmp_path / "in" / "state.dcm", write_like_original=False)
    cfg = load_config(overrides=key_overrides + ["input.non_image=header_only"])
    summary = run(tmp_path / "in", tmp_path / "out", cfg, progress=False,
                  redactor=Redactor(cfg, detector=job["redactor"].markers.detector))
    recs = {d["input"]: d for d in summary["images_detail"]}
    assert recs["report.dcm"]["decision"] == "quarantined" and "encapsulated document" in recs["report.dcm"]["reason"]
    assert not (tmp_path / "out" / "report.dcm").exists()
    assert recs["state.dcm"]["decision"] == "written"
    assert b"MRN00482913" not in (tmp_path / "out" / "state.dcm").read_bytes()


def _dot_matrix(img: np.ndarray, text: str, x: int, y: int, height: int) -> None:
    """Print ``text`` as a CR-plate dot-matrix imprint: the glyph sampled on a grid, one bright dot per cell."""
    glyphs = np.zeros((height, height * len(text)), np.float32)
    cv2.putText(glyphs, text, (0, height - 2), cv2.FONT_HERSHEY_SIMPLEX, height / 30, 1.0, max(2, height // 8))
    step = max(3, height // 7)
    for gy in range(0, glyphs.shape[0], step):
        for gx in range(0, glyphs.shape[1], step):
            if glyphs[gy, gx] > 0.5:
                cv2.circle(img, (x + gx, y + gy), max(1, step // 3), 1.0, -1)


def test_dot_matrix_date_is_redacted(job, tmp_path: Path) -> None:
    """Regression: a dot-matrix date on a real CR (covid-ccby) read just under the bar and survived."""
    img = phantom(800, 800, 11)
    _dot_matrix(img, "11 06 02", 560, 12, 28)
    (tmp_path / "in").mkdir()
    make_dataset(to_stored(img, 12, False), modality="CR", bits_stored=12).save_as(
        tmp_path / "in" / "dots.dcm", write_like_original=False)
    summary = run(tmp_path / "in", tmp_path / "out", job["cfg"], progress=False, redactor=job["redactor"])
    assert summary["counts"]["written"] == 1
    out = pydicom.dcmread(tmp_path / "out" / "dots.dcm").pixel_array
    src = to_stored(img, 12, False)
    region = (slice(12, 12 + 28), slice(560, 560 + 28 * 8))
    dots = src[region] > 0.9 * 4095
    assert dots.sum() > 50
    assert (out[region][dots] == 0).mean() > 0.95  # the dots are filled black


def test_worker_processes_give_the_same_output_and_decisions(job, tmp_path: Path) -> None:
    """--workers 2: every file gets the decision and the bytes a single process gives (same key, same models)."""
    out = tmp_path / "out"
    summary = run(job["inp"], out, job["cfg"], progress=False, workers=2)
    assert {d["input"]: d["decision"] for d in summary["images_detail"]} == \
        {k: v["decision"] for k, v in job["records"].items()}
    produced = {k: v for k, v in tree_hashes(out).items() if not k.startswith(".deid/")}
    expected = {k: v for k, v in tree_hashes(job["out"]).items() if not k.startswith(".deid/")}
    assert produced == expected
    assert tree_hashes(Path(f"{out.resolve()}_quarantine")).keys() == tree_hashes(job["quar"]).keys()


def test_the_default_worker_count_follows_the_cores_and_the_run_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """--workers 0 (the default): one process per usable core, at most 8, none beyond one per four files (a
    worker loads its own models first); a count given is used as it is; a negative one is refused."""
    from radiograph_deid.worker_pool import worker_count

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(2)), raising=False)
    assert [worker_count(0, n) for n in (1, 3, 7, 8, 100)] == [1, 1, 1, 2, 2]
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert [worker_count(0, n) for n in (8, 20, 1000)] == [2, 5, 8]
    assert worker_count(3, 1) == 3
    with pytest.raises(ValueError, match="workers"):
        worker_count(-1, 10)


def test_a_neighbours_fill_spares_a_kept_letter_and_only_its_pixels() -> None:
    """Text boxed beside a laterality tile: the text's fill, grown by its margin and along its line, reached the
    L kept next to it (a synthetic "ACC42789" blacked out its L). Every fill now spares the kept glyph's pixels,
    and nothing else of the marker's box; the text box is not thereby a kept marker (the safety net exempts
    kept markers only)."""
    from radiograph_deid.evaluate import filled_mask
    from radiograph_deid.pipeline import Decided, _glyphs_spared

    glyph = np.zeros((40, 30), bool)
    glyph[5:35, 8:12] = glyph[30:35, 8:24] = True  # an L
    marker = Decided(Box(100, 10, 130, 50, text="L"), BoxAction.KEPT_LATERALITY, Box(100, 10, 130, 50), glyph)
    text_fill = Box(20, 5, 115, 55)  # the text line's fill runs 15 px into the marker's box
    text = Decided(Box(25, 12, 95, 48, text="ACC42789"), BoxAction.REDACTED, text_fill, None)
    far = Decided(Box(20, 80, 60, 90), BoxAction.REDACTED, Box(20, 80, 60, 90), None)
    before = filled_mask((100, 200), [text, marker, far])
    spared = _glyphs_spared([text, marker, far])
    after = filled_mask((100, 200), spared)
    letter = np.zeros((100, 200), bool)
    letter[10:50, 100:130] = glyph
    assert before[letter].any() and not after[letter].any()
    assert (before & ~after).sum() == (before & letter).sum(), "more than the glyph's pixels were spared"
    assert spared[2].keep is None and spared[1] is marker
    assert [d.action for d in spared] == [BoxAction.REDACTED, BoxAction.KEPT_LATERALITY, BoxAction.REDACTED]


def test_a_marker_kept_twice_is_recorded_once_and_keeps_both_glyphs() -> None:
    """The deid-data cat's R: the shipped detector boxes its tile and, inside it, the letter; both read R. One
    marker, one record: the inner box goes and its glyph joins the outer's keep mask. A box inside a kept marker
    that reads another word is left as it is, and a filled box inside one is dropped (the kept fill covers it)."""
    from radiograph_deid.evaluate import filled_mask
    from radiograph_deid.pipeline import Decided, _inside_kept_dropped

    outer_glyph = np.zeros((60, 50), bool)
    outer_glyph[20:40, 20:24] = True
    inner_glyph = np.zeros((30, 20), bool)
    inner_glyph[5:25, 10:14] = True  # at (30..34, 15..35) of the outer box: pixels the outer did not keep
    outer = Decided(Box(0, 0, 50, 60, text="R"), BoxAction.KEPT_LATERALITY, Box(0, 0, 50, 60), outer_glyph.copy())
    inner = Decided(Box(20, 10, 40, 40, text="R"), BoxAction.KEPT_LATERALITY, Box(20, 10, 40, 40), inner_glyph)
    shred = Decided(Box(5, 45, 15, 55), BoxAction.REDACTED, Box(5, 45, 15, 55), None)
    before = filled_mask((80, 80), [outer, inner])
    out = _inside_kept_dropped([inner, outer, shred])
    assert len(out) == 1 and out[0] is outer
    after = filled_mask((80, 80), out)
    assert not after[~before].any() and not after[10:40, 20:40][inner_glyph].any()  # both glyphs stay, no more
    other = replace(inner, box=replace(inner.box, text="L"))
    assert len(_inside_kept_dropped([other, outer])) == 2


def test_a_marker_kept_twice_on_readings_of_opposite_sides_is_recorded_on_one() -> None:
    """A framed G (gauche) of a synthetic image was kept twice: its letter read "G", the frame around it "D"
    (droite); the record named both sides of one marker. The longer word stands (RIGHT over an I, izquierda,
    read inside it), else the inner box's reading; the pixels kept are the same as before."""
    from radiograph_deid.evaluate import filled_mask
    from radiograph_deid.pipeline import Decided, _inside_kept_dropped, _one_side_each

    outer_glyph = np.zeros((60, 50), bool)
    outer_glyph[5:55, 5:8] = True  # the frame's side
    inner_glyph = np.zeros((30, 20), bool)
    inner_glyph[5:25, 10:14] = True

    def kept_pair(outer_text: str, inner_text: str) -> list[Decided]:
        return [Decided(Box(0, 0, 50, 60, text=outer_text), BoxAction.KEPT_LATERALITY, Box(0, 0, 50, 60),
                        outer_glyph.copy()),
                Decided(Box(20, 10, 40, 40, text=inner_text), BoxAction.KEPT_LATERALITY, Box(20, 10, 40, 40),
                        inner_glyph.copy())]

    for outer_text, inner_text, recorded in (("D", "G", "G"), ("RIGHT", "I", "RIGHT")):
        both = kept_pair(outer_text, inner_text)
        one = _inside_kept_dropped(_one_side_each(both))
        assert [d.box.text for d in one] == [recorded]
        assert (filled_mask((80, 80), one) == filled_mask((80, 80), both)).all()  # the same pixels kept
    one_box = kept_pair("D", "G")
    one_box[1] = replace(one_box[1], fill=one_box[0].fill, keep=one_box[0].keep.copy())  # one box, read twice
    assert [d.box.text for d in _one_side_each(one_box)] == ["G", "G"]  # not swapped, still both sides
    same_side = _inside_kept_dropped(_one_side_each(kept_pair("LT", "L")))  # two readings of one side stand
    assert sorted(d.box.text for d in same_side) == ["L", "LT"]
