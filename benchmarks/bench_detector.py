"""Marker detector alone: milliseconds per image with onnxruntime, and the smallest text it finds on 3000 px.

    python benchmarks/bench_detector.py [--threads 2] [--weights PATH] [--out benchmarks/results/detector.json]

Speed: the whole ``MarkerDetector.__call__`` (reduction to the detector view, letterbox, ONNX run, boxes back
to original coordinates) on 3000 x 2500 px views, after warm-up; median, mean and p95 of ``--repeat`` runs. Small text: lines of fake PHI burned at
heights 6-24 px into 3000-px chest phantoms; a line counts as found when a detected box covers >= 85% of it.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from radiograph_deid.config import DetectorConfig
from radiograph_deid.detector import MarkerDetector
from radiograph_deid.synthetic import Burn, burn, phantom

LINES = ("DOE, JANE 1961", "MRN 00482913", "05/03/2024 14:22", "PORTABLE AP", "ST EXAMPLE HOSP")


def _covered(box: tuple[int, int, int, int], found: list) -> bool:  # type: ignore[type-arg]
    x0, y0, x1, y1 = box
    area = (x1 - x0) * (y1 - y0)
    for b, _ in found:
        ix = max(0, min(x1, b.x1) - max(x0, b.x0))
        iy = max(0, min(y1, b.y1) - max(y0, b.y0))
        if ix * iy >= 0.85 * area:
            return True
    return False


def small_text_recall(det: MarkerDetector, heights: tuple[int, ...], n: int = 6) -> dict[int, float]:
    rng = np.random.default_rng(5)
    out = {}
    for h in heights:
        hits = total = 0
        for i in range(n):
            rows, cols = 3000, int(rng.integers(2400, 3000))
            burns = [Burn(LINES[k % len(LINES)], int(rng.integers(40, cols // 2)), 60 + k * (rows - 200) // 5, h)
                     for k in range(5)]
            view = (burn(phantom(rows, cols, i), burns) * 255).astype(np.uint8)
            found = det(view)
            for b in burns:
                ink = np.argwhere(burn(np.zeros((rows, cols), np.float32), [b]) > 0.3)
                box = (int(ink[:, 1].min()), int(ink[:, 0].min()), int(ink[:, 1].max()) + 1, int(ink[:, 0].max()) + 1)
                hits += _covered(box, found)
                total += 1
        out[h] = hits / total
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", default="")
    parser.add_argument("--tile", type=int, default=0, help="detector.tile_long_side (0: the 1024-px view only)")
    parser.add_argument("--repeat", type=int, default=100, help="timed runs (this shared machine is noisy: the "
                        "median is the figure to compare)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "detector.json")
    args = parser.parse_args()
    det = MarkerDetector(DetectorConfig(name="marker-yolo", threads=args.threads, weights=args.weights,
                                        tile_long_side=args.tile))
    view = (phantom(3000, 2500, 1) * 255).astype(np.uint8)
    for _ in range(3):
        det(view)
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        det(view)
        times.append(time.perf_counter() - t)
    recall = small_text_recall(det, (6, 8, 10, 12, 16, 24))
    result = {"ms_median": round(1000 * float(np.median(times)), 1), "ms_mean": round(1000 * float(np.mean(times)), 1),
              "ms_p95": round(1000 * float(np.percentile(times, 95)), 1),
              "threads": args.threads, "input_size": det.size, "tile_long_side": args.tile,
              "small_text_recall_3000px": recall,
              "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPUs"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
