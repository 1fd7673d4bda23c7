"""The MONAI Label app in-process (FastAPI TestClient) on real DICOM: infer, labels, rounds, errors."""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest

from .conftest import deid_data, pydicom_data

monailabel = pytest.importorskip("monailabel")
REPO = Path(__file__).resolve().parents[1]
APP_DIR = REPO / "apps" / "radiograph_deid"
SAMPLE = REPO / "examples" / "sample"


def make_studies(root: Path) -> Path:
    root.mkdir(parents=True)
    shutil.copy(deid_data("animals/cat.dcm"), root / "dx_burned_r.dcm")
    shutil.copy(pydicom_data("RG1_UNCR.dcm"), root / "cr_chest.dcm")
    shutil.copy(SAMPLE / "chest_cr_monochrome1.dcm", root / "cr_mono1.dcm")
    shutil.copy(SAMPLE / "ward3" / "portable_dx.dcm", root / "portable_dx.dcm")
    shutil.copy(SAMPLE / "ward3" / "bedside.png", root / "bedside.png")
    (root / "PAT2" / "ST1").mkdir(parents=True)  # as exports nest them
    shutil.copy(SAMPLE / "chest_cr_monochrome1.dcm", root / "PAT2" / "ST1" / "IM000001")
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, key_overrides: list[str]):
    from fastapi.testclient import TestClient
    from monailabel.config import settings
    from monailabel.interfaces.utils.app import clear_cache

    tmp = tmp_path_factory.mktemp("app")
    studies = make_studies(tmp / "studies")
    settings.MONAI_LABEL_APP_DIR = str(APP_DIR)
    settings.MONAI_LABEL_STUDIES = str(studies)
    settings.MONAI_LABEL_APP_CONF = {"workspace": str(tmp / "workspace"), "destination": str(tmp / "deidentified"),
                                     "header.key_file": key_overrides[0].split("=", 1)[1]}
    settings.MONAI_LABEL_SESSION_PATH = str(tmp / "sessions")
    clear_cache()
    from monailabel.app import app

    with TestClient(app) as client:
        yield client, studies, tmp
    clear_cache()


def test_markers_returns_boxes_and_slicer_roi(server) -> None:
    client, _, _ = server
    r = client.post("/infer/markers?image=cr_mono1&output=json")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["width"] == 640 and doc["height"] == 768 and doc["model"] == "shipped"
    assert doc["boxes"] and all(b["cls"] in ("laterality", "text") for b in doc["boxes"])
    r = client.post("/infer/markers?image=cr_mono1&output=image")
    assert r.status_code == 200
    rois = r.json()["markups"]
    assert len(rois) == len(doc["boxes"])
    first, box = rois[0], doc["boxes"][0]["xyxy"]
    assert first["type"] == "ROI" and first["coordinateSystem"] == "LPS"
    # the ROI centre and size map back to the pixel box through the image's spacing
    ds = pydicom.dcmread(SAMPLE / "chest_cr_monochrome1.dcm", stop_before_pixels=True)
    sp = [float(v) for v in (ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing") or [1, 1])]
    assert first["size"][0] == pytest.approx((box[2] - box[0]) * sp[1])
    assert first["center"][1] == pytest.approx(((box[1] + box[3]) / 2 - 0.5) * sp[0])


def test_redact_dicom_in_dicom_out_and_stored_to_destination(server) -> None:
    client, studies, tmp = server
    before = (studies / "dx_burned_r.dcm").read_bytes()
    r = client.post("/infer/redact?image=dx_burned_r&output=image")
    assert r.status_code == 200, r.text
    out = tmp / "got.dcm"
    out.write_bytes(r.content)
    ds = pydicom.dcmread(out)
    src = pydicom.dcmread(studies / "dx_burned_r.dcm")
    assert ds.PatientIdentityRemoved == "YES" and ds.PatientID != src.PatientID
    assert ds.SOPInstanceUID != src.SOPInstanceUID
    assert (studies / "dx_burned_r.dcm").read_bytes() == before, "the original was modified"
    stored = list((tmp / "deidentified").glob("*.dcm"))
    assert [pydicom.dcmread(p).SOPInstanceUID for p in stored] == [ds.SOPInstanceUID]


def test_an_image_in_a_subfolder_is_served_by_its_path(server) -> None:
    client, studies, _ = server
    r = client.post("/infer/redact?image=PAT2/ST1/IM000001&output=image&params={\"store\": \"false\"}")
    assert r.status_code == 200, r.text
    ds = pydicom.dcmread(__import__("io").BytesIO(r.content))
    assert ds.PatientIdentityRemoved == "YES"
    r = client.post("/infer/markers?image=PAT2%2FST1%2FIM000001&output=json")
    assert r.status_code == 200 and r.json()["boxes"], r.text


def test_uploaded_dicom_comes_back_deidentified(server) -> None:
    client, _, _ = server
    data = deid_data("animals/cat.dcm").read_bytes()
    r = client.post("/infer/redact?output=image&params={\"store\": \"false\"}",
                    files={"file": ("upload.dcm", data, "application/dicom")})
    assert r.status_code == 200, r.text
    ds = pydicom.dcmread(__import__("io").BytesIO(r.content))
    assert ds.PatientIdentityRemoved == "YES" and ds.SOPInstanceUID != pydicom.dcmread(deid_data("animals/cat.dcm")).SOPInstanceUID


def test_a_stored_image_is_named_by_its_content_not_its_own_name(server) -> None:
    """A site may name image files after its patients; a DICOM result is stored under its remapped SOP Instance
    UID, and an image result now under its content's digest (it kept its own name, and two images of one name
    from two folders would have been one file)."""
    client, _, tmp = server
    r = client.post("/infer/redact?image=bedside&output=image")
    assert r.status_code == 200, r.text
    digest = hashlib.sha256(r.content).hexdigest()[:32]
    assert (tmp / "deidentified" / f"{digest}.png").read_bytes() == r.content
    assert not (tmp / "deidentified" / "bedside.png").exists()


def test_answers_leave_nothing_behind_once_sent(server, tmp_path: Path, monkeypatch) -> None:
    """Each answer was written to a folder of its own in /tmp; MONAI Label deleted the file once sent but not the
    folder, and a failed store to the destination left the de-identified file there too: a served lab's /tmp
    gathered one folder per request."""
    client, _, tmp = server
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for _ in range(3):
        r = client.post("/infer/redact?image=cr_mono1&output=image&params={\"store\": \"false\"}")
        assert r.status_code == 200, r.text
    app = __import__("monailabel.interfaces.utils.app", fromlist=["app_instance"]).app_instance()
    def broken_store(path: Path) -> str:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(app._infers["redact"].destination, "store", broken_store)
    with pytest.raises(OSError):
        client.post("/infer/redact?image=cr_mono1&output=image")
    assert not list(tmp_path.iterdir()), "an answer's folder was left in the temporary folder"
    outgoing = tmp / "workspace" / "outgoing"
    assert not [p for p in outgoing.rglob("*") if p.is_file()], "an answer was left after it was sent or failed"
    assert len(list(outgoing.iterdir())) <= 1, "the folders of sent answers pile up"


APP_CRASH_HOOK = """
import os, re
from radiograph_deid import pipeline, workflows
def acts_on_marked(src):
    head = open(src, "rb").read(4096)
    if b"CRASH-ME" in head:
        os._exit(70)  # as a decoder's segmentation fault kills the process
    if b"STALL-ME" in head:
        re.match("(a+)+$", "a" * 64 + "!")  # as a decoder caught in a loop in C
process, read_view = pipeline.Redactor.process, workflows.read_view
def redacts(self, src, *args, **kwargs):
    acts_on_marked(src)
    return process(self, src, *args, **kwargs)
def reads(src, *args):
    acts_on_marked(src)
    return read_view(src, *args)
pipeline.Redactor.process, workflows.read_view = redacts, reads
"""


class _Images:
    """What the uncertainty cache asks of a datastore, over files of the test's own."""

    def __init__(self, uris: dict[str, Path]) -> None:
        self.uris, self.info = uris, {}  # type: ignore[var-annotated]

    def get_image_info(self, image: str) -> dict:
        return self.info.get(image, {})

    def update_image_info(self, image: str, info: dict) -> None:
        self.info.setdefault(image, {}).update(info)

    def get_image_uri(self, image: str) -> str:
        return str(self.uris[image])


def test_a_file_that_crashes_or_stalls_the_server_is_refused_and_the_server_goes_on(
        server, tmp_path: Path, monkeypatch) -> None:
    """The app read and redacted in the server's own process: a decoder's crash on one upload ended the MONAI
    Label server, and a decoder caught in a loop stalled it. The redactor now works in a process of its own, and
    the marker finder and the uncertainty scoring there too; such a file is refused with the reason (a file to
    redact is quarantined; one to score is left out of the ranking), the process is started anew, and the next
    request is served. The crash and the stall are real: a hook loaded into that process acts on marked files."""
    import dataclasses
    import io
    import os

    client, _, tmp = server
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(APP_CRASH_HOOK)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook), str(REPO), os.environ.get("PYTHONPATH", "")]))
    app = __import__("monailabel.interfaces.utils.app", fromlist=["app_instance"]).app_instance()
    redactor = app._infers["redact"].served.get()[2]
    redactor.close()  # its next process starts with the hook
    cfg = redactor.cfg
    monkeypatch.setattr(redactor, "cfg", dataclasses.replace(cfg, input=dataclasses.replace(cfg.input,
                                                                                            max_seconds_per_file=10)))

    def marked(word: str) -> bytes:
        ds = pydicom.dcmread(SAMPLE / "chest_cr_monochrome1.dcm")
        ds.PatientID = word
        buf = io.BytesIO()
        ds.save_as(buf)
        return buf.getvalue()

    try:
        for word, reason in (("CRASH-ME", "died with it in work"), ("STALL-ME", "still in work after 10 s")):
            r = client.post("/infer/redact?output=image&params={\"store\": \"false\"}",
                            files={"file": ("upload.dcm", marked(word), "application/dicom")})
            assert r.status_code == 415 and reason in r.json()["detail"], r.text
            r = client.post("/infer/redact?image=cr_mono1&output=image&params={\"store\": \"false\"}")
            assert r.status_code == 200, r.text
            r = client.post("/infer/markers?output=json", files={"file": ("upload.dcm", marked(word),
                                                                          "application/dicom")})
            assert r.status_code == 415 and reason in r.json()["detail"], r.text
            r = client.post("/infer/markers?image=cr_mono1&output=json")
            assert r.status_code == 200 and r.json()["boxes"], r.text
        (tmp_path / "crash.dcm").write_bytes(marked("CRASH-ME"))
        images = _Images({"crash": tmp_path / "crash.dcm", "chest": SAMPLE / "chest_cr_monochrome1.dcm"})
        scored, unreadable = app.uncertainty.scores(images, ["crash", "chest"])
        assert list(scored) == ["chest"] and "died with it in work" in unreadable["crash"]
        assert images.info["crash"]["uncertainty"] is None  # not read again under the same model
    finally:
        monkeypatch.undo()
        redactor.close()  # the next process starts without the hook
    reasons = [json.loads(p.read_text())["reason"] for p in (tmp / "workspace" / "quarantine").glob("*.reason.json")]
    assert any("died with it in work" in r for r in reasons) and any("10 s" in r for r in reasons)


def test_upload_that_is_not_an_image_gets_415_and_is_quarantined(server) -> None:
    client, _, tmp = server
    r = client.post("/infer/redact?output=image", files={"file": ("notes.png", b"this is not an image", "image/png")})
    assert r.status_code == 415, r.text
    assert "not de-identified" in r.json()["detail"]
    reasons = list((tmp / "workspace" / "quarantine").glob("*.png.reason.json"))
    assert reasons and "not a readable" in json.loads(reasons[0].read_text())["reason"]
    r = client.post("/infer/markers?output=json", files={"file": ("x.dcm", b"\0" * 200, "application/dicom")})
    assert r.status_code == 415, r.text


def test_unknown_names_get_404_with_a_reason(server) -> None:
    client, _, _ = server
    for url, word in (("/infer/nosuchmodel?image=cr_mono1", "model"), ("/infer/markers?image=nosuchimage", "image"),
                      ("/activelearning/nosuchstrategy", "strategy"), ("/train/nosuchmodel", "model"),
                      ("/scoring/nosuchmethod?run_sync=true", "scoring")):
        r = client.post(url)
        assert r.status_code == 404, (url, r.status_code, r.text)
        assert word in r.json()["detail"]


@pytest.mark.parametrize("body", [b"{not json", b'{"boxes": "none"}', b'{"boxes": [{"xyxy": [5, 5, 1, 1], "cls": "text"}]}',
                                  b'{"boxes": [{"xyxy": [0, 0, 10, 10], "cls": "tattoo"}]}',
                                  b'{"boxes": [{"xyxy": [0, 0, 99999, 10], "cls": "text"}]}'])
def test_malformed_label_gets_422_and_is_not_saved(server, body: bytes) -> None:
    client, studies, _ = server
    r = client.put("/datastore/label?image=bedside", files={"label": ("l.json", body, "application/json")})
    assert r.status_code == 422, r.text
    assert client.head("/datastore/label?image=bedside&tag=final").status_code != 200


LABELLED = ["cr_chest", "cr_mono1", "portable_dx", "dx_burned_r", "PAT2/ST1/IM000001"]
LABELS = {im: {"boxes": [{"xyxy": [10 + i, 20 + i, 60 + i, 50 + i], "cls": "text"}]} for i, im in enumerate(LABELLED)}


def put_label(client, image: str) -> str:  # type: ignore[no-untyped-def]
    """Save ``LABELS[image]`` through the server, as an annotator's client does; the error text, or ""."""
    r = client.put(f"/datastore/label?image={image}&params={{}}",
                   files={"label": (f"{image}.json", json.dumps(LABELS[image]).encode(), "application/json")})
    return "" if r.status_code == 200 else r.text


def test_concurrent_annotators_lose_nothing_and_never_mix_images(server) -> None:
    client, _, _ = server
    images, labels = LABELLED, LABELS
    errors: list[str] = []

    def save(im: str) -> None:
        for _ in range(3):
            error = put_label(client, im)
            if error:
                errors.append(error)

    threads = [threading.Thread(target=save, args=(im,)) for im in images]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for im in images:
        r = client.get(f"/datastore/label?label={im}&tag=final")
        assert r.status_code == 200 and json.loads(r.content) == labels[im]


def test_next_sample_least_confident_skips_labelled_and_handed_out(server) -> None:
    client, _, _ = server
    r = client.post("/activelearning/least_confident", json={})
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["id"] == "bedside"  # the only image without a label (the concurrency test labelled the rest)
    assert 0.0 <= first["uncertainty"] <= 1.0
    r = client.post("/activelearning/least_confident", json={})
    assert r.json() == {}, "an image just handed to one annotator went to another"
    r = client.post("/scoring/uncertainty?run_sync=true")
    assert r.status_code == 200, r.text


def test_training_round_swaps_weights_and_a_failed_round_changes_nothing(server, monkeypatch) -> None:
    pytest.importorskip("ultralytics")
    client, _, tmp = server
    pointer = tmp / "workspace" / "models" / "current.json"
    assert not pointer.exists()
    assert not any(put_label(client, im) for im in LABELLED)  # a round needs labels; run alone, none were saved
    from radiograph_deid import workflows

    def broken(*a, **k):
        raise RuntimeError("simulated crash in training")

    monkeypatch.setattr("radiograph_deid.train.train_detector", broken)
    with pytest.raises(RuntimeError):
        client.post("/train/markers?run_sync=true", json={"max_epochs": 1})
    assert not pointer.exists()
    assert client.post("/infer/markers?image=cr_mono1&output=json").json()["model"] == "shipped"
    monkeypatch.undo()
    from radiograph_deid.train import SiteScore

    # the round redacts its validation images better than the served weights: published and served
    scores = iter((SiteScore(0.5, 1, 1), SiteScore(1, 1, 1)))
    monkeypatch.setattr("radiograph_deid.train.pipeline_score", lambda onnx, images, root, cfg: next(scores))
    r = client.post("/train/markers?run_sync=true", json={"max_epochs": 1})
    assert r.status_code == 200, r.text
    version = json.loads(pointer.read_text())["version"]
    assert r.json()["published"] and r.json()["version"] == version
    assert "regions_proposed" in r.json()  # a rules file where the labels put text in one place (none here)
    assert set(r.json()["val_images"]).isdisjoint(r.json()["train_images"])
    assert client.post("/infer/markers?image=cr_mono1&output=json").json()["model"] == version
    # a round that redacts them worse is not published, says why, and the served version stays
    scores = iter((SiteScore(1, 1, 1), SiteScore(0.5, 1, 1)))
    r = client.post("/train/markers?run_sync=true", json={"max_epochs": 1})
    assert r.status_code == 200 and not r.json()["published"] and "Not published" in r.json()["reason"], r.text
    assert r.json()["serving"] == version == json.loads(pointer.read_text())["version"]
    assert client.post("/infer/markers?image=cr_mono1&output=json").json()["model"] == version
    assert workflows is not None



def test_the_folder_datastore_lists_every_image_type_redact_reads(server, tmp_path: Path) -> None:
    """BMP and JPEG 2000 images, which ``redact`` reads, were not listed by the app's folder datastore."""
    import importlib

    import cv2

    datastores = importlib.import_module("lib.datastores")  # as the app loaded it
    img = np.full((64, 64), 100, np.uint8)
    for name in ("a.png", "b.jpg", "c.tif", "d.bmp", "e.jp2"):
        cv2.imwrite(str(tmp_path / name), img)
    shutil.copy(SAMPLE / "chest_cr_monochrome1.dcm", tmp_path / "f.dcm")
    store = datastores.RadiographLocalDatastore(str(tmp_path), auto_reload=False)
    assert sorted(store.list_images()) == ["a", "b", "c", "d", "e", "f"]


def test_the_folder_datastore_finds_images_in_subfolders_and_labels_them(server, tmp_path: Path) -> None:
    """Exports nest their images (patient/study/IM000001); MONAI Label's folder datastore saw the top level only,
    so a lab's server over such a folder had nothing to label. Images are found in subfolders (their id is their
    path), a label is saved beside the others in the same subfolder, and MONAI Label's labels/ is not searched."""
    import importlib

    datastores = importlib.import_module("lib.datastores")  # as the app loaded it
    (tmp_path / "PAT1" / "ST1").mkdir(parents=True)
    (tmp_path / ".trash").mkdir()
    shutil.copy(SAMPLE / "chest_cr_monochrome1.dcm", tmp_path / "PAT1" / "ST1" / "IM000001")
    shutil.copy(SAMPLE / "ward3" / "bedside.png", tmp_path / "PAT1" / "bedside.png")
    shutil.copy(SAMPLE / "chest_cr_monochrome1.dcm", tmp_path / "top.dcm")
    shutil.copy(SAMPLE / "chest_cr_monochrome1.dcm", tmp_path / ".trash" / "old.dcm")
    store = datastores.RadiographLocalDatastore(str(tmp_path), auto_reload=False)
    assert sorted(store.list_images()) == ["PAT1/ST1/IM000001", "PAT1/bedside", "top"]
    assert Path(store.get_image_uri("PAT1/ST1/IM000001")) == (tmp_path / "PAT1" / "ST1" / "IM000001").resolve()
    label = tmp_path / "label.json"
    label.write_text(json.dumps({"boxes": [{"xyxy": [10, 10, 60, 40], "cls": "text"}]}))
    store.save_label("PAT1/ST1/IM000001", str(label), "final", {})
    assert (tmp_path / "labels" / "final" / "PAT1" / "ST1" / "IM000001.json").is_file()
    assert store.get_labeled_images() == ["PAT1/ST1/IM000001"]
    assert [item["id"] for item in store.datalist()] == ["PAT1/ST1/IM000001"]  # a round's key, not "IM000001"
    again = datastores.RadiographLocalDatastore(str(tmp_path), auto_reload=False)  # a restart keeps it
    assert sorted(again.list_images()) == ["PAT1/ST1/IM000001", "PAT1/bedside", "top"]
    assert again.get_labeled_images() == ["PAT1/ST1/IM000001"]


def test_the_folder_datastore_lists_dicom_as_pacs_exports_name_it(server, tmp_path: Path) -> None:
    """Extensions in capitals ("IM1.DCM"), no extension ("IM000001") and SOP Instance UIDs as names were not
    listed (MONAI Label matches names, case-sensitively, and took a UID's digits for its extension), though
    ``redact`` reads them all; a DICOMDIR and a note with no extension are not images."""
    import importlib

    datastores = importlib.import_module("lib.datastores")  # as the app loaded it
    dicom = SAMPLE / "chest_cr_monochrome1.dcm"
    uid = "1.2.826.0.1.3680043.8.498.12345"
    for name in ("IM1.DCM", "IM000001", uid, "DICOMDIR", "scan.Dicom"):
        shutil.copy(dicom, tmp_path / name)
    (tmp_path / "README").write_text("exported from PACS\n")
    (tmp_path / "PHOTO.PNG").write_bytes((SAMPLE / "ward3" / "bedside.png").read_bytes())
    store = datastores.RadiographLocalDatastore(str(tmp_path), auto_reload=False)
    assert sorted(store.list_images()) == sorted(["IM1", "IM000001", uid, "scan", "PHOTO"])
    assert Path(store.get_image_uri(uid)) == (tmp_path / uid).resolve()
    assert Path(store.get_image_uri("IM000001")) == (tmp_path / "IM000001").resolve()
