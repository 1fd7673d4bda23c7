"""Synthetic marker images from real backgrounds, as a YOLO dataset and as an evaluation stream.

Backgrounds are real radiographs (the hand-labelled set, whose real markers become labels too, so the detector
is never taught that a real marker is background) and chest phantoms. A background is scaled to a random
acquisition size, markers are burned in at that size, and the result is reduced by ``detector_view`` exactly
as at inference. Training images are 512-px crops of that view (the detector is fully convolutional, so a
crop has the same pixel scale as the whole view at inference, at a quarter of the training cost).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from .enums import BoxClass
from .labels import YOLO_NAMES, LabelledImage
from .marker_synth import Placed, degrade, jpeg_artefacts, synthesize
from .synthetic import phantom

CLASS_INDEX = {BoxClass.LATERALITY: 0, BoxClass.OTHER_MARKER: 1}


def detector_view(gray: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    """The image the marker detector sees: long side resized to ``long_side``; returns it and the scale."""
    scale = long_side / max(gray.shape[:2])
    size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(gray, size, interpolation=interp), scale


@dataclass(frozen=True)
class Background:
    """A real image (display domain) with its known real markers, or a phantom when ``path`` is empty."""

    path: str
    boxes: tuple[Placed, ...] = ()


def backgrounds_from_labels(images: Sequence[LabelledImage], root: Path) -> list[Background]:
    return [Background(str(root / im.file), tuple(Placed(b.xyxy, b.cls, b.text) for b in im.boxes)) for im in images]


SMALL_SIDES = (500, 1000)  # a small image's long side: an export or a figure, which the detector sees enlarged


def _load(bg: Background, rng: np.random.Generator, small_share: float = 0.0) -> tuple[np.ndarray, list[Placed]]:
    """The background at a random acquisition size (1500-3200 px, or for ``small_share`` of them a small image's
    ``SMALL_SIDES``) as float [0, 1], with its real markers rescaled."""
    small = small_share > 0 and rng.random() < small_share  # no draw at 0: the sets made before stay the same
    target = int(rng.integers(*SMALL_SIDES)) if small else int(rng.integers(1500, 3200))
    if not bg.path:
        rows = target
        cols = int(target * rng.uniform(0.75, 1.25))
        return phantom(rows, cols, int(rng.integers(1 << 30))), []
    gray = cv2.imread(bg.path, cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise FileNotFoundError(f"background image not readable: {bg.path}")
    s = target / max(gray.shape)
    img = cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
    boxes = [p.scaled(s) for p in bg.boxes]
    return img, boxes


def sample(bg: Background, rng: np.random.Generator, long_side: int, small_share: float = 0.0
           ) -> tuple[np.ndarray, list[Placed], np.ndarray]:
    """One synthetic image: (detector view uint8, boxes in view coordinates, full-resolution uint8 image)."""
    img, real = _load(bg, rng, small_share)
    if rng.random() < 0.15:
        img = 1.0 - img if not bg.path else img  # phantoms both ways round; real images stay as displayed
    img, placed = synthesize(img, rng, real)
    full = (degrade(img, rng) * 255).astype(np.uint8)
    view, scale = detector_view(full, long_side)
    if rng.random() < 0.2:
        view = jpeg_artefacts(view, rng)
    boxes = [p.scaled(scale) for p in placed]
    return view, boxes, full


def sample_any(backgrounds: Sequence[Background], rng: np.random.Generator, long_side: int,
               phantom_fraction: float = 0.1, small_share: float = 0.0) -> tuple[np.ndarray, list[Placed], np.ndarray]:
    """``sample`` on one of ``backgrounds`` drawn at random, or on a phantom (``phantom_fraction`` of the time)."""
    bg = Background("") if rng.random() < phantom_fraction or not backgrounds else \
        backgrounds[int(rng.integers(len(backgrounds)))]
    return sample(bg, rng, long_side, small_share)


def _yolo_lines(boxes: Sequence[Placed], x0: int, y0: int, w: int, h: int) -> list[str]:
    lines = []
    for p in boxes:
        bx0, by0, bx1, by1 = max(p.xyxy[0] - x0, 0), max(p.xyxy[1] - y0, 0), min(p.xyxy[2] - x0, w), min(p.xyxy[3] - y0, h)
        full = (p.xyxy[2] - p.xyxy[0]) * (p.xyxy[3] - p.xyxy[1])
        if bx1 - bx0 < 1 or by1 - by0 < 1 or (bx1 - bx0) * (by1 - by0) < 0.4 * full:
            continue
        cx, cy, bw, bh = (bx0 + bx1) / 2 / w, (by0 + by1) / 2 / h, (bx1 - bx0) / w, (by1 - by0) / h
        lines.append(f"{CLASS_INDEX[p.cls]} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
    return lines


def training_crops(view: np.ndarray, boxes: Sequence[Placed], size: int, rng: np.random.Generator
                   ) -> Iterator[tuple[int, int]]:
    """Top-left corners of a synthetic view's training crops: one holding a random label, one anywhere."""
    h, w = view.shape[:2]
    if boxes:
        p = boxes[int(rng.integers(len(boxes)))]
        yield crop_around(p.centre, view, size, rng)
    yield int(rng.integers(0, max(1, w - size + 1))), int(rng.integers(0, max(1, h - size + 1)))


def crop_around(centre: tuple[float, float], view: np.ndarray, size: int, rng: np.random.Generator) -> tuple[int, int]:
    """The top-left corner of a ``size`` square of ``view`` holding ``centre`` at a random offset from its edges."""
    h, w = view.shape[:2]
    return (int(np.clip(centre[0] - rng.integers(size // 8, size - size // 8), 0, max(0, w - size))),
            int(np.clip(centre[1] - rng.integers(size // 8, size - size // 8), 0, max(0, h - size))))


def write_yolo_dataset(out: Path, backgrounds: Sequence[Background], n_train: int, n_val: int,
                       val_backgrounds: Sequence[Background], long_side: int = 1024, crop: int = 512,
                       seed: int = 0, phantom_fraction: float = 0.1, small_share: float = 0.0) -> Path:
    """Write ``out/{images,labels}/{train,val}`` and ``out/data.yaml``; returns the yaml path. ``small_share``
    of the images, both splits, are drawn as small images (``_load``)."""
    from tqdm import tqdm

    for split, n, bgs, split_seed in (("train", n_train, backgrounds, seed), ("val", n_val, val_backgrounds, seed + 1)):
        make_split_dirs(out, split)
        rng = np.random.default_rng(split_seed)
        for i in tqdm(range(n), desc=f"synthesizing {split}", unit="img"):
            view, boxes, _ = sample_any(bgs, rng, long_side, phantom_fraction, small_share)
            for k, (x0, y0) in enumerate(training_crops(view, boxes, crop, rng)):
                write_tile(out, split, f"{split}_{i:06d}_{k}", view, boxes, x0, y0, crop)
    return write_data_yaml(out)


def make_split_dirs(out: Path, split: str) -> None:
    (out / "images" / split).mkdir(parents=True, exist_ok=True)
    (out / "labels" / split).mkdir(parents=True, exist_ok=True)


def write_tile(out: Path, split: str, name: str, view: np.ndarray, boxes: Sequence[Placed], x0: int, y0: int,
               size: int) -> None:
    """The ``size`` square of ``view`` at (x0, y0) as a YOLO image and its label file (boxes clipped to it)."""
    tile = view[y0 : y0 + size, x0 : x0 + size]
    cv2.imwrite(str(out / "images" / split / f"{name}.png"), tile)
    lines = _yolo_lines(boxes, x0, y0, tile.shape[1], tile.shape[0])
    (out / "labels" / split / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))


def write_data_yaml(out: Path) -> Path:
    data = out / "data.yaml"
    data.write_text(json.dumps({"path": str(out.resolve()), "train": "images/train", "val": "images/val",
                                "names": dict(enumerate(YOLO_NAMES))}, indent=1))
    return data
