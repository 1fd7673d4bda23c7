"""Rulers found by their geometry, on real radiographs from pydicom-data (no ../shared)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from radiograph_deid.boxes import Box
from radiograph_deid.config import load_config
from radiograph_deid.enums import BoxAction
from radiograph_deid.fileio import read_frames
from radiograph_deid.pipeline import MarkerDecider
from radiograph_deid.pixels import to_display
from radiograph_deid.pixels.display import to_gray
from radiograph_deid.rulers import find_rulers, find_rulers_any_size

from .conftest import pydicom_data


def _radiograph(name: str) -> np.ndarray:
    return to_gray(to_display(read_frames(pydicom_data(name)), 0))


def _draw_ruler(img: np.ndarray, x: int, y: int, step: int, n: int, tick: int, value: int,
                minor: int = 0, labels_below: bool = False, stroke: int = 2, font: float = 0.6
                ) -> list[tuple[int, int, int, int]]:
    """A horizontal ruler drawn in ink ``value``: its line at row ``y`` from ``x``, ``n`` labelled major ticks
    ``step`` apart (and ``minor`` half-length ticks between them). Returns each label's ink box."""
    cv2.line(img, (x, y), (x + step * (n - 1), y), value, stroke)
    for i in range(n - 1):
        for j in range(1, minor + 1):
            mx = x + i * step + j * step // (minor + 1)
            cv2.line(img, (mx, y), (mx, y - tick // 2), value, stroke)
    boxes = []
    for i in range(n):
        tx = x + i * step
        cv2.line(img, (tx, y), (tx, y - tick), value, stroke)
        text = str(i * 5)
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, stroke)
        ty = y + tick + th if labels_below else y - tick - 3 * stroke
        cv2.putText(img, text, (tx - tw // 2, ty), cv2.FONT_HERSHEY_SIMPLEX, font, value, stroke)
        boxes.append((tx - tw // 2, ty - th, tx - tw // 2 + tw, ty + 2))
    return boxes


@pytest.mark.parametrize("turn, dark, minor, below", [(0, False, 0, False), (1, False, 4, False),
                                                      (0, True, 1, True), (3, False, 0, True)])
def test_a_ruler_on_a_radiograph_is_found_and_its_labels_lie_in_its_box(turn: int, dark: bool, minor: int,
                                                                        below: bool) -> None:
    """Bright or dark, horizontal or running up the image, plain or with minor ticks, labels on either side."""
    img = _radiograph("RG1_UNCR.dcm").copy()
    # bright over the lung; dark low on the plate, where the display is bright
    labels = _draw_ruler(img, 1100 if dark else 250, 1650 if dark else 700, 90, 6, 16, 20 if dark else 235,
                         minor, below)
    turned = np.ascontiguousarray(np.rot90(img, turn))
    found = find_rulers(turned)
    back = np.zeros(turned.shape, np.uint8)
    for b in found:
        back[b.y0 : b.y1, b.x0 : b.x1] = 1
    found_upright = np.rot90(back, -turn)
    for x0, y0, x1, y1 in labels:
        assert found_upright[y0:y1, x0:x1].all(), f"label {(x0, y0, x1, y1)} outside the ruler boxes {found}"


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG3_UNCR.dcm"])
def test_anatomy_is_no_ruler(name: str) -> None:
    """Real chest and extremity radiographs: ribs, vessels and cortex never line up as a ruler."""
    assert find_rulers(_radiograph(name)) == []


def test_ticks_that_are_uneven_or_never_end_make_no_ruler() -> None:
    img = _radiograph("RG1_UNCR.dcm").copy()
    y = 700
    cv2.line(img, (250, y), (700, y), 235, 2)  # a line over the lung with ticks at uneven places
    for tx in (250, 290, 400, 430, 570, 700):
        cv2.line(img, (tx, y), (tx, y - 16), 235, 2)
    y = 1650
    cv2.line(img, (1000, y), (1600, y), 20, 2)  # a comb whose teeth run on: grid lines, not ticks
    for tx in range(1000, 1601, 60):
        cv2.line(img, (tx, y), (tx, y - 200), 20, 2)
    assert find_rulers(img) == []
    _draw_ruler(img, 1000, 1850, 60, 11, 16, 20)  # the same ticks kept short and even: a ruler
    assert len(find_rulers(img)) == 1


def test_the_default_pipeline_fills_a_rulers_labels_and_keeps_nothing_in_it() -> None:
    img = _radiograph("RG3_UNCR.dcm").copy()
    labels = _draw_ruler(img, 30, 1650, 60, 5, 14, 30)  # dark, on the bright margin beside the tibia
    _, decided = MarkerDecider(load_config(overrides=[])).decide(img)
    ruler = [d for d in decided if d.box.found_by("ruler")]  # merged with other detectors' boxes
    assert ruler and all(d.action is BoxAction.REDACTED and d.keep is None for d in ruler)
    assert all(any(d.fill.contains(Box(*lab)) for d in ruler) for lab in labels)
    # the box spans the label band on both sides of the line already: its fill adds no margin across the line
    # (a quarter of the box's height, as a detector's box gets, was 70 px of lung on a synthetic ruler)
    assert all(d.box.y0 - 2 <= d.fill.y0 and d.fill.y1 <= d.box.y1 + 2 for d in ruler)


def test_a_letter_in_a_rulers_box_is_not_kept_as_a_laterality_marker() -> None:
    """Whatever its shape, a ruler's box is a line of labels: an "L" drawn in it goes with the ruler."""
    from radiograph_deid.config import RetentionConfig
    from radiograph_deid.retention import LateralityRetainer

    view = np.full((200, 200), 60, np.uint8)
    cv2.putText(view, "L", (70, 140), cv2.FONT_HERSHEY_SIMPLEX, 3, 240, 8)
    retainer = LateralityRetainer(RetentionConfig())
    as_marker = retainer(view, [Box(40, 40, 160, 160, source="marker-yolo")])
    as_ruler = retainer(view, [Box(40, 40, 160, 160, source="ruler+marker-yolo")])
    assert as_marker[0].action is BoxAction.KEPT_LATERALITY  # the same glyph, found as a marker, is kept
    assert as_ruler[0].action is BoxAction.REDACTED and as_ruler[0].keep_mask is None


def test_a_thick_ruler_on_a_large_image_is_found_on_the_halved_view() -> None:
    """A ruler drawn for a 3000-px image (9-px strokes) is thicker than the finder's stroke limit; the halved
    view finds it, and the halved anatomy still holds no ruler."""
    img = cv2.resize(_radiograph("RG1_UNCR.dcm"), None, fx=1.6, fy=1.6, interpolation=cv2.INTER_CUBIC)
    assert max(img.shape) > 3000 and find_rulers_any_size(img) == []
    labels = _draw_ruler(img, 400, 1200, 220, 5, 50, 235, stroke=9, font=2.0)
    assert find_rulers(img) == []  # too thick at full size
    found = find_rulers_any_size(img)
    assert found and all(any(b.contains(Box(*lab)) for b in found) for lab in labels), found


@pytest.mark.parametrize("grain, ink, found", [(80, 20, True), (140, 26, False)])
def test_a_faint_ruler_on_grainy_ground_is_found_while_it_stands_clear_of_the_grain(grain: int, ink: int,
                                                                                      found: bool) -> None:
    """A short ruler in even ink 2.7 times the ground's texture above it is a ruler (faint rulers on grainy
    anatomy were a quarter of the synthetic misses); at 2.1 times it is as faint as a vessel's edge, and is not."""
    rng = np.random.default_rng(0)
    ground = cv2.GaussianBlur(rng.normal(0, grain, (400, 600)).astype(np.float32), (0, 0), 3)
    img = np.clip(120 + ground, 0, 255).round().astype(np.uint8)
    labels = _draw_ruler(img, 150, 250, 66, 5, 10, 120 + ink, stroke=1, font=0.45)
    rulers = find_rulers(img)
    assert all(any(b.contains(Box(*lab)) for b in rulers) for lab in labels) is found, rulers


def _draw_tick_column(img: np.ndarray, x: int, y: int, step: float, n: int, value: int, stray: float = 0.0,
                      tilt: float = 0.0) -> Box:
    """Ticks alone down the image (no line, no labels), their left ends level, or drifting ``tilt`` px per tick;
    ``stray`` moves every other tick by that share of the step, as the spine's endplates stray from an even
    scale. Returns the ticks' box."""
    for i in range(n):
        ty = int(round(y + i * step + (stray * step if i % 2 else 0)))
        tx = int(round(x + i * tilt))
        cv2.line(img, (tx, ty), (tx + 12, ty), value, 2)
    return Box(x, y, int(x + (n - 1) * tilt) + 13, int(y + (n - 1) * step) + 2)


@pytest.mark.parametrize("dark", [False, True])
def test_ticks_drawn_without_a_line_are_a_ruler(dark: bool) -> None:
    """A film of the COVID-19 collection: 34 ticks down its left edge and no line. Twenty of them, bright over
    the lung or dark over the bright margin, are found and covered whole."""
    img = _radiograph("RG1_UNCR.dcm").copy()
    ticks = _draw_tick_column(img, 1500 if dark else 400, 300, 45.5, 20, 20 if dark else 235)
    found = find_rulers(img)
    assert found and all(b.source == "ruler" for b in found)
    covered = np.zeros(img.shape, bool)
    for b in found:
        covered[b.y0 : b.y1, b.x0 : b.x1] = True
    assert covered[ticks.y0 : ticks.y1, ticks.x0 : ticks.x1].all()


def test_a_tilted_row_of_ticks_is_one_ruler() -> None:
    """Tilted, the ticks' ends are level only a few at a time, and the ruler is found as overlapping runs."""
    img = _radiograph("RG1_UNCR.dcm").copy()
    ticks = _draw_tick_column(img, 1500, 200, 45.5, 30, 20, tilt=0.2)
    found = find_rulers(img)
    assert len(found) == 1 and found[0].contains(ticks)


def test_overlapping_pieces_are_joined_until_none_overlaps() -> None:
    """A piece joined to one it overlaps can then reach a third it did not touch: all three are one thing."""
    from radiograph_deid.boxes import joined

    left, low, top = Box(0, 0, 4, 25), Box(10, 20, 20, 30), Box(2, 0, 12, 5)  # top meets left; left+top meets low
    assert [b.as_list() for b in joined([left, low, top])] == [[0, 0, 20, 30]]
    assert len(joined([left, low])) == 2  # apart, they stay apart


def test_ticks_that_stray_from_an_even_scale_or_are_too_few_make_no_ruler() -> None:
    img = _radiograph("RG1_UNCR.dcm").copy()
    _draw_tick_column(img, 400, 300, 45.5, 20, 235, stray=1 / 6)
    _draw_tick_column(img, 1500, 300, 45.5, 7, 20)
    assert find_rulers(img) == []


def test_a_line_among_parallel_stripes_is_no_ruler_but_a_ruler_drawn_as_a_frame_is() -> None:
    """Anti-scatter grid lines and a photographed screen's moiré are rows of stripes, and whatever they cut can
    stand on one of them like ticks: a line with more than one other line running beside it (within a tick's
    reach, alongside half its length) is no ruler's. A ruler drawn as a frame, its line and one more, is found."""
    base = _radiograph("RG1_UNCR.dcm")
    found_in = {}
    for case, others in (("alone", ()), ("frame", (-40,)), ("stripes", (-40, -20, 20, 40))):
        img = base.copy()
        _draw_ruler(img, 250, 700, 90, 6, 16, 235)
        for dy in others:
            cv2.line(img, (250, 700 + dy), (250 + 90 * 5, 700 + dy), 235, 2)
        found_in[case] = any(b.y0 <= 700 <= b.y1 and b.x0 <= 300 <= b.x1 for b in find_rulers(img))
    assert found_in == {"alone": True, "frame": True, "stripes": False}
