"""Device pictograms in an image's corners, found by their shape, on real radiographs from pydicom-data."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from radiograph_deid.boxes import Box
from radiograph_deid.config import RetentionConfig, load_config
from radiograph_deid.corner_icons import SOURCE, find_corner_icons
from radiograph_deid.detector import merge_duplicates
from radiograph_deid.enums import BoxAction, BoxClass
from radiograph_deid.evaluate import filled_mask
from radiograph_deid.fileio import read_frames
from radiograph_deid.pipeline import MarkerDecider
from radiograph_deid.pixels import to_display
from radiograph_deid.pixels.display import to_gray
from radiograph_deid.retention import LateralityRetainer

from .conftest import pydicom_data


def _radiograph(name: str = "RG1_UNCR.dcm") -> np.ndarray:
    return to_gray(to_display(read_frames(pydicom_data(name)), 0)).copy()


def _draw_icon(img: np.ndarray, right: bool, bottom: bool, w: int, h: int, gap: int, tile: int, mark: int
               ) -> tuple[int, int, int, int]:
    """A vendor's pictogram as the Hannover CR reader stamps it: a ``w`` x ``h`` tile in ink ``tile``, ``gap``
    pixels from the corner's two edges, with two dots and a bar of ink ``mark`` in it. Returns its box."""
    rows, cols = img.shape
    x0 = cols - gap - w if right else gap
    y0 = rows - gap - h if bottom else gap
    img[y0 : y0 + h, x0 : x0 + w] = tile
    dot = max(1, min(w, h) // 5)
    img[y0 + h // 4 : y0 + h // 4 + dot, x0 + w // 5 : x0 + w // 5 + dot] = mark
    img[y0 + h // 4 : y0 + h // 4 + dot, x0 + 3 * w // 5 : x0 + 3 * w // 5 + dot] = mark
    img[y0 + 3 * h // 5 : y0 + 3 * h // 5 + dot, x0 + w // 5 : x0 + 4 * w // 5] = mark
    return x0, y0, x0 + w, y0 + h


def _covers(found: list[Box], xyxy: tuple[int, int, int, int]) -> bool:
    x0, y0, x1, y1 = xyxy
    return any(b.x0 <= x0 + 1 and b.y0 <= y0 + 1 and x1 - 1 <= b.x1 and y1 - 1 <= b.y1 for b in found)


@pytest.mark.parametrize("name, right, bottom, w, h, gap", [
    ("RG1_UNCR.dcm", False, False, 9, 6, 2),  # the Hannover icon's size on a 640-px image, white on a dark corner
    ("RG1_UNCR.dcm", False, False, 24, 18, 0),  # against the edges
    ("RG1_UNCR.dcm", True, False, 46, 36, 14),  # the same icon on a 3000-px plate
    ("RG3_UNCR.dcm", True, True, 9, 6, 2),  # black on the tibia's bright collimated corners
    ("RG3_UNCR.dcm", False, True, 14, 10, 4),
    ("RG3_UNCR.dcm", True, False, 46, 36, 14),
])
def test_a_pictogram_in_any_corner_is_found_bright_or_dark(name: str, right: bool, bottom: bool, w: int, h: int,
                                                         gap: int) -> None:
    img = _radiograph(name)
    dark = name == "RG3_UNCR.dcm"
    icon = _draw_icon(img, right, bottom, w, h, gap, 10 if dark else 250, 240 if dark else 20)
    found = find_corner_icons(img)
    assert len(found) == 1 and _covers(found, icon), (found, icon)
    assert found[0].source == SOURCE and found[0].width <= 2 * w and found[0].height <= 2 * h


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG3_UNCR.dcm", "MR2_UNCR.dcm", "US1_UNCR.dcm", "gdcm-US-ALOKA-16.dcm"])
def test_real_images_hold_no_pictogram(name: str) -> None:
    """Real chest and tibia radiographs, an MR slice and two ultrasounds (one with digits in its top corner)."""
    assert find_corner_icons(_radiograph(name)) == []


def test_tiles_that_are_blank_faint_away_from_the_corner_or_letters_are_no_pictogram() -> None:
    """On the chest radiograph's dark corner (top left) and the tibia's bright ones."""
    img = _radiograph()
    img[4:12, 20:30] = 250  # a blank tile: nothing drawn in it
    _draw_icon(img, False, False, 14, 10, 60, 250, 20)  # 60 px from the edges: no corner stamp
    cv2.putText(img, "0", (4, 26), cv2.FONT_HERSHEY_DUPLEX, 0.8, 255, 3)  # a bold "0" against the corner
    assert find_corner_icons(img) == []
    for ch in "DOB8R":  # bold letters, bright on the dark corner
        img = _radiograph()
        cv2.putText(img, ch, (6, 56), cv2.FONT_HERSHEY_DUPLEX, 2.0, 255, 5)
        assert find_corner_icons(img) == [], ch
    img = _radiograph("RG3_UNCR.dcm")
    _draw_icon(img, True, True, 14, 10, 4, 190, 150)  # faint: 65 levels from the ground, not the extreme tone
    assert find_corner_icons(img) == []


def test_a_pictograms_box_is_filled_whole_and_joins_no_laterality_box() -> None:
    """A mark in the icon read as L is not kept; a lead marker's tile that lies in a corner is decided on the
    marker detector's box alone, so its letter is kept as it would be anywhere else."""
    view = np.full((200, 200), 60, np.uint8)
    cv2.putText(view, "L", (70, 140), cv2.FONT_HERSHEY_SIMPLEX, 3, 240, 8)
    retainer = LateralityRetainer(RetentionConfig())
    as_marker = retainer(view, [Box(40, 40, 160, 160, source="marker-yolo")])
    as_icon = retainer(view, [Box(40, 40, 160, 160, source=f"{SOURCE}+marker-yolo")])
    assert as_marker[0].action is BoxAction.KEPT_LATERALITY
    assert as_icon[0].action is BoxAction.REDACTED and as_icon[0].keep_mask is None
    icon = Box(40, 40, 160, 160, source=SOURCE)
    lead = Box(44, 44, 156, 156, 0.9, BoxClass.LATERALITY, source="marker-yolo")
    other = Box(44, 44, 156, 156, 0.9, BoxClass.OTHER_MARKER, source="marker-yolo")
    assert len(merge_duplicates([icon, lead])) == 2
    assert [b.source for b in merge_duplicates([icon, other])] == [f"{SOURCE}+marker-yolo"]


def test_the_default_pipeline_fills_a_corner_pictogram() -> None:
    img = _radiograph()
    icon = _draw_icon(img, False, False, 12, 8, 3, 250, 20)
    _, decided = MarkerDecider(load_config(overrides=[])).decide(img)
    filled = [d for d in decided if d.box.found_by(SOURCE)]
    assert filled and all(d.action is BoxAction.REDACTED and d.keep is None for d in filled)
    assert any(d.fill.contains(Box(*icon)) for d in filled)
    without = MarkerDecider(load_config(overrides=["detector.name=marker-yolo+rapidocr-text+ruler"]))
    assert not any(d.box.found_by(SOURCE) for d in without.decide(img)[1])


@pytest.mark.parametrize("letter, size", [("L", 60), ("R", 40)])
def test_a_lead_marker_tile_in_a_corner_keeps_its_letter(letter: str, size: int) -> None:
    """A dark letter on a bright tile in a corner is what a pictogram looks like, and the finder boxes it; the
    marker detector's laterality box is decided apart from it, so the letter is kept and its pixels stay."""
    img = _radiograph()
    x0, y0, w = 6, 6, int(size * 0.8)
    img[y0 : y0 + size, x0 : x0 + w] = 245
    (tw, th), _ = cv2.getTextSize(letter, cv2.FONT_HERSHEY_SIMPLEX, size / 33, size // 10)
    cv2.putText(img, letter, (x0 + (w - tw) // 2, y0 + (size + th) // 2), cv2.FONT_HERSHEY_SIMPLEX, size / 33, 15,
                size // 10)
    glyph = np.zeros(img.shape, bool)
    glyph[y0 : y0 + size, x0 : x0 + w] = img[y0 : y0 + size, x0 : x0 + w] < 100
    assert find_corner_icons(img)  # the tile is taken for a pictogram ...
    _, decided = MarkerDecider(load_config(overrides=[])).decide(img)
    assert any(d.action is BoxAction.KEPT_LATERALITY and d.box.text == letter for d in decided)
    assert not filled_mask(img.shape, decided)[glyph].any()  # ... and its letter is kept all the same
