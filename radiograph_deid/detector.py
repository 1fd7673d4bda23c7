"""The detection stage: an interface, a registry, and the interim text detector.

A detector takes the display view of one frame and returns boxes in original pixel coordinates. Which one
runs is chosen by ``detector.name`` in the configuration; the learned marker detector registers here too.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Protocol, Sequence

import cv2
import numpy as np

from .boxes import Box, iou
from .config import DetectorConfig
from .corner_icons import SOURCE as ICON, find_corner_icons
from .dot_matrix import holds_dot_matrix
from .enums import BoxAction, BoxClass
from .ocr_models import Proposal


class Detector(Protocol):
    def __call__(self, view: np.ndarray) -> list[tuple[Box, BoxAction]]:
        """Boxes found in ``view`` (uint8, (H, W) or (H, W, 3)); proposals not kept are returned as REJECTED."""
        ...


VERTICAL_MIN_CHARS = 3  # a proposal found only on the turned view is text if it reads this many characters ...
# ... as surely as one or two characters must read (``short_text_confidence``): the ring-shaped spinous processes
# of the upper spine, turned, read as "SSIG" or "slelop" at 0.62-0.75, words turned with the view at 0.83 and better
CONFIRM_MIN_CHARS = 2  # a box the marker detector doubts is text if it reads this many (cables, ribs read "0", "T")
COLOUR_MAP = 0.4  # ... unless this share of it is in strong colour: a Doppler flow map (0.66) read "45."; text 0-0.15
MARKER_SOURCE = "marker-yolo"  # Box.source of the trained marker detector's boxes
TEXT_SOURCE = "rapidocr-text"  # ... and of the OCR text detector's (read or not)

DETECTORS: dict[str, Callable[[DetectorConfig], Detector]] = {}


def register(name: str) -> Callable[[Callable[[DetectorConfig], Detector]], Callable[[DetectorConfig], Detector]]:
    def deco(factory: Callable[[DetectorConfig], Detector]) -> Callable[[DetectorConfig], Detector]:
        DETECTORS[name] = factory
        return factory

    return deco


def build_detector(cfg: DetectorConfig) -> Detector:
    """The detector named by ``cfg.name``; ``a+b`` runs both and redacts what either finds."""
    names = [n.strip() for n in cfg.name.split("+")]
    unknown = [n for n in names if n not in DETECTORS]
    if unknown or not names:
        raise ValueError(f"unknown detector '{cfg.name}'; available: {', '.join(sorted(DETECTORS))} (or a+b)")
    parts = [DETECTORS[n](cfg) for n in names]
    return parts[0] if len(parts) == 1 else UnionDetector(parts)


class UnionDetector:
    """Several detectors on the same view; a box any of them keeps goes on to retention and redaction."""

    def __init__(self, parts: list[Detector]) -> None:
        self.parts = parts

    def __call__(self, view: np.ndarray) -> list[tuple[Box, BoxAction]]:
        found = [f for part in self.parts for f in part(view)]
        rejected = [f for f in found if f[1] is BoxAction.REJECTED]
        kept = merge_duplicates([b for b, a in found if a is not BoxAction.REJECTED])
        return rejected + [(b, BoxAction.REDACTED) for b in kept]


def _nested(a: Box, b: Box, share: float = 0.5) -> bool:
    """At least ``share`` of the smaller box lies in the larger."""
    return a.intersection(b) >= share * min(a.width * a.height, b.width * b.height)


def _same_marker(a: Box, b: Box) -> bool:
    """Two detectors' boxes on one marker: the smaller mostly inside the larger, and of similar size. A corner
    pictogram's box joins no box called laterality: retention fills a pictogram whole, and decides a lead marker's
    tile in a corner on the marker detector's box alone."""
    small, large = sorted((a.width * a.height, b.width * b.height))
    if any(x.found_by(ICON) and y.label is BoxClass.LATERALITY for x, y in ((a, b), (b, a))):
        return False
    return _nested(a, b, 0.7) and large <= 3 * small


def merge_duplicates(boxes: list[Box]) -> list[Box]:
    """One box per marker when several detectors found it (so retention decides it once): their union extent,
    the best score, laterality if any said so, the text a recognizer read."""
    merged: list[Box] = []
    for box in sorted(boxes, key=lambda b: -b.score):
        for i, m in enumerate(merged):
            if _same_marker(m, box):
                label = BoxClass.LATERALITY if BoxClass.LATERALITY in (m.label, box.label) else m.label
                merged[i] = replace(m.spanning(box), label=label, text=m.text or box.text,
                                    source="+".join(dict.fromkeys((m.source + "+" + box.source).split("+"))))
                break
        else:
            merged.append(box)
    return merged


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


def _surely_read(reading: tuple[str, float], bar: float) -> bool:
    """Read at ``bar`` or better as ``CONFIRM_MIN_CHARS`` or more letters and digits."""
    return reading[1] >= bar and sum(c.isalnum() for c in reading[0]) >= CONFIRM_MIN_CHARS


def _colour_map(crop: np.ndarray) -> bool:
    """Whether ``COLOUR_MAP`` of an RGB crop is in strong colour (saturated, not dark): the colour flow of a
    Doppler ultrasound, whose texture the recognizer reads as "45." at 0.8. Burned-in text, coloured or not, is
    strokes on plain ground."""
    if crop.ndim != 3 or crop.size == 0:
        return False
    hsv = cv2.cvtColor(np.ascontiguousarray(crop[..., :3]), cv2.COLOR_RGB2HSV)
    return float(((hsv[..., 1] > 128) & (hsv[..., 2] > 64)).mean()) >= COLOUR_MAP


def _confirm_variants(box: Box, crop: np.ndarray) -> list[np.ndarray]:
    """A doubted box's crop once more, by its shape: lying, with its dots joined (a dot-matrix "L:1.8" read "L"
    and a CJK sign); standing upright, turned a quarter either way (a line running up or down). Lying or square,
    line by line when it holds a block of lines (a viewer's overlay in a corner); a square box holding no such
    block, as most of the doubts on anatomy, is not read again."""
    if box.width > 1.5 * box.height:
        return stroke_variants(crop) + row_crops(crop)
    if box.height > 1.5 * box.width:
        return [np.ascontiguousarray(np.rot90(crop, k)) for k in (1, 3)]
    return row_crops(crop)


def row_crops(crop: np.ndarray) -> list[np.ndarray]:
    """Each line of a block of text lines in the crop (``text_lines.text_rows``), a little taller than the line:
    the four lines of a viewer's overlay, boxed as one by the detector, read as nothing together."""
    from .pixels.display import to_gray
    from .text_lines import text_rows

    h = crop.shape[0]
    return [np.ascontiguousarray(crop[max(0, a - (b - a) // 4) : min(h, b + (b - a) // 4)])
            for a, b in text_rows(to_gray(crop))]


def _with_margin(view: np.ndarray, box: Box, share: float = 0.15) -> np.ndarray:
    """The box's crop with a margin of ``share`` of its short side: the recognizer was trained on text regions
    grown beyond the ink, and the marker detector boxes tight."""
    grown = box.expanded(int(round(share * min(box.width, box.height))), view.shape[:2])
    return view[grown.y0 : grown.y1, grown.x0 : grown.x1]


def _alnum(reading: tuple[str, float]) -> float:
    return reading[1] if any(c.isalnum() for c in reading[0]) else -1.0


def read_proposals(recognizer, view: np.ndarray, proposals: Sequence[Proposal],  # type: ignore[no-untyped-def]
                   min_confidence: float) -> list[tuple[str, float]]:
    """Best reading per proposal (``read_any_orientation``) of its box and, for a region lying askew whose box
    does not read well, of the region turned level: a level line whose rectangle tilts with a tall first letter
    (a lead "R" before initials) reads as its box did."""
    readings = read_any_orientation(recognizer, [p.crop(view) for p in proposals], min_confidence)
    unread = [i for i, p in enumerate(proposals) if p.quad is not None and _alnum(readings[i]) < min_confidence]
    levels = [proposals[i].level(view) for i in unread]
    for i, reading in zip(unread, read_any_orientation(recognizer, levels, min_confidence)):  # type: ignore[arg-type]
        readings[i] = max(readings[i], reading, key=_alnum)
    return readings


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
        self.proposer = TextProposer(cfg.long_side, cfg.prob_threshold, cfg.box_threshold, cfg.threads,
                                     cfg.text_max_reduction)
        self.recognizer = TextRecognizer(cfg.threads)

    def __call__(self, view: np.ndarray) -> list[tuple[Box, BoxAction]]:
        h, w = view.shape[:2]
        max_line = self.cfg.max_text_height_fraction * min(h, w)
        out: list[tuple[Box, BoxAction]] = []
        candidates: list[tuple[Proposal, bool]] = []  # (proposal, found only on the turned view)
        for p, turned in self._proposals(view):
            if min(p.x1 - p.x0, p.y1 - p.y0) > max_line:
                out.append((Box(*p.xyxy, p.score, source="proposal-too-large"), BoxAction.REJECTED))
            else:
                candidates.append((p, turned))
        readings = read_proposals(self.recognizer, view, [p for p, _ in candidates],
                                  self.cfg.min_recognition_confidence)
        for (p, turned), (text, conf) in zip(candidates, readings):
            chars = sum(c.isalnum() for c in text)
            standing = p.y1 - p.y0 > p.x1 - p.x0  # a line read turned, the best of several turns: turned anatomy too
            sure = self.cfg.short_text_confidence if chars <= 2 or standing else self.cfg.min_recognition_confidence
            is_text = conf >= sure and chars >= (VERTICAL_MIN_CHARS if turned else 1)
            box = Box(*p.xyxy, round(conf, 4), BoxClass.OTHER_MARKER, text=text, source=TEXT_SOURCE)
            out.append((box, BoxAction.REDACTED if is_text else BoxAction.REJECTED))
        return out

    def _proposals(self, view: np.ndarray) -> list[tuple[Proposal, bool]]:
        """Upright proposals (text if one character reads), then with ``vertical_text`` the upright-standing ones
        found only on the view turned a quarter (True), which must read as a line, surely: ribs and vertebrae,
        turned, read as "7", "SE" or "T", the column of spinous processes as "SSIG"."""
        upright = self.proposer(view)
        turned = self.proposer(view, turned=True) if self.cfg.vertical_text else []
        new = [p for p in turned
               if p.y1 - p.y0 > p.x1 - p.x0 and all(iou(p.xyxy, u.xyxy) < 0.5 for u in upright)]
        return [(p, False) for p in upright] + [(p, True) for p in new]


@register("rapidocr-text")
def _rapidocr(cfg: DetectorConfig) -> Detector:
    return RapidOCRTextDetector(cfg)


class RulerDetector:
    """Rulers found by their geometry (``rulers.find_rulers``): their lone number labels escape both learned
    detectors. It has no settings: what counts as a ruler is ``rulers.RulerGeometry``."""

    def __call__(self, view: np.ndarray) -> list[tuple[Box, BoxAction]]:
        from .pixels.display import detector_gray
        from .rulers import find_rulers_any_size

        return [(box, BoxAction.REDACTED) for box in find_rulers_any_size(detector_gray(view))]


@register("ruler")
def _ruler(cfg: DetectorConfig) -> Detector:
    return RulerDetector()


class CornerIconDetector:
    """Device pictograms in the image's corners, found by their shape (``corner_icons.find_corner_icons``): too
    small and plain for the learned detector to find every time, and holding no text to read. No settings: what
    counts as one is ``corner_icons.IconGeometry``."""

    def __call__(self, view: np.ndarray) -> list[tuple[Box, BoxAction]]:
        from .pixels.display import detector_gray

        return [(box, BoxAction.REDACTED) for box in find_corner_icons(detector_gray(view))]


@register("corner-icon")
def _corner_icon(cfg: DetectorConfig) -> Detector:
    return CornerIconDetector()


class MarkerDetector:
    """The project's trained marker detector (YOLO exported to ONNX), run with onnxruntime.

    The image is reduced exactly as in training (``marker_dataset.detector_view``) and placed top-left on the
    model's square input (with ``tile_long_side``, a larger view is searched in tiles too); the raw head's boxes
    get class-agnostic NMS here. Every box above ``score_threshold`` is redacted unless the retention pass keeps
    a laterality glyph in it; a box scored from ``confirm_threshold`` up to it only when the text recognizer
    reads it (``_confirmed``).
    """

    def __init__(self, cfg: DetectorConfig) -> None:
        import onnxruntime as ort

        from .train import SHIPPED_ONNX

        path = Path(cfg.weights).expanduser() if cfg.weights else SHIPPED_ONNX
        if not path.is_file():
            raise FileNotFoundError(f"marker detector weights not found: {path} (set detector.weights or reinstall)")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = cfg.threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=_providers(ort))
        self.input = self.session.get_inputs()[0]
        self.size = int(self.input.shape[-1])
        self.cfg = cfg
        self.floor = min(cfg.confirm_threshold, cfg.score_threshold)  # boxes below this are not looked at
        self.recognizer = None  # loaded when an unsure box first needs reading

    def __call__(self, view: np.ndarray) -> list[tuple[Box, BoxAction]]:
        from .pixels.display import detector_gray

        gray = detector_gray(view)
        rows = self.search(gray)
        h, w = view.shape[:2]
        boxes: list[Box] = []
        for x0, y0, x1, y1, score, cls in rows:
            bx0, by0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
            bx1, by1 = min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
            if bx1 > bx0 and by1 > by0:
                label = BoxClass.LATERALITY if int(cls) == 0 else BoxClass.OTHER_MARKER
                boxes.append(Box(bx0, by0, bx1, by1, round(float(score), 4), label, source=MARKER_SOURCE))
        sure = [b for b in boxes if b.score >= self.cfg.score_threshold]
        unsure = [b for b in boxes if b.score < self.cfg.score_threshold
                  and not any(_nested(b, s) for s in sure)]  # a doubt about a marker already boxed adds nothing
        return [(b, BoxAction.REDACTED) for b in sure] + self._confirmed(view, unsure)

    def _confirmed(self, view: np.ndarray, unsure: list[Box]) -> list[tuple[Box, BoxAction]]:
        """Boxes scored below ``score_threshold`` (from ``confirm_threshold``) are redacted when the text
        recognizer reads at least two characters in them with ``confirm_confidence``: faint, dot-matrix or
        dark-on-dark text the detector sees but doubts; the anatomy and hardware it doubts read as nothing, or as
        one character (a cable loop "0", a clip "T", noise "R"). A box that does not read upright is read with its
        dots joined into strokes too (dot-matrix imprints), and if it stands upright, turned a quarter either way
        (text running up or down a plate's edge, "113 kVp"). A box that reads as nothing is redacted when it holds
        a dot-matrix imprint (``dot_matrix.holds_dot_matrix``): sparse dots that even joined read as nothing."""
        from .pixels.display import to_gray

        if not unsure:
            return []
        if self.recognizer is None:
            from .ocr_models import TextRecognizer

            self.recognizer = TextRecognizer(self.cfg.threads)
        crops = [_with_margin(view, b) for b in unsure]
        bar = self.cfg.confirm_confidence
        readings = self.recognizer.batch(crops)  # upright; all eight placements would cost 0.3 s per image
        retries = [(i, v) for i, (box, crop) in enumerate(zip(unsure, crops)) if not _surely_read(readings[i], bar)
                   for v in _confirm_variants(box, crop)]
        for (i, _), reading in zip(retries, self.recognizer.batch([v for _, v in retries])):  # one batch for all
            readings[i] = max(readings[i], reading, key=lambda r: (_surely_read(r, bar), r[1]))
        out = []
        for box, reading, crop in zip(unsure, readings, crops):
            if _colour_map(crop):
                out.append((box, BoxAction.REJECTED))
            elif _surely_read(reading, bar):
                out.append((replace(box, text=reading[0], source=f"{MARKER_SOURCE}+read"), BoxAction.REDACTED))
            elif holds_dot_matrix(to_gray(crop)):
                out.append((replace(box, source=f"{MARKER_SOURCE}+dots"), BoxAction.REDACTED))
            else:
                out.append((box, BoxAction.REJECTED))
        return out

    def search(self, gray: np.ndarray) -> np.ndarray:
        """(x0, y0, x1, y1, score, class) rows in original pixels: the whole image at the model's size and, with
        ``tile_long_side``, a larger view in overlapping model-sized tiles, where small text is big enough."""
        from .marker_dataset import detector_view

        small, scale = detector_view(gray, self.size)
        found = [self._scaled(self._run(small), 0, 0, scale)]
        long_side = tiled_side(gray.shape, self.size, self.cfg.tile_long_side)
        if long_side:
            big, big_scale = detector_view(gray, long_side)
            step = self.size - self.size // 8
            for ty in range(0, max(1, big.shape[0] - self.size // 8), step):
                for tx in range(0, max(1, big.shape[1] - self.size // 8), step):
                    tile = big[ty : ty + self.size, tx : tx + self.size]
                    found.append(self._scaled(self._run(tile), tx, ty, big_scale))
        rows = np.concatenate(found)
        if len(found) == 1 or len(rows) < 2:
            return rows
        return rows[_nms(rows, 0.5)]

    @staticmethod
    def _scaled(rows: np.ndarray, tx: int, ty: int, scale: float) -> np.ndarray:
        rows = rows.astype(np.float32).copy()
        rows[:, [0, 2]] = (rows[:, [0, 2]] + tx) / scale
        rows[:, [1, 3]] = (rows[:, [1, 3]] + ty) / scale
        return rows

    def _run(self, image: np.ndarray) -> np.ndarray:
        """The model on one image of at most its input size, placed top-left on a grey canvas."""
        canvas = np.full((self.size, self.size), 114, np.uint8)
        canvas[: image.shape[0], : image.shape[1]] = image
        x = np.repeat(canvas[None, None].astype(np.float32) / 255.0, 3, axis=1)
        (pred,) = self.session.run(None, {self.input.name: x})
        return self._boxes(pred).reshape(-1, 6)

    def _boxes(self, pred: np.ndarray) -> np.ndarray:
        """(x0, y0, x1, y1, score, class) rows above the threshold, from either export layout: end-to-end
        (1, K, 6) or raw (1, 4 + classes, anchors) with centre boxes, which gets class-agnostic NMS here."""
        if pred.shape[-1] == 6 and pred.shape[1] != 6:
            rows = pred[0]
            return rows[rows[:, 4] >= self.floor]
        raw = pred[0].T
        scores = raw[:, 4:]
        cls = scores.argmax(axis=1)
        conf = scores[np.arange(len(raw)), cls]
        keep = conf >= self.floor
        raw, cls, conf = raw[keep], cls[keep], conf[keep]
        xyxy = np.column_stack([raw[:, 0] - raw[:, 2] / 2, raw[:, 1] - raw[:, 3] / 2,
                                raw[:, 0] + raw[:, 2] / 2, raw[:, 1] + raw[:, 3] / 2])
        if len(xyxy) == 0:
            return np.zeros((0, 6), np.float32)
        rows = np.column_stack([xyxy, conf, cls])
        return rows[_nms(rows, 0.5)]


def tiled_side(shape: tuple[int, ...], size: int, tile_long_side: int) -> int:
    """The long side of the view the marker detector searches in ``size`` tiles for an image of ``shape``
    (``tile_long_side``, or the image's own where smaller); 0 where it is not tiled: a view under 1.5 times the
    model's input shows little the whole-image view does not."""
    side = min(tile_long_side, max(shape[:2]))
    return side if side >= 1.5 * size else 0


def _nms(rows: np.ndarray, iou: float) -> np.ndarray:
    """Indices of the (x0, y0, x1, y1, score, ...) rows kept by class-agnostic non-maximum suppression."""
    idx = cv2.dnn.NMSBoxes([[float(a), float(b), float(c - a), float(d - b)] for a, b, c, d in rows[:, :4]],
                           rows[:, 4].astype(float).tolist(), 0.0, iou)
    return np.asarray(idx, int).reshape(-1)


def _providers(ort) -> list[str]:  # type: ignore[no-untyped-def]
    """CUDA when onnxruntime has it (a GPU build on a GPU machine), else CPU."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


@register("marker-yolo")
def _marker_yolo(cfg: DetectorConfig) -> Detector:
    return MarkerDetector(cfg)
