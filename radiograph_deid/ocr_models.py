"""The PP-OCRv4 text detection and recognition networks shipped inside the rapidocr-onnxruntime wheel.

Run directly with onnxruntime, so scale, thresholds and threads are ours and nothing is downloaded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np

DET_MODEL = "ch_PP-OCRv4_det_infer.onnx"
REC_MODEL = "ch_PP-OCRv4_rec_infer.onnx"
ASKEW_DEGREES = 5.0  # a region tilted more than this from level and from upright is read turned level


class ModelUnavailable(RuntimeError):
    """A model file or runtime is missing from this installation."""


def model_path(name: str) -> Path:
    spec = find_spec("rapidocr_onnxruntime")
    if spec is None or spec.origin is None:
        raise ModelUnavailable("rapidocr-onnxruntime is not installed; run: pip install rapidocr-onnxruntime==1.4.4")
    path = Path(spec.origin).parent / "models" / name
    if not path.is_file():
        raise ModelUnavailable(f"model {name} missing from the rapidocr-onnxruntime wheel at {path}")
    return path


@lru_cache(maxsize=8)
def _session(name: str, threads: int):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(model_path(name)), opts, providers=["CPUExecutionProvider"])


def _normalize(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float32) * (2.0 / 255.0) - 1.0
    return x.transpose(2, 0, 1)[None]


def _as_rgb(view: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(view, cv2.COLOR_GRAY2RGB) if view.ndim == 2 else view


@dataclass(frozen=True)
class Proposal:
    """A DBNet text region: its axis-aligned box in the view's pixels, its mean probability and, where the region
    lies askew (a photographed screen held at an angle), its four corners, long side first: such a line is read
    level too, for in its upright box the neighbouring lines cross the crop and the recognizer reads little."""

    x0: int
    y0: int
    x1: int
    y1: int
    score: float
    quad: tuple[tuple[float, float], ...] | None = None

    @property
    def xyxy(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x1, self.y1

    def crop(self, view: np.ndarray) -> np.ndarray:
        """The region's box in ``view``."""
        return view[self.y0 : self.y1, self.x0 : self.x1]

    def level(self, view: np.ndarray) -> np.ndarray | None:
        """The region's askew rectangle in ``view`` turned level, or None for a region that lies level."""
        if self.quad is None:
            return None
        corners = np.float32(self.quad)
        width = max(1, int(round(float(np.linalg.norm(corners[1] - corners[0])))))
        height = max(1, int(round(float(np.linalg.norm(corners[3] - corners[0])))))
        level = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
        return cv2.warpPerspective(view, cv2.getPerspectiveTransform(corners, level), (width, height),
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def turned_back(self, width: int) -> "Proposal":
        """This proposal, found on a view turned a quarter counter-clockwise (``np.rot90``), in the coordinates of
        the view ``width`` pixels wide."""
        quad = None if self.quad is None else tuple((width - y, x) for x, y in self.quad)
        return Proposal(width - self.y1, self.x0, width - self.y0, self.x1, self.score, quad)


def askew_quad(points: np.ndarray, sx: float, sy: float, min_degrees: float = ASKEW_DEGREES
               ) -> tuple[tuple[float, float], ...] | None:
    """The corners of the rectangle around a region's ``points`` (x, y on the probability map), grown as its box
    is (DBNet's unclip, by its short side) and scaled to the view, long side first (the level crop's top-left,
    top-right, bottom-right and bottom-left); None for a region within ``min_degrees`` of level or of upright (its box reads it) or not twice as long as
    wide (a glyph: no line to level)."""
    (cx, cy), (rw, rh), angle = cv2.minAreaRect(points)
    if max(rw, rh) < 2 * min(rw, rh):
        return None
    if rw < rh:
        rw, rh, angle = rh, rw, angle + 90.0
    tilt = (angle + 90.0) % 180.0 - 90.0  # the long side's angle from level, in (-90, 90]
    if min(abs(tilt), 90.0 - abs(tilt)) < min_degrees:
        return None
    pad = 0.3 * rh + 1
    rad = math.radians(tilt)
    along = np.array([math.cos(rad), math.sin(rad)]) * (rw / 2 + pad)
    across = np.array([-math.sin(rad), math.cos(rad)]) * (rh / 2 + pad)
    centre = np.array([cx, cy])
    corners = [centre - along - across, centre + along - across, centre + along + across, centre - along + across]
    return tuple((float(x * sx), float(y * sy)) for x, y in corners)


class TextProposer:
    """DBNet text-region proposals (``Proposal``) in the input view's pixel coordinates."""

    def __init__(self, long_side: int = 1280, prob_threshold: float = 0.3, box_threshold: float = 0.5,
                 threads: int = 2, max_reduction: float = 0.0) -> None:
        self.long_side = long_side
        self.max_reduction = max_reduction  # a larger image is seen at its long side / this (0: always long_side)
        self.prob_threshold = prob_threshold
        self.box_threshold = box_threshold
        self.session = _session(DET_MODEL, threads)

    def __call__(self, view: np.ndarray, turned: bool = False) -> list[Proposal]:
        """Proposals on the view or, ``turned``, on the view turned a quarter (DBNet was trained on horizontal
        lines and proposes nothing on text running up a plate's edge), mapped back to the view's coordinates."""
        if not turned:
            return self._propose(view)
        return [p.turned_back(view.shape[1]) for p in self._propose(np.rot90(view))]

    def _propose(self, view: np.ndarray) -> list[Proposal]:
        view = np.ascontiguousarray(view)
        h, w = view.shape[:2]
        target = max(self.long_side, max(h, w) / self.max_reduction) if self.max_reduction else self.long_side
        scale = min(target / max(h, w), 2.0)  # small images are upsampled at most twofold
        nh = max(32, int(round(h * scale / 32)) * 32)
        nw = max(32, int(round(w * scale / 32)) * 32)
        interp = cv2.INTER_AREA if nh < h else cv2.INTER_LINEAR
        prob = self.session.run(None, {"x": _normalize(cv2.resize(_as_rgb(view), (nw, nh), interpolation=interp))})
        prob_map = prob[0][0, 0]
        mask = cv2.dilate((prob_map > self.prob_threshold).astype(np.uint8), np.ones((2, 2), np.uint8))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        sx, sy = w / nw, h / nh
        out = []
        for i in range(1, n):
            x, y, bw, bh, _area = stats[i]
            mine = labels[y : y + bh, x : x + bw] == i
            score = float(prob_map[y : y + bh, x : x + bw][mine].mean())
            if score < self.box_threshold or min(bw, bh) < 2:
                continue
            # DBNet shrinks text kernels; grow back (the "unclip" of the reference post-processing).
            pad = 0.3 * min(bw, bh) + 1
            x0 = max(0, int(math.floor((x - pad) * sx)))
            y0 = max(0, int(math.floor((y - pad) * sy)))
            x1 = min(w, int(math.ceil((x + bw + pad) * sx)))
            y1 = min(h, int(math.ceil((y + bh + pad) * sy)))
            ys, xs = np.nonzero(mine)
            points = np.column_stack([xs + x, ys + y]).astype(np.float32)
            out.append(Proposal(x0, y0, x1, y1, score, askew_quad(points, sx, sy)))
        return out


def padded_width(width: int, least: int = 64, step: float = 1.25, most: int = 1600) -> int:
    """The recognizer's input width for a crop ``width`` wide at its height: ``least`` times the smallest power of
    ``step`` that holds it (at most a quarter wasted on padding), capped at ``most`` (wider crops are squeezed)."""
    if width <= least:
        return least
    return min(most, int(math.ceil(least * step ** math.ceil(math.log(width / least, step) - 1e-9))))


class TextRecognizer:
    """CRNN/CTC line recognizer: (text, mean character confidence) for a crop holding one text line."""

    HEIGHT = 48

    def __init__(self, threads: int = 2) -> None:
        self.session = _session(REC_MODEL, threads)
        chars = self.session.get_modelmeta().custom_metadata_map["character"].splitlines()
        self.charset = ["<blank>"] + chars + [" "]

    def batch(self, crops: list[np.ndarray], chunk: int = 8) -> list[tuple[str, float]]:
        """Readings in input order. A crop is padded to its own width class (``padded_width``), never to its batch
        neighbours' widths: the recognizer reads padding too, and a crop must read the same whatever else is read
        with it. Crops of one class share a batch."""
        widths = [max(8, int(math.ceil(self.HEIGHT * c.shape[1] / max(1, c.shape[0])))) for c in crops]
        classes: dict[int, list[int]] = {}
        for i, w in enumerate(widths):
            classes.setdefault(padded_width(w), []).append(i)
        results: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        for width, members in classes.items():
            for start in range(0, len(members), chunk):
                group = members[start : start + chunk]
                batch = np.zeros((len(group), 3, self.HEIGHT, width), np.float32)
                for row, i in enumerate(group):
                    resized = cv2.resize(_as_rgb(crops[i]), (min(widths[i], width), self.HEIGHT))
                    batch[row, :, :, : resized.shape[1]] = _normalize(resized)[0]
                probs = self.session.run(None, {"x": batch})[0]
                for row, i in enumerate(group):
                    results[i] = self._decode(probs[row])
        return results

    def _decode(self, probs: np.ndarray) -> tuple[str, float]:
        idx = probs.argmax(axis=1)
        conf = probs.max(axis=1)
        keep = (idx != 0) & np.concatenate([[True], idx[1:] != idx[:-1]])
        if not keep.any():
            return "", 0.0
        return "".join(self.charset[i] for i in idx[keep]), float(conf[keep].mean())
