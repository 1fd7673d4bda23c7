"""The safety net: an OCR engine independent of the detector scans the redacted pixels.

Tesseract (LSTM recognition with its own layout analysis) shares no model with the PP-OCR detector, so text
one misses the other may still read. Any word it reads confidently outside a kept laterality marker sends
the image to quarantine.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from . import tesseract
from .boxes import Box
from .config import VerifyConfig
from .pixels.display import detector_gray


class VerifierUnavailable(RuntimeError):
    pass


class VerifierTimeout(RuntimeError):
    """The verifier could not finish a view in the time it is given: the image is not checked."""


@dataclass(frozen=True)
class Finding:
    """Text that survived redaction; its content is PHI and is not kept."""

    box: Box
    confidence: float
    n_chars: int


class TesseractVerifier:
    def __init__(self, cfg: VerifyConfig) -> None:
        if shutil.which("tesseract") is None:
            raise VerifierUnavailable(
                "the verifier needs the tesseract program: apt-get install tesseract-ocr "
                "(or run scripts/setup.sh). Switching verification off (verify.enabled=false) is not recommended."
            )
        self.cfg = cfg

    def __call__(self, view: np.ndarray, kept: Sequence[Box] = ()) -> list[Finding]:
        gray = detector_gray(view).copy()
        for box in kept:  # a kept marker is allowed to stay readable
            gray[box.y0 : box.y1, box.x0 : box.x1] = 0
        h, w = gray.shape
        scale = min(self.cfg.long_side / max(h, w), 2.0)
        small = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        data = self._read(small, "--psm 11")
        findings = []
        for text, conf, x, y, bw, bh in zip(data["text"], data["conf"], data["left"], data["top"],
                                            data["width"], data["height"]):
            n_chars = sum(c.isalnum() for c in text)
            if n_chars < self.cfg.min_chars or float(conf) < self.cfg.min_confidence or bh < self.cfg.min_height:
                continue
            box = Box(int(x / scale), int(y / scale), max(int(x / scale) + 1, int((x + bw) / scale)),
                      max(int(y / scale) + 1, int((y + bh) / scale)), float(conf), source="tesseract")
            if self._confirmed(gray, box):
                findings.append(Finding(box, float(conf), n_chars))
        return findings

    def _read(self, gray: np.ndarray, config: str) -> dict:
        """Tesseract's words, or VerifierTimeout past ``timeout_s``: a view left unchecked is never passed."""
        try:
            return tesseract.image_to_data(gray, config, self.cfg.timeout_s)
        except tesseract.TesseractTimeout as exc:
            raise VerifierTimeout(str(exc)) from None

    def _confirmed(self, gray: np.ndarray, box: Box) -> bool:
        """Re-read the word alone, padded and scaled to ~40 px high, as one text line (--psm 7).

        Texture that looked like a word in the sparse scan rarely reads again; real text does.
        """
        pad = max(4, box.height)
        crop = gray[max(0, box.y0 - pad) : box.y1 + pad, max(0, box.x0 - pad) : box.x1 + pad]
        zoom = max(1.0, 40.0 / max(1, box.height))
        crop = cv2.resize(crop, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
        data = self._read(crop, "--psm 7")
        return any(sum(c.isalnum() for c in t) >= self.cfg.min_chars and float(c) >= self.cfg.min_confidence
                   for t, c in zip(data["text"], data["conf"]))


class RapidOCRVerifier:
    """PP-OCRv4 (DBNet proposals, CRNN reading) as the safety net behind the learned marker detector.

    Independent of that detector (other architecture, other training data) and several times faster than
    Tesseract's page analysis; it cannot be paired with the ``rapidocr-text`` detector (same models).
    """

    def __init__(self, cfg: VerifyConfig) -> None:
        from .ocr_models import TextProposer, TextRecognizer

        self.cfg = cfg
        self.proposer = TextProposer(cfg.long_side, 0.3, 0.5, 2)
        self.recognizer = TextRecognizer(2)

    def __call__(self, view: np.ndarray, kept: Sequence[Box] = ()) -> list[Finding]:
        from .detector import read_proposals

        gray = detector_gray(view).copy()
        for box in kept:
            gray[box.y0 : box.y1, box.x0 : box.x1] = 0
        h, w = gray.shape
        scale = min(self.cfg.long_side / max(h, w), 1.0)
        proposals = [p for p in self.proposer(gray) if (p.y1 - p.y0) * scale >= self.cfg.min_height
                     and min(p.x1 - p.x0, p.y1 - p.y0) <= 0.08 * min(h, w)]
        threshold = self.cfg.min_confidence / 100.0
        findings = []
        for p, (text, conf) in zip(proposals, read_proposals(self.recognizer, gray, proposals, threshold)):
            n_chars = sum(c.isalnum() for c in text)
            if n_chars >= self.cfg.min_chars and conf >= threshold:
                findings.append(Finding(Box(*p.xyxy, p.score, source="rapidocr-verify"), round(conf * 100, 1), n_chars))
        return findings


VERIFIERS = {"tesseract": TesseractVerifier, "rapidocr": RapidOCRVerifier}


def build_verifier(cfg: VerifyConfig):  # type: ignore[no-untyped-def]
    try:
        return VERIFIERS[cfg.engine](cfg)
    except KeyError:
        raise ValueError(f"unknown verify.engine '{cfg.engine}'; available: {', '.join(VERIFIERS)}") from None
