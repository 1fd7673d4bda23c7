"""Keep isolated laterality markers: only the glyph's own pixels survive, the rest of its box is filled.

Interim version on the recognizer's reading; the learned glyph classifier replaces the reading step later.
Follows the paper's order on original-resolution pixels: Otsu -> largest connected component -> keep mask.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import cv2
import numpy as np

from .boxes import Box
from .config import RetentionConfig
from .enums import BoxAction, BoxClass
from .pixels.display import to_gray


@dataclass(frozen=True)
class RetentionResult:
    box: Box
    action: BoxAction
    keep_mask: np.ndarray | None  # True where the glyph's pixels stay (same shape as the box)


def normalized_token(text: str) -> str:
    return "".join(c for c in text.upper() if c.isalnum())


def glyph_mask(gray: np.ndarray, box: Box) -> np.ndarray | None:
    """The marker glyph's pixels inside ``box`` (a mask of the box's shape), or None if no plausible glyph.

    Otsu inside the box; a letter's strokes cover less of its box than its ground (bare background or a lead
    marker's tile), so the glyph is the minority side; then its largest component.
    """
    crop = gray[box.y0 : box.y1, box.x0 : box.x1]
    if crop.size < 16 or min(crop.shape) < 3:
        return None
    t, _ = cv2.threshold(crop, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = crop > t
    figure = bright if bright.mean() <= 0.5 else ~bright
    n, labels, stats, _ = cv2.connectedComponentsWithStats(figure.astype(np.uint8), connectivity=8)
    if n < 2:
        return None
    comp = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return cv2.dilate(comp.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


class LateralityRetainer:
    def __init__(self, cfg: RetentionConfig) -> None:
        self.cfg = cfg

    def __call__(self, view: np.ndarray, boxes: Sequence[Box]) -> list[RetentionResult]:
        """Decide each confirmed text box: keep an isolated laterality glyph, redact everything else."""
        gray = to_gray(view)
        results = []
        for i, box in enumerate(boxes):
            token = normalized_token(box.text)
            isolated = all(box.gap(o) > self.cfg.isolation_fraction * max(box.height, box.width)
                           for j, o in enumerate(boxes) if j != i)
            if (self.cfg.enabled and token in self.cfg.vocabulary and isolated
                    and box.score >= self.cfg.min_confidence):
                mask = glyph_mask(gray, box)
                if mask is not None:
                    kept = replace(box, label=BoxClass.LATERALITY, text=token)
                    results.append(RetentionResult(kept, BoxAction.KEPT_LATERALITY, mask))
                    continue
            results.append(RetentionResult(replace(box, label=BoxClass.OTHER_MARKER), BoxAction.REDACTED, None))
        return results
