"""Text in colour on radiographs exported in RGB: share of lines the default pipeline fills, and share the safety
net reads before any fill, per colour.

    python benchmarks/bench_colour.py [--out benchmarks/results/colour.json] [--keep DIR]

A secondary capture, a viewer's screenshot or a teaching export carries text in a viewer's colours (yellow, green,
cyan, orange, red, magenta, blue) drawn over the anatomy. Two ways: the colour at full strength, and the colour
scaled to the brightness of the ground under its line (mixed with white where the hue cannot be that bright): a
line as bright as the lung it crosses stands out in colour alone. The three lines of ``bench_fonts`` (a name, IDs,
a date and department) in Liberation Sans at capital heights of 11 and 16 px, burned into real chest radiographs of
the shared data (``hannover``; generated phantoms where they are absent, and said so) upsampled to 2400 px, inside
the body (a fifth of the width in from each edge); once as drawn and once through JPEG at quality 80 (4:2:0
chroma: an export or e-mailed figure). A line counts as removed when the pipeline's fill (``MarkerDecider`` with
the shipped defaults, as ``redact`` runs it) covers >= 85 % of its box; as seen by the safety net when the
verifier (``verify``, Tesseract, as ``redact`` runs it) reports a word overlapping its box in the unredacted image.
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

from radiograph_deid.boxes import Box
from radiograph_deid.config import load_config
from radiograph_deid.evaluate import filled_mask
from radiograph_deid.pipeline import MarkerDecider
from radiograph_deid.verify import build_verifier

from bench_fonts import LINES, _background, _keep  # beside this script
from data_paths import font_path

HUES = {"yellow": (1, 1, 0), "green": (0, 1, 0), "cyan": (0, 1, 1), "orange": (1, 0.55, 0), "red": (1, 0, 0),
        "magenta": (1, 0, 1), "blue": (0, 0, 1)}
LUMA = np.array([0.299, 0.587, 0.114])
CAP_HEIGHTS = (11, 16)
FONT = "LiberationSans-Regular.ttf"  # fonts-liberation2


def ink_colour(hue: tuple[float, ...], ground: float | None) -> tuple[int, int, int]:
    """The hue at full strength (``ground`` None), or as bright as ``ground`` (0-255): scaled down, or where the
    hue cannot be that bright at full strength, mixed with white."""
    h = np.asarray(hue, float)
    if ground is None:
        return tuple(int(v) for v in 255 * h)
    rgb = h * ground / float(LUMA @ h)
    if rgb.max() > 255:
        white = (ground - 255 * float(LUMA @ h)) / (255 * float(LUMA @ (1 - h)))
        rgb = 255 * (h + (1 - h) * np.clip(white, 0, 1))
    return tuple(int(round(v)) for v in np.clip(rgb, 0, 255))


def page(font_file: Path, cap: int, seed: int, hue: tuple[float, ...], matched: bool, jpeg: bool
         ) -> tuple[np.ndarray, list[tuple[int, int, int, int]], str]:
    """The three lines burned in the hue at capital height ``cap`` into an RGB background, one per third of the
    image, inside the body; their boxes."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    gray, kind = _background(seed)
    probe = ImageFont.truetype(str(font_file), 100).getbbox("H")
    font = ImageFont.truetype(str(font_file), max(4, round(100 * cap / (probe[3] - probe[1]))))
    img = Image.fromarray(np.dstack([gray] * 3))
    draw = ImageDraw.Draw(img)
    boxes = []
    for k, text in enumerate(LINES):
        width = draw.textlength(text, font=font)
        x = int(rng.integers(gray.shape[1] // 5, gray.shape[1] - width - gray.shape[1] // 5))
        band = (gray.shape[0] - 120) // len(LINES)
        y = 60 + k * band + int(rng.integers(0, band - 3 * cap))
        box = draw.textbbox((x, y), text, font=font)
        ground = float(gray[box[1] : box[3], box[0] : box[2]].mean()) if matched else None
        draw.text((x, y), text, fill=ink_colour(hue, ground), font=font)
        boxes.append(box)
    view = np.asarray(img)
    if jpeg:
        _, data = cv2.imencode(".jpg", view[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
        view = np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1])
    return view, boxes, kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "colour.json")
    parser.add_argument("--keep", type=Path, help="write each missed line here, before and after, as a PNG")
    args = parser.parse_args()
    font_file = font_path(FONT)
    if font_file is None:
        raise SystemExit(f"{FONT} not installed (Debian: fonts-liberation2)")
    cfg = load_config()
    decider, verifier = MarkerDecider(cfg), build_verifier(cfg.verify)
    tally: dict[str, list[int]] = {}  # group: [removed, seen by the safety net, lines]
    missed, kinds = [], set()
    for h, (name, hue) in enumerate(HUES.items()):
        for matched in (False, True):
            for jpeg in (False, True):
                for cap in CAP_HEIGHTS:
                    seed = 1000 * h + 100 * matched + 10 * jpeg + cap
                    view, boxes, kind = page(font_file, cap, seed, hue, matched, jpeg)
                    kinds.add(kind)
                    filled = filled_mask(view.shape[:2], decider.decide(view)[1])
                    words = [f.box for f in verifier(view)]
                    for line, (x0, y0, x1, y1) in enumerate(boxes):
                        gone = bool(filled[y0:y1, x0:x1].mean() >= 0.85)
                        seen = any(w.intersection(Box(x0, y0, x1, y1)) for w in words)
                        groups = ("all", name, "as bright as its ground" if matched else "full strength",
                                  "jpeg" if jpeg else "as drawn", f"{cap}px")
                        for key in groups:
                            counts = tally.setdefault(key, [0, 0, 0])
                            counts[0] += gone
                            counts[1] += seen
                            counts[2] += 1
                        if not gone:
                            missed.append({"colour": name, "matched": matched, "jpeg": jpeg, "cap_px": cap,
                                           "line": line, "filled": round(float(filled[y0:y1, x0:x1].mean()), 3)})
                            if args.keep:
                                stem = f"{name}-{'matched' if matched else 'full'}-{'jpeg' if jpeg else 'png'}"
                                _keep(args.keep / f"{stem}-{cap}px-{line}.png", view, filled, (x0, y0, x1, y1))
        print(name, {k: v for k, v in tally.items() if k == name}, flush=True)
    if kinds == {"phantom"}:
        print("bench_colour: no radiographs in the shared data: phantoms stand in (set RADIOGRAPH_DEID_SHARED_DATA)",
              file=sys.stderr)
    removed, seen, lines = tally.pop("all")
    report = {"backgrounds": sorted(kinds), "lines": lines, "removed_share": round(removed / lines, 3),
              "seen_by_safety_net_share": round(seen / lines, 3),
              "removed_share_by": {k: round(r / n, 3) for k, (r, _, n) in tally.items()},
              "seen_by_safety_net_share_by": {k: round(s / n, 3) for k, (_, s, n) in tally.items()},
              "missed_lines": missed,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: report[k] for k in ("lines", "removed_share", "seen_by_safety_net_share",
                                             "removed_share_by", "seen_by_safety_net_share_by")}, indent=1))


if __name__ == "__main__":
    main()
