"""How unsure the marker detector is about an image: the active-learning signal for annotation rounds.

A detection scored near the decision threshold is the least certain (the detector could as well have dropped it,
or kept a box it dropped); scores near 0 or 1 are certain. An image is as uncertain as its least certain
proposal, counting proposals far below the threshold too, since a missed marker shows up there first.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Iterable

import numpy as np

from .config import DetectorConfig


def box_uncertainty(score: float, threshold: float) -> float:
    """1 at the threshold, falling linearly to 0 at a score of 0 or 1."""
    span = threshold if score < threshold else 1.0 - threshold
    return float(max(0.0, 1.0 - abs(score - threshold) / max(span, 1e-6)))


def image_uncertainty(scores: Iterable[float], threshold: float) -> float:
    """The least certain proposal's uncertainty; 0 for an image with no proposal at all."""
    return max((box_uncertainty(s, threshold) for s in scores), default=0.0)


class UncertaintyScorer:
    """The learned marker detector run with a low floor, so that near-misses are seen too."""

    def __init__(self, cfg: DetectorConfig, floor: float = 0.05) -> None:
        from .detector import MarkerDetector

        self.threshold = cfg.score_threshold
        self.detector = MarkerDetector(replace(cfg, name="marker-yolo", score_threshold=min(floor, cfg.score_threshold)))

    def __call__(self, view: np.ndarray) -> float:
        return image_uncertainty((b.score for b, _ in self.detector(view)), self.threshold)
