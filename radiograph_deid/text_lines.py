"""Complete a line of text that a detector boxed only in part.

Why: a box that stops a few characters short of a line's end leaves the last digits of an ID or a date readable
(5 of the 49 misses on the synthetic held-out split were such partial lines). Burned-in text is thin strokes on a
smooth background, so the line is followed along its long axis while strokes continue in the box's rows, across
word spaces but not across a gap wider than the line is tall; a column whose strokes also run above and below
the line is something crossing it (a rib edge, a wire), not the line's next character.
"""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from .boxes import Box


def stroke_strength(gray: np.ndarray, width: int) -> np.ndarray:
    """How much each pixel stands out as part of a bright or dark stroke narrower than ``width`` (white and black
    top-hat): thin text responds, smooth anatomy and wide structures do not."""
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (width | 1, width | 1))
    bright = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, k)
    dark = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, k)
    return np.maximum(bright, dark)


def continued(gray: np.ndarray, box: Box, max_gap: float = 1.5, min_contrast: int = 12, min_aspect: float = 1.5
              ) -> Box:
    """``box`` grown along its long axis to the ends of the text line it lies on (at most its own length, or
    four line heights, on each side); unchanged where no strokes continue, and for a box under ``min_aspect``
    times as long as it is tall: one character or a marker tile, whose "line" is whatever edge runs through it
    (a redacted tile's fill ran 350 px down a rib)."""
    if max(box.width, box.height) < min_aspect * min(box.width, box.height):
        return box
    if box.height > box.width:
        x0, x1 = _along(gray.T, box.y0, box.x0, box.y1, box.x1, max_gap, min_contrast)
        return replace(box, y0=x0, y1=x1)
    x0, x1 = _along(gray, box.x0, box.y0, box.x1, box.y1, max_gap, min_contrast)
    return replace(box, x0=x0, x1=x1)


def _along(gray: np.ndarray, x0: int, y0: int, x1: int, y1: int, max_gap: float, min_contrast: int) -> tuple[int, int]:
    """The horizontal case: new (x0, x1) for the box [x0, x1) x [y0, y1). Columns are judged in steps of a
    quarter line height: a step continues the line when its strokes are at least a third as dense as the box's
    and do not run as much above and below the line."""
    rows, cols = gray.shape
    h = y1 - y0
    reach = max(x1 - x0, 4 * h)
    lo, hi = max(0, x0 - reach), min(cols, x1 + reach)
    pad = max(2, h // 2)
    ya, yb = max(0, y0 - pad), min(rows, y1 + pad)
    ink = stroke_strength(np.ascontiguousarray(gray[ya:yb, lo:hi]), max(3, h // 2))
    line = ink[y0 - ya : y1 - ya]
    threshold = max(float(min_contrast), 0.5 * float(np.percentile(line[:, x0 - lo : x1 - lo], 97)))
    on_line = (line > threshold).sum(axis=0).astype(float)
    off_line = ((ink[: y0 - ya] > threshold).sum(axis=0) + (ink[y1 - ya :] > threshold).sum(axis=0)) * h / max(1, 2 * pad)
    density = on_line[x0 - lo : x1 - lo].mean()
    if density == 0:
        return x0, x1
    step = max(2, h // 4)
    gap = max(1, int(max_gap * h / step))

    def text(a: int, b: int) -> bool:
        on, off = on_line[a - lo : b - lo].mean(), off_line[a - lo : b - lo].mean()
        return on >= density / 3 and off <= on / 2

    left = _walk([(a, a + step) for a in range(x0 - step, lo - 1, -step)], text, gap, x0, lambda a, b: a)
    right = _walk([(b - step, b) for b in range(x1 + step, hi + 1, step)], text, gap, x1, lambda a, b: b)
    return left, right


def _walk(steps: list[tuple[int, int]], text, gap: int, start: int, edge) -> int:  # type: ignore[no-untyped-def]
    """The outer edge of the last text step before more than ``gap`` steps without text."""
    end, run = start, 0
    for a, b in steps:
        if text(a, b):
            end, run = edge(a, b), 0
        else:
            run += 1
            if run > gap:
                break
    return end
