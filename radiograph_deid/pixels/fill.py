"""Fill boxes with the stored value that shows as black, keeping only retained glyph pixels."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..boxes import Box
from ..enums import Photometric
from .decode import PixelFrames


def black_value(px: PixelFrames) -> int | tuple[int, int, int]:
    """The stored value rendered black under any linear VOI window.

    MONOCHROME2 takes the lowest representable value and MONOCHROME1 (or an INVERSE presentation LUT)
    the highest, so the fill is black on screen whatever window a viewer applies.
    """
    if px.is_color:
        return (0, 0, 0)
    if px.photometric is Photometric.PALETTE_COLOR and px.palette_rgb is not None:
        return int(np.argmin(px.palette_rgb.astype(np.int32).sum(axis=1)))
    if px.signed:
        low, high = -(2 ** (px.bits_stored - 1)), 2 ** (px.bits_stored - 1) - 1
    else:
        low, high = 0, 2**px.bits_stored - 1
    return high if px.inverse_display else low


def fill_boxes(px: PixelFrames, boxes: Sequence[Box], keep_masks: Iterable[np.ndarray | None] | None = None,
               frames: Iterable[int] | None = None) -> int:
    """Fill ``boxes`` in place on ``frames`` (all by default); pixels where a keep mask is True stay.

    Returns the number of pixels changed per frame, summed over boxes (0 means the data is untouched).
    """
    value = black_value(px)
    masks = list(keep_masks) if keep_masks is not None else [None] * len(boxes)
    if len(masks) != len(boxes):
        raise ValueError("one keep mask (or None) is needed per box")
    indices = range(px.frames.shape[0]) if frames is None else list(frames)
    changed = 0
    for box, keep in zip(boxes, masks):
        region = (slice(box.y0, box.y1), slice(box.x0, box.x1))
        fill = np.ones((box.height, box.width), bool) if keep is None else ~keep
        if fill.shape != (box.height, box.width):
            raise ValueError(f"keep mask shape {fill.shape} does not match box {box.as_list()}")
        changed += int(fill.sum())
        for i in indices:
            px.frames[i][region][fill] = value
    return changed
