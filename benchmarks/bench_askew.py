"""Lead laterality markers taped on askew: share kept, filled and left, per angle (not a timed test).

    python benchmarks/bench_askew.py [--images 24] [--angles 0 10 20 30 40] [--out benchmarks/results/askew.json]

A technologist tapes the L or R lead marker to the cassette at whatever angle it lands; the synthetic training
data turned markers by quarter turns and a few degrees either side only. Here an L or R (alternately), bare, on a
tile, in a box or in a ring (in turn), 1/60 to 1/25 of the image's height, in bold training fonts, bright as lead,
is turned by each angle (clockwise and counter-clockwise in turn) and burned into the upper lung field of real
chest radiographs of the shared data (``hannover``, at their own size; generated phantoms where they are absent,
and said so). The shipped pipeline (``MarkerDecider``, as ``redact`` runs it) decides each image. Per marker:

- kept: a box kept as laterality covers it, naming its side, and 90 % of its letter's pixels are left unfilled
  (a tile or frame around the letter is filled, as retention does);
- wrong side: kept naming the other side (counted apart, and not as kept);
- filled: more than half of its letter's pixels filled (the laterality lost); cut: a tenth to a half;
- left: no more than a tenth filled and not kept (still there to see, though no stage recognised it).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import cv2
import numpy as np

from radiograph_deid.config import load_config
from radiograph_deid.enums import BoxAction
from radiograph_deid.evaluate import filled_mask
from radiograph_deid.glyphs import rotated
from radiograph_deid.marker_synth import _framed, render_text
from radiograph_deid.pipeline import MarkerDecider
from radiograph_deid.retention import side_of
from radiograph_deid.synthetic import phantom

from data_paths import HANNOVER_PNG  # beside this script

STYLES = ("bare", "tile", "box", "circle")


def backgrounds(n: int) -> tuple[list[np.ndarray], str]:
    files = sorted(HANNOVER_PNG.glob("*.png")) if HANNOVER_PNG.is_dir() else []
    if files:
        return [cv2.imread(str(files[i * 37 % len(files)]), cv2.IMREAD_GRAYSCALE) for i in range(n)], "hannover"
    return [(phantom(640, 560, seed=i) * 255).astype(np.uint8) for i in range(n)], "phantom"


def marker(i: int, height: int, degrees: float) -> tuple[str, np.ndarray, np.ndarray]:
    """The i-th marker's letter, its ink (0-1: letter, tile, frame) and its letter's pixels, turned by
    ``degrees``, cropped to its ink."""
    letter = "LR"[i % 2]
    glyph = render_text(letter, height, np.random.default_rng(100 + i), bold=True)
    style = STYLES[i % len(STYLES)]
    alpha, blank = (_framed(g, style, np.random.default_rng(200 + i)) for g in (glyph, np.zeros_like(glyph)))
    turn = degrees * (1 if i % 3 else -1)
    alpha, own = (rotated(np.ascontiguousarray(a, np.float32), turn) for a in (alpha, np.abs(alpha - blank)))
    ys, xs = np.nonzero(alpha > 0.05)
    crop = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    return letter, alpha[crop], own[crop] > 0.5


def outcome(decided: list, letter: str, ink: np.ndarray, at: tuple[int, int, int, int], shape: tuple[int, int]
            ) -> str:  # type: ignore[type-arg]
    """What became of the marker whose letter's pixels (``ink``) lie at ``at`` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = at
    filled = float(filled_mask(shape, decided)[y0:y1, x0:x1][ink].mean())
    kept = [d for d in decided if d.action is BoxAction.KEPT_LATERALITY
            and d.fill.x0 < x1 and x0 < d.fill.x1 and d.fill.y0 < y1 and y0 < d.fill.y1]
    if filled > 0.5:
        return "filled"
    if filled > 0.1:
        return "cut"
    if not kept:
        return "left"
    return "kept" if side_of(kept[0].box.text) == side_of(letter) else "wrong side"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--angles", type=float, nargs="+", default=[0, 10, 20, 30, 40])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "askew.json")
    args = parser.parse_args()
    decider = MarkerDecider(load_config())
    images, kind = backgrounds(args.images)
    if kind == "phantom":
        print("bench_askew: no radiographs in the shared data: phantoms stand in (set RADIOGRAPH_DEID_SHARED_DATA)",
              file=sys.stderr)
    results: dict[str, dict[str, int]] = {}
    for degrees in args.angles:
        counts = dict.fromkeys(("kept", "wrong side", "filled", "cut", "left"), 0)
        for i, gray in enumerate(images):
            h, w = gray.shape
            rng = np.random.default_rng(i)
            letter, alpha, own = marker(i, int(rng.integers(max(14, h // 60), max(16, h // 25))), degrees)
            x, y = int(w * 0.15), int(h * 0.3)  # the upper lung field, the image's left
            ah, aw = alpha.shape
            view = gray.astype(np.float32)
            view[y : y + ah, x : x + aw] = view[y : y + ah, x : x + aw] * (1 - alpha) + 242 * alpha
            view = np.clip(view, 0, 255).astype(np.uint8)
            counts[outcome(decider.decide(view)[1], letter, own, (x, y, x + aw, y + ah), view.shape)] += 1
        results[f"{degrees:g}"] = counts
        print(f"{degrees:g} degrees", counts, flush=True)
    report = {"images": args.images, "backgrounds": kind, "markers_per_angle": args.images,
              "by_degrees": results, "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"}
    print(json.dumps(report, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
