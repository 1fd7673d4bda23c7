"""The detection stage: an interface, a registry, and the interim text detector.

A detector takes the display view of one frame and returns boxes in original pixel coordinates. Which one
runs is chosen by ``detector.name`` in the configuration; the learned marker detector registers here too.
"""
from __future__ import annotations

from typing import Callable, Protocol

import cv2
import numpy as np

from .boxes import Box
from .config import DetectorConfig
from .enums import BoxAction, BoxClass


class Detector(Protocol):
    def __call__(self, view: np.ndarray) -> list[tuple[Box, BoxAction]]:
        """Boxes found in ``view`` (uint8, (H, W) or (H, W, 3)); proposals not kept are returned as REJECTED."""
        ...


DETECTORS: dict[str, Callable[[DetectorConfig], Detector]] = {}


def register(name: str) -> Callable[[Callable[[DetectorConfig], Detector]], Callable[[DetectorConfig], Detector]]:
    def deco(factory: Callable[[DetectorConfig], Detector]) -> Callable[[DetectorConfig], Detector]:
        DETECTORS[name] = factory
        return factory

    return deco


def build_detector(cfg: DetectorConfig) -> Detector:
    try:
        factory = DETECTORS[cfg.name]
    except KeyError:
        raise ValueError(f"unknown detector '{cfg.name}'; available: {', '.join(sorted(DETECTORS))}") from None
    return factory(cfg)


def orientations(crop: np.ndarray) -> list[np.ndarray]:
    """The crop's other seven placements: 90-degree turns and mirror images (markers are placed any way round).

    Line-shaped crops are only read lengthwise.
    """
    rots = [np.rot90(crop, k) for k in range(4)]
    variants = rots + [np.fliplr(r) for r in rots]
    h, w = crop.shape[:2]
    if h > 1.5 * w:
        keep = (1, 3, 5, 7)
    elif w > 1.5 * h:
        keep = (2, 4, 6)
    else:
        keep = (1, 2, 3, 4, 5, 6, 7)
    return [np.ascontiguousarray(variants[i]) for i in keep]


def stroke_variants(crop: np.ndarray) -> list[np.ndarray]:
    """The crop with dot-matrix imprints joined into strokes: bright dots closed, dark dots opened.

    Dot-matrix dates and IDs on CR plates read below the confidence bar until their dots touch.
    """
    k = max(3, (min(crop.shape[:2]) // 8) | 1)
    kernel = np.ones((k, k), np.uint8)
    return [cv2.morphologyEx(crop, cv2.MORPH_CLOSE, kernel), cv2.morphologyEx(crop, cv2.MORPH_OPEN, kernel)]


def _alnum(reading: tuple[str, float]) -> float:
    return reading[1] if any(c.isalnum() for c in reading[0]) else -1.0


def read_any_orientation(recognizer, crops: list[np.ndarray], min_confidence: float) -> list[tuple[str, float]]:  # type: ignore[no-untyped-def]
    """Best reading per crop: upright first in one batch; other placements and dot-joined strokes only for crops
    not read well."""
    readings = recognizer.batch(crops)
    for i, crop in enumerate(crops):
        if _alnum(readings[i]) < min_confidence:
            retries = orientations(crop) + stroke_variants(crop)
            readings[i] = max([readings[i]] + recognizer.batch(retries), key=_alnum)
    return readings


class RapidOCRTextDetector:
    """DBNet proposals confirmed by the CRNN recognizer.

    A general scene-text detector also fires on ribs and spines; a proposal counts as burned-in text only if it
    is no taller than a text line can be and the recognizer reads alphanumeric characters in it with confidence.
    """

    def __init__(self, cfg: DetectorConfig) -> None:
        from .ocr_models import TextProposer, TextRecognizer

        self.cfg = cfg
        self.proposer = TextProposer(cfg.long_side, cfg.prob_threshold, cfg.box_threshold, cfg.threads)
        self.recognizer = TextRecognizer(cfg.threads)

    def __call__(self, view: np.ndarray) -> list[tuple[Box, BoxAction]]:
        h, w = view.shape[:2]
        max_line = self.cfg.max_text_height_fraction * min(h, w)
        out: list[tuple[Box, BoxAction]] = []
        candidates = []
        for x0, y0, x1, y1, score in self.proposer(view):
            if min(x1 - x0, y1 - y0) > max_line:
                out.append((Box(x0, y0, x1, y1, score, source="proposal-too-large"), BoxAction.REJECTED))
            else:
                candidates.append((x0, y0, x1, y1))
        crops = [view[y0:y1, x0:x1] for x0, y0, x1, y1 in candidates]
        for (x0, y0, x1, y1), (text, conf) in zip(
            candidates, read_any_orientation(self.recognizer, crops, self.cfg.min_recognition_confidence)
        ):
            is_text = conf >= self.cfg.min_recognition_confidence and any(c.isalnum() for c in text)
            box = Box(x0, y0, x1, y1, round(conf, 4), BoxClass.OTHER_MARKER, text=text, source="rapidocr-text")
            out.append((box, BoxAction.REDACTED if is_text else BoxAction.REJECTED))
        return out


@register("rapidocr-text")
def _rapidocr(cfg: DetectorConfig) -> Detector:
    return RapidOCRTextDetector(cfg)
