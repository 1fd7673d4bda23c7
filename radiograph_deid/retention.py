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


def glyph_mask(gray_crop: np.ndarray) -> np.ndarray | None:
    """The marker glyph's pixels: Otsu in the box, then the largest component of the polarity that is not
    background (the one touching the box border least). None when no plausible glyph is found."""
    if gray_crop.size < 16:
        return None
    t, _ = cv2.threshold(gray_crop, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    best: tuple[float, np.ndarray] | None = None
    for mask in (gray_crop > t, gray_crop <= t):
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        if n < 2:
            continue
        i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        comp = labels == i
        border = comp[0].sum() + comp[-1].sum() + comp[:, 0].sum() + comp[:, -1].sum()
        area_share = comp.sum() / comp.size
        if area_share > 0.8:
            continue
        cost = border / max(1, comp.sum())
        if best is None or cost < best[0]:
            best = (cost, comp)
    if best is None:
        return None
    return cv2.dilate(best[1].astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


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
                mask = glyph_mask(gray[box.y0 : box.y1, box.x0 : box.x1])
                if mask is not None:
                    kept = replace(box, label=BoxClass.LATERALITY, text=token)
                    results.append(RetentionResult(kept, BoxAction.KEPT_LATERALITY, mask))
                    continue
            results.append(RetentionResult(replace(box, label=BoxClass.OTHER_MARKER), BoxAction.REDACTED, None))
        return results
