"""Known regions proposed from a site's labelled images (``radiograph-deid regions``): where text lies in the same
place on one device's images, a region covering every such label, read back as ``detector.known_regions``."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from radiograph_deid.cli import main as cli_main
from radiograph_deid.enums import BoxClass
from radiograph_deid.known_regions import file_values, load_rules
from radiograph_deid.labels import LabelledBox, LabelledImage, write_labels
from radiograph_deid.region_proposals import propose_rules, rules_yaml

from .conftest import deid_data, sha256

TEXT, LAT = BoxClass.OTHER_MARKER, BoxClass.LATERALITY


def _site(n: int, rng: np.random.Generator, corner: str = "bl", stray: bool = True) -> list[LabelledImage]:
    """``n`` label sets of one house style: a three-line overlay (names of any length) at a corner, a margin that
    varies by a few pixels, on plates of three sizes; a lead marker at the top; a stray label elsewhere."""
    images = []
    for i in range(n):
        w, h = [(2000, 2400), (2400, 2000), (1800, 2200)][i % 3]
        m = 40 + int(rng.integers(0, 12))
        boxes = []
        for k in range(3):
            length = int(rng.integers(150, 420))
            y0 = h - m - (3 - k) * 40 if corner[0] == "b" else m + k * 40
            x0 = m if corner[1] == "l" else w - m - length
            boxes.append(LabelledBox((x0, y0, x0 + length, y0 + 24), TEXT, f"line {k}"))
        lx = int(rng.integers(300, w - 300))
        boxes.append(LabelledBox((lx, 80, lx + 60, 160), LAT, "L"))
        if stray:
            sx, sy = int(rng.integers(400, w - 600)), int(rng.integers(400, h - 400))
            boxes.append(LabelledBox((sx, sy, sx + 200, sy + 30), TEXT, "stray"))
        images.append(LabelledImage(f"site/{corner}_{i:02d}.png", w, h, tuple(boxes)))
    return images


def _covers(box, xyxy) -> bool:  # type: ignore[no-untyped-def]
    return box.x0 <= xyxy[0] and box.y0 <= xyxy[1] and box.x1 >= xyxy[2] and box.y1 >= xyxy[3]


def _load(tmp_path: Path, rules) -> object:  # type: ignore[no-untyped-def]
    path = tmp_path / "proposed.yaml"
    path.write_text(rules_yaml(rules, "a test"))
    return load_rules(path)


def test_a_house_overlay_becomes_one_region_from_its_corner_that_covers_every_line(tmp_path: Path) -> None:
    images = _site(12, np.random.default_rng(0))
    (rule,) = propose_rules(images, any_size=True)
    (proposed,) = rule.regions
    assert rule.images == 12 and proposed.images == 12 and proposed.laterality == 0
    assert proposed.region.y0 < 0 and proposed.region.x0 >= 0  # counted from the bottom and left edges
    known = _load(tmp_path, [rule])
    for im in images:  # on every plate size, the region covers each overlay line, and no stray label or marker
        (box,) = known.boxes({}, im.height, im.width)
        assert all(_covers(box, b.xyxy) for b in im.boxes if b.text.startswith("line"))
        assert not any(box.intersection(_as_box(b)) for b in im.boxes if b.text in ("stray", "L"))
    (unseen,) = known.boxes({}, 3000, 2500)  # any size matches: the region is placed from its corner
    assert (unseen.x0, unseen.y1) == (proposed.region.x0, 3000 + (proposed.region.y1 or 0))


def _as_box(b: LabelledBox):  # type: ignore[no-untyped-def]
    from radiograph_deid.boxes import Box

    return Box(*b.xyxy)


def test_without_header_values_only_the_sizes_labelled_match_unless_any_size(tmp_path: Path) -> None:
    images = _site(9, np.random.default_rng(1))
    (rule,) = propose_rules(images)
    known = _load(tmp_path, [rule])
    assert len(known.boxes({}, 2400, 2000)) == 1
    assert known.boxes({}, 3000, 2500) == []


def test_each_device_gets_its_own_rule_from_its_own_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    left, right, few = _site(6, rng, "bl"), _site(6, rng, "tr"), _site(2, rng, "br")
    values = {**{im.file: {"Manufacturer": "Acme Medical", "ManufacturerModelName": "X 1"} for im in left},
              **{im.file: {"Manufacturer": "Other (R)"} for im in right},
              **{im.file: {"Manufacturer": "Rare"} for im in few}}
    rules = propose_rules(left + right + few, values)
    assert len(rules) == 2  # two images of the third device are too few
    by_maker = {dict(r.match)["Manufacturer"]: r for r in rules}
    acme, other = by_maker["Acme Medical"], by_maker[r"Other \(R\)"]  # spaces left as they are: a person reads it
    assert dict(acme.match)["ManufacturerModelName"] == "X 1" and "Rows" not in dict(acme.match)
    known = _load(tmp_path, rules)  # the patterns match the values they came from, and no other maker's
    assert known.boxes({"Manufacturer": "Other (R)"}, 2000, 2400)
    assert not known.boxes({"Manufacturer": "Other R"}, 2000, 2400)
    assert len(known.boxes({"Manufacturer": "acme medical", "ManufacturerModelName": "X 1"}, 2000, 2400)) == 1
    (a,), (o,) = acme.regions, other.regions
    assert a.region.y0 < 0 <= a.region.x0 and o.region.x0 < 0 <= o.region.y0


def test_text_in_too_few_images_makes_no_region_and_a_marker_inside_a_region_is_counted() -> None:
    rng = np.random.default_rng(3)
    images = _site(10, rng, stray=False)
    assert propose_rules(images, min_share=1.0, any_size=True)  # every image has the overlay
    sparse = [im if i < 4 else LabelledImage(im.file, im.width, im.height, tuple(b for b in im.boxes if b.cls is LAT))
              for i, im in enumerate(images)]
    assert propose_rules(sparse, min_share=0.5) == []  # the overlay in 4 of 10
    first = images[0]
    line = next(b for b in first.boxes if b.text == "line 1")
    marked = [LabelledImage(first.file, first.width, first.height, (*first.boxes, LabelledBox(line.xyxy, LAT, "R"))),
              *images[1:]]
    (rule,) = propose_rules(marked, any_size=True)
    assert rule.regions[0].laterality == 1


def test_regions_command_reads_the_maker_from_dicom_headers_and_never_replaces_a_file(tmp_path: Path,
                                                                                      capsys: pytest.CaptureFixture
                                                                                      ) -> None:
    root = tmp_path / "data"
    root.mkdir()
    images = []
    for i in range(3):  # deid-data's Agfa DX (3072 x 2614), its label: a line near the bottom right corner
        shutil.copy(deid_data("animals/cat.dcm"), root / f"dx{i}.dcm")
        line = LabelledBox((2600 - 20 * i, 2500, 3000, 2540), TEXT, "line")
        images.append(LabelledImage(f"dx{i}.dcm", 3072, 2614, (line,)))
    labels = tmp_path / "site.jsonl"
    write_labels(labels, images)
    out = tmp_path / "rules.yaml"
    assert cli_main(["regions", str(out), "--labels", str(labels), "--data-root", str(root)]) == 0
    known = load_rules(out)
    (rule,) = known.rules
    assert dict(rule.match) == {"Manufacturer": "Agfa", "ManufacturerModelName": "DXD60_1000G", "Rows": 2614.0,
                                "Columns": 3072.0}
    (box,) = known.boxes(file_values(root / "dx0.dcm", known.keywords), 2614, 3072)
    assert all(_covers(box, im.boxes[0].xyxy) for im in images)
    assert "1 region(s)" in capsys.readouterr().out
    digest = sha256(out)
    assert cli_main(["regions", str(out), "--labels", str(labels), "--data-root", str(root)]) == 2
    assert "exists" in capsys.readouterr().err and sha256(out) == digest
    misspelt = tmp_path / "misspelt.yaml"
    assert cli_main(["regions", str(misspelt), "--labels", str(labels), "--data-root", str(root),
                     "--keywords", "Manufacturer", "ModelName"]) == 2
    assert "ModelName" in capsys.readouterr().err and not misspelt.exists()



def test_a_runs_records_are_read_as_findings_and_a_rules_fill_is_not_one() -> None:
    from radiograph_deid.records import ImageRecord
    from radiograph_deid.region_proposals import records_as_labels

    def box(xyxy, action, source="marker-yolo"):  # type: ignore[no-untyped-def]
        return {"box": list(xyxy), "class": "other_marker", "score": 0.9, "action": action, "source": source}

    done = ImageRecord("a.dcm", 1, 1, rows=400, columns=300, boxes=[
        box((10, 10, 90, 30), "redacted"), box((200, 20, 230, 60), "kept_laterality"),
        box((100, 300, 200, 340), "rejected"), box((0, 0, 300, 50), "redacted", "known-region:banner")])
    unread = ImageRecord("b.dcm", 1, 1)  # quarantined before decoding: nothing was looked for
    (labelled,) = records_as_labels([done, unread])
    assert (labelled.file, labelled.width, labelled.height) == ("a.dcm", 300, 400)
    assert [(b.xyxy, b.cls) for b in labelled.boxes] == [((10, 10, 90, 30), TEXT), ((200, 20, 230, 60), LAT)]


def test_regions_from_a_redact_run_need_no_labels(tmp_path: Path, key_overrides: list[str],
                                                  capsys: pytest.CaptureFixture) -> None:
    """Four radiographs of one device whose name and date the detectors find at the top left: the run's records
    give a region there, which covers that text on each of them; the L each one keeps is not in it."""
    import cv2

    from radiograph_deid.synthetic import Burn, burn, phantom

    inp = tmp_path / "in"
    inp.mkdir()
    ends = []  # where each image's lines end
    for i, (rows, cols) in enumerate([(900, 800), (900, 800), (860, 760), (900, 800)]):
        h = 20
        lines = [Burn(["DOE, JANE  MRN00482913", "ROE, RICHARD  MRN7712", "POE, EDGAR  MRN0042", "LOE, AN  MRN5"][i],
                      30, 30, h), Burn(f"0{i + 1}/03/2024 14:2{i}", 30, 30 + 2 * h, h)]
        ends.append(max(b.extent()[2] for b in lines))
        img = burn(phantom(rows, cols, seed=i), [*lines, Burn("L", int(cols * 0.86), int(rows * 0.18), 40, 1.0, 5)])
        cv2.imwrite(str(inp / f"im{i}.png"), (img * 255).astype(np.uint8))
    out = tmp_path / "out"
    assert cli_main(["redact", str(inp), str(out), "--no-progress", *[a for o in key_overrides for a in ("--set", o)]]) == 0
    rules = tmp_path / "found.yaml"
    assert cli_main(["regions", str(rules), "--records", str(out), "--any-size"]) == 0
    assert "1 region(s), laterality markers inside: 0" in capsys.readouterr().out
    (rule,) = load_rules(rules).rules
    (region,) = rule.regions
    assert region.x0 <= 30 and region.y0 <= 30 and region.x1 is not None and region.y1 is not None
    assert sorted(ends)[1] <= region.x1 < 0.86 * 760  # as far as lines end in two images or more; not to the L
    assert 30 + 3 * 20 <= region.y1 < 200  # both lines, not the plate below them
    assert cli_main(["regions", str(tmp_path / "none.yaml"), "--records", str(inp)]) == 2  # no records there
    assert "no records/" in capsys.readouterr().err
