"""Library pieces under the server and the bundle: Slicer ROI geometry, model store, uncertainty, round splits."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from radiograph_deid.active_learning import box_uncertainty, image_uncertainty
from radiograph_deid.labels import LabelledBox
from radiograph_deid.enums import BoxClass
from radiograph_deid.markups import PixelGeometry, boxes_from_markups, roi_markups
from radiograph_deid.model_store import SHIPPED, ModelStore
from radiograph_deid.train import SHIPPED_ONNX, SHIPPED_PT
from radiograph_deid.workflows import NotEnoughLabels, SiteImage, split_site_images

from .conftest import pydicom_data


def test_roi_markups_place_boxes_in_lps_and_read_back() -> None:
    ds = pydicom.Dataset()
    ds.ImagePositionPatient = [-100.0, 50.0, 20.0]
    ds.ImageOrientationPatient = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]  # a coronal-like plane: columns along +y, rows along -z
    ds.PixelSpacing = [0.5, 0.25]
    geo = PixelGeometry.from_dataset(ds)
    boxes = [{"xyxy": [10, 20, 50, 40], "cls": "laterality"}, {"xyxy": [0, 0, 8, 4], "cls": "text"}]
    doc = roi_markups(boxes, geo)
    roi = doc["markups"][0]
    # centre of pixels 10..49 (columns) and 20..39 (rows): column 29.5, row 29.5
    assert roi["center"] == pytest.approx([-100.0, 50.0 + 29.5 * 0.25, 20.0 - 29.5 * 0.5])
    assert roi["size"][:2] == pytest.approx([40 * 0.25, 20 * 0.5])
    assert np.reshape(roi["orientation"], (3, 3))[:, 0] == pytest.approx([0, 1, 0])
    back = boxes_from_markups(json.loads(json.dumps(doc)), geo)
    assert back == [{"xyxy": b["xyxy"], "cls": b["cls"]} for b in boxes]


def test_a_known_region_is_a_locked_roi_of_its_own_never_read_back_as_a_label() -> None:
    """The review lists a site's known regions as redact fills them; in Slicer each is an ROI named for what it is,
    locked, and a document edited there and sent back teaches the detector no rule's rectangle."""
    geo = PixelGeometry()
    boxes = [{"xyxy": [0, 0, 800, 56], "cls": "text", "source": "known-region:us-banner"},
             {"xyxy": [10, 20, 50, 40], "cls": "laterality", "source": "marker-yolo"}]
    doc = roi_markups(boxes, geo)
    region, marker = doc["markups"]
    assert region["name"].startswith("known-region") and region["locked"] is True
    assert "known-region:us-banner" in region["controlPoints"][0]["description"]
    assert marker["name"] == "laterality-2" and marker["locked"] is False
    assert boxes_from_markups(json.loads(json.dumps(doc)), geo) == [{"xyxy": [10, 20, 50, 40], "cls": "laterality"}]


def test_geometry_falls_back_when_tags_are_missing_or_wrong() -> None:
    ds = pydicom.dcmread(pydicom_data("RG1_UNCR.dcm"), stop_before_pixels=True)  # real CR: no position, 0 spacing
    geo = PixelGeometry.from_dataset(ds)
    assert geo.origin == (0.0, 0.0, 0.0) and min(geo.spacing) > 0
    bad = pydicom.Dataset()
    bad.ImageOrientationPatient = [1, 1, 0, 0, 0, 0]
    bad.PixelSpacing = [0, 0]
    assert PixelGeometry.from_dataset(bad) == PixelGeometry()


def test_uncertainty_peaks_at_the_threshold() -> None:
    assert box_uncertainty(0.35, 0.35) == 1.0
    assert box_uncertainty(0.0, 0.35) == 0.0 and box_uncertainty(1.0, 0.35) == 0.0
    assert box_uncertainty(0.3, 0.35) > box_uncertainty(0.1, 0.35)
    assert image_uncertainty([], 0.35) == 0.0
    assert image_uncertainty([0.99, 0.34, 0.02], 0.35) == pytest.approx(box_uncertainty(0.34, 0.35))


def test_a_failed_publish_leaves_the_served_version(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    assert store.current().name == SHIPPED and store.current().onnx == SHIPPED_ONNX
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(Exception):
        store.publish(SHIPPED_PT, broken, {})
    assert store.current().name == SHIPPED and not store.pointer.exists()
    v = store.publish(SHIPPED_PT, SHIPPED_ONNX, {"note": "same weights, new version"})
    assert store.current() == v and v.name != SHIPPED and v.info["previous"] == SHIPPED
    assert v.onnx.read_bytes() == SHIPPED_ONNX.read_bytes()
    store.pointer.write_text("{garbage")  # a damaged pointer serves the shipped weights, never a crash
    assert store.current().name == SHIPPED


def test_round_split_keeps_patients_on_one_side() -> None:
    box = (LabelledBox((0, 0, 5, 5), BoxClass.OTHER_MARKER),)
    images = [SiteImage(f"im{i}", Path(f"im{i}.png"), box, group=f"patient{i // 2}") for i in range(8)]
    train, val = split_site_images(images, 0.25)
    assert train and val and len(train) + len(val) == 8
    assert {im.group for im in train}.isdisjoint({im.group for im in val})
    with pytest.raises(NotEnoughLabels):
        split_site_images(images[:1])
    train, val = split_site_images(images[:2])  # one patient only: split by image, never the same image
    assert len(train) == len(val) == 1 and train[0].key != val[0].key
    with pytest.raises(NotEnoughLabels):
        split_site_images([images[0], images[0]])


def test_a_round_scoring_below_the_served_weights_is_not_published(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A round whose weights redact its validation images worse than the served ones leaves the served version in
    place and says so; a better round publishes, with both scores in its info. Training and export are replaced by
    copies of the shipped files and the scores by given ones; reading the images and building the dataset are real."""
    import cv2

    from radiograph_deid import train
    from radiograph_deid.config import load_config
    from radiograph_deid.train import SiteScore
    from radiograph_deid.workflows import RoundNotBetter, finetune_round

    box = (LabelledBox((20, 20, 40, 44), BoxClass.LATERALITY, "L"),)
    images = []
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"im{i}.png"), np.full((300, 260), 60 + 20 * i, np.uint8))
        images.append(SiteImage(f"im{i}", tmp_path / f"im{i}.png", box, group=f"patient{i}"))
    store = ModelStore(tmp_path / "models")
    monkeypatch.setattr(train, "train_detector", lambda data, plan, **kw: Path(plan.init))
    monkeypatch.setattr(train, "export_onnx", lambda best, dest: dest.write_bytes(SHIPPED_ONNX.read_bytes()) and dest)
    worse, better = SiteScore(0.5, 1.0, 1.0), SiteScore(1.0, 1.0, 1.0)
    told = iter((better, worse))
    monkeypatch.setattr(train, "pipeline_score", lambda onnx, images, root, cfg: next(told))
    with pytest.raises(RoundNotBetter, match="its weights: de-identified 50.0 %.*served weights .*100.0 %"):
        finetune_round(images, store, tmp_path / "round1", load_config(None, []), epochs=1)
    assert store.current().name == SHIPPED and not store.pointer.exists()
    told = iter((worse, better))
    version = finetune_round(images, store, tmp_path / "round2", load_config(None, []), epochs=1)
    assert store.current() == version and version.onnx.read_bytes() == SHIPPED_ONNX.read_bytes()
    assert version.info["val_redaction"]["started_from"]["deidentified"] == 0.5
    assert version.info["val_redaction"]["published"]["deidentified"] == 1.0


def test_a_round_proposes_regions_where_its_labels_put_text_in_one_place(tmp_path: Path) -> None:
    """A round's corrected images whose text lies in one corner on each give a rules file there (not applied), with
    what it rests on; images whose text lies anywhere give none, and an image that cannot be read is left out."""
    import cv2

    from radiograph_deid.config import load_config
    from radiograph_deid.known_regions import load_rules
    from radiograph_deid.workflows import propose_round_regions

    images = []
    for i in range(4):  # a name at the bottom left of plates of two sizes, a lead marker at the top
        h, w = (400, 360) if i % 2 else (380, 420)
        cv2.imwrite(str(tmp_path / f"im{i}.png"), np.full((h, w), 90, np.uint8))
        boxes = (LabelledBox((12, h - 40, 120 + 10 * i, h - 28), BoxClass.OTHER_MARKER, "name"),
                 LabelledBox((150, 10, 170, 34), BoxClass.LATERALITY, "L"))
        images.append(SiteImage(f"im{i}", tmp_path / f"im{i}.png", boxes))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    images.append(SiteImage("broken", tmp_path / "broken.png", images[0].boxes))
    cfg = load_config(None, [])
    found = propose_round_regions(images, tmp_path / "round" / "regions.yaml", cfg)
    assert found == {"file": str(tmp_path / "round" / "regions.yaml"),
                     "rules": [{"name": "site-1", "images": 4, "regions": 1, "laterality_inside": 0}]}
    (rule,) = load_rules(found["file"]).rules
    (region,) = rule.regions
    assert region.y0 < 0 and region.x0 >= 0 and region.x1 >= 150  # from the bottom left, as long as the longest name
    scattered = [SiteImage(im.key, im.path, (LabelledBox((30 + 90 * i, 60 * i + 100, 80 + 90 * i, 60 * i + 112),
                                                         BoxClass.OTHER_MARKER, "note"),)) for i, im in enumerate(images[:4])]
    assert propose_round_regions(scattered, tmp_path / "none.yaml", cfg) is None
    assert not (tmp_path / "none.yaml").exists()
