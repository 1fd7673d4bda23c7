"""Find a device's pictogram in an image's corner: a small tile of one tone, marks of the other inside it.

Why: CR readers and viewers stamp a tiny icon into a corner of every image they make (on the Hannover images, an
11 x 8 px white tile with a cassette's dots in the bottom-right corner). It is a burned-in mark like any other,
but too small and too plain for the learned detector to find every time, and it holds no text for the OCR
branch to read: on the real validation set it was two of the four marks left. As a shape it is unmistakable,
though, where it stands: within a few of its own sides of two edges, a rectangle standing out of its
surroundings, solid but for the marks drawn into it. Anatomy draws no such thing in a corner; a blank tile (a
collimator's shadow, a label taped over) has no marks, and a letter with a counter leaves its box's corners
empty. A lead marker's tile that lies there is decided on the marker detector's box, as anywhere else.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .boxes import Box, joined

SOURCE = "corner-icon"  # Box.source of a pictogram found here


@dataclass(frozen=True)
class IconGeometry:
    """What counts as a corner pictogram, in pixels of the view searched."""

    min_side: int = 5  # each side at least this long: smaller holds no legible mark
    max_share: float = 0.05  # the longer side at most this share of the image's shorter side
    reach: float = 1.0  # the tile lies within this many of its own sides of each of the corner's two edges ...
    min_reach: int = 4  # ... or this many pixels
    min_contrast: int = 120  # the tile's median stands this many display levels from its surroundings' median
    solidity: float = 0.85  # the tile, its marks filled in, covers this share of its bounding box
    min_marks: float = 0.03  # the marks (the other tone inside the tile) cover this share of it or more ...
    max_marks: float = 0.5  # ... and at most this share: a frame around a hole is no tile
    edge: float = 0.25  # the box is grown by this share of its shorter side: the blurred edge the cut leaves out
    ring_clear: float = 0.9  # this share of the ring around the tile is of the other tone: the tile stands alone


def find_corner_icons(gray: np.ndarray, geometry: IconGeometry = IconGeometry()) -> list[Box]:
    """Boxes over the pictograms in the four corners of ``gray`` (2-D uint8 display view), bright on dark or
    dark on bright."""
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError("find_corner_icons expects a 2-D uint8 display image")
    rows, cols = gray.shape
    longest = max(geometry.min_side, int(geometry.max_share * min(rows, cols)))
    window = min(rows, cols, 2 * longest + 2 * geometry.min_reach)
    found = []
    for right in (False, True):
        for bottom in (False, True):
            x0, y0 = (cols - window if right else 0), (rows - window if bottom else 0)
            crop = gray[y0 : y0 + window, x0 : x0 + window]
            for polarity in (crop, 255 - crop):
                for bx0, by0, bx1, by1 in _tiles(polarity, geometry, longest):
                    box = Box(x0 + bx0, y0 + by0, x0 + bx1, y0 + by1, 1.0, source=SOURCE)
                    cut = (bx0 == 0 < x0) or (by0 == 0 < y0) or (bx1 == window and x0 + window < cols) or \
                        (by1 == window and y0 + window < rows)  # runs on out of the window: no tile of its own
                    if not cut and _in_corner(box, rows, cols, right, bottom, geometry):
                        found.append(box.expanded(max(1, int(geometry.edge * min(box.width, box.height))),
                                                  (rows, cols)))
    return joined(found)  # one icon cut at both levels, or seen from two windows of a small image


def _tiles(crop: np.ndarray, g: IconGeometry, longest: int) -> list[tuple[int, int, int, int]]:
    """The bright tiles of ``crop`` (x0, y0, x1, y1): solid but for their marks, standing out of their ring. The
    tile is cut at two levels: half-way from the crop's median to its peak (a small, blurred icon), and near the
    peak (an icon drawn in the extreme tone beside bright anatomy, which the lower level joins to it)."""
    peak, median = int(crop.max()), float(np.median(crop))
    if peak - median < g.min_contrast:
        return []
    out = []
    for level in sorted({int((peak + median) / 2), peak - g.min_contrast // 2}):
        bright = (crop > level).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
        for k in range(1, n):
            x, y, w, h, _ = (int(v) for v in stats[k])
            if not (g.min_side <= min(w, h) and max(w, h) <= longest) or (x, y, x + w, y + h) in out:
                continue
            tile = labels[y : y + h, x : x + w] == k
            if _solid_with_marks(tile, g) and _stands_out(crop, bright, (x, y, x + w, y + h), tile, g):
                out.append((x, y, x + w, y + h))
    return out


def _solid_with_marks(tile: np.ndarray, g: IconGeometry) -> bool:
    """Whether the tile, its marks filled in, is a rectangle: it covers ``solidity`` of its bounding box and each
    of the box's corners, and the marks a share of it between ``min_marks`` and ``max_marks``. A mark may open on
    the tile's edge (a 7 x 5 px icon's dot), so the tile is first closed over gaps of a pixel or two; a letter with
    a counter (D, O, B, 8) leaves corners of its box empty."""
    closed = cv2.morphologyEx(np.pad(tile, 2).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    filled = _holes_filled(closed[2:-2, 2:-2].astype(bool))
    k = max(2, min(tile.shape) // 4)
    corners = [filled[:k, :k], filled[:k, -k:], filled[-k:, :k], filled[-k:, -k:]]
    marks = float((filled & ~tile).sum()) / float(filled.sum())
    return float(filled.mean()) >= g.solidity and sum(c.mean() >= 0.7 for c in corners) >= 3 and \
        g.min_marks <= marks <= g.max_marks


def _holes_filled(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every region it encloses filled in (what the border cannot reach through the background)."""
    padded = np.pad(~mask, 1, constant_values=True).astype(np.uint8)
    cv2.floodFill(padded, None, (0, 0), 0)
    return mask | padded[1:-1, 1:-1].astype(bool)


def _stands_out(crop: np.ndarray, bright: np.ndarray, xyxy: tuple[int, int, int, int], tile: np.ndarray,
                g: IconGeometry) -> bool:
    """Whether the ring around the tile (its shorter side's quarter wide, two pixels at least; clipped to the
    crop) is of the other tone and the tile's median stands ``min_contrast`` above the ring's."""
    x0, y0, x1, y1 = xyxy
    m = max(2, min(x1 - x0, y1 - y0) // 4)
    X0, Y0, X1, Y1 = max(0, x0 - m), max(0, y0 - m), min(crop.shape[1], x1 + m), min(crop.shape[0], y1 + m)
    ring = np.ones((Y1 - Y0, X1 - X0), bool)
    ring[y0 - Y0 : y1 - Y0, x0 - X0 : x1 - X0] = False
    if not ring.any():
        return False
    around = crop[Y0:Y1, X0:X1][ring]
    clear = 1.0 - float(bright[Y0:Y1, X0:X1][ring].mean())
    contrast = float(np.median(crop[y0:y1, x0:x1][tile])) - float(np.median(around))
    return clear >= g.ring_clear and contrast >= g.min_contrast


def _in_corner(box: Box, rows: int, cols: int, right: bool, bottom: bool, g: IconGeometry) -> bool:
    """Whether the box lies within ``reach`` of its own sides (or ``min_reach`` pixels) of the corner's edges."""
    gap_x = cols - box.x1 if right else box.x0
    gap_y = rows - box.y1 if bottom else box.y0
    return gap_x <= max(g.min_reach, g.reach * box.width) and gap_y <= max(g.min_reach, g.reach * box.height)
