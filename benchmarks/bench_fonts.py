"""Latin text in fonts the detector never saw: share of lines the default pipeline fills, per font, height and
rendering.

    python benchmarks/bench_fonts.py [--fonts LiberationSans-Regular.ttf ...] [--out benchmarks/results/fonts.json]

The marker detector was trained on DejaVu, STIX, Computer Modern and OpenCV's Hershey fonts only
(``marker_synth.FONT_DIR_GLOBS``); a hospital's viewer or CR reader writes its overlay in its own. Three lines of
fake PHI (a name, an ID and accession number, a date, time and department) are burned into real chest radiographs
of the shared data (``hannover``; generated phantoms where they are absent, and said so), upsampled to 2400 px, at
capital heights of 8, 11, 16 and 24 px, bright or dark, anti-aliased or as a bitmap font draws them (Pillow's
``fontmode "1"``: no grey edge pixels, as on older CR readers' overlays). Fonts from Debian's
``fonts-liberation2``, ``fonts-freefont-ttf`` and ``fonts-urw-base35``; a font not installed is skipped and said
so. A line counts as removed when the pipeline's fill (``MarkerDecider`` with the shipped defaults, as
``redact`` runs it) covers >= 85 % of its box.
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
from radiograph_deid.evaluate import before_after, filled_mask
from radiograph_deid.pipeline import MarkerDecider
from radiograph_deid.synthetic import phantom

from data_paths import HANNOVER_PNG, font_path  # beside this script

FONTS = {  # file name: Debian package (none of them in the training fonts)
    "LiberationSans-Regular.ttf": "fonts-liberation2",  # Arial's metrics: most viewers' overlay font
    "LiberationSans-Bold.ttf": "fonts-liberation2",
    "LiberationMono-Regular.ttf": "fonts-liberation2",  # Courier's metrics
    "LiberationSerif-Regular.ttf": "fonts-liberation2",  # Times'
    "FreeSans.ttf": "fonts-freefont-ttf",
    "FreeMono.ttf": "fonts-freefont-ttf",
    "NimbusSansNarrow-Regular.otf": "fonts-urw-base35",  # condensed
    "URWGothic-Book.otf": "fonts-urw-base35",  # geometric
    "URWBookman-Light.otf": "fonts-urw-base35",
    "C059-Italic.otf": "fonts-urw-base35",  # Century Schoolbook italic
}
LINES = ("KOWALSKI, MARIA  F 54Y", "ID 00482913  ACC 7745120", "12.03.2024 14:27  Radiologie 2")
CAP_HEIGHTS = (8, 11, 16, 24)
SIDE = 2400


def _background(seed: int) -> tuple[np.ndarray, str]:
    """A real chest radiograph upsampled to SIDE rows (a phantom where the shared data is absent), 8-bit."""
    pngs = sorted(HANNOVER_PNG.glob("*.png")) if HANNOVER_PNG.is_dir() else []
    if not pngs:
        return (phantom(SIDE, int(SIDE * 0.85), seed) * 255).astype(np.uint8), "phantom"
    src = cv2.imread(str(pngs[(seed * 7) % len(pngs)]), cv2.IMREAD_GRAYSCALE)
    cols = int(SIDE * src.shape[1] / src.shape[0])
    return cv2.resize(src, (cols, SIDE), interpolation=cv2.INTER_CUBIC), "hannover"


def _page(font_file: Path, cap: int, seed: int, dark: bool, bitmap: bool
          ) -> tuple[np.ndarray, list[tuple[int, int, int, int]], str]:
    """The three lines burned at capital height ``cap`` into a background, one per third of the image, near its
    left or right edge as overlays stand; their boxes."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    gray, kind = _background(seed)
    probe = ImageFont.truetype(str(font_file), 100).getbbox("H")
    font = ImageFont.truetype(str(font_file), max(4, round(100 * cap / (probe[3] - probe[1]))))
    img = Image.fromarray(gray)
    draw = ImageDraw.Draw(img)
    draw.fontmode = "1" if bitmap else "L"
    boxes = []
    for k, text in enumerate(LINES):
        width = draw.textlength(text, font=font)
        x = int(rng.integers(30, 200)) if rng.random() < 0.5 else int(gray.shape[1] - width - rng.integers(30, 200))
        band = (gray.shape[0] - 120) // len(LINES)
        y = 60 + k * band + int(rng.integers(0, band - 3 * cap))
        draw.text((x, y), text, fill=20 if dark else 235, font=font)
        boxes.append(draw.textbbox((x, y), text, font=font))
    return np.asarray(img), boxes, kind


def _keep(path: Path, view: np.ndarray, filled: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """The line and a margin around it, before and after the fill (``evaluate.before_after``, as ``evaluate
    --misses`` writes them); grey or RGB views."""
    path.parent.mkdir(parents=True, exist_ok=True)
    after = np.where(filled[..., None] if view.ndim == 3 else filled, 0, view).astype(view.dtype)
    cv2.imwrite(str(path), before_after(view, after, box))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fonts.json")
    parser.add_argument("--fonts", nargs="+", choices=sorted(FONTS), default=list(FONTS),
                        help="only these fonts (default: all)")
    parser.add_argument("--keep", type=Path, help="write each missed line here, before and after, as a PNG")
    args = parser.parse_args()
    decider = MarkerDecider(load_config())
    by_font: dict[str, dict[str, float]] = {}
    tally: dict[str, list[int]] = {"all": [0, 0]}  # "all" / "8px" / "bitmap" / "dark" ...: [removed, lines]
    missed: list[dict] = []
    skipped: dict[str, str] = {}
    kinds = set()
    for name in args.fonts:
        f = list(FONTS).index(name)  # its pages as in a run of every font: a run of a few is comparable
        path = font_path(name)
        if path is None:
            skipped[name] = f"not installed (Debian: {FONTS[name]})"
            print(name, "skipped:", skipped[name], flush=True)
            continue
        for cap in CAP_HEIGHTS:
            removed = total = 0
            for k, (dark, bitmap) in enumerate(((False, False), (True, False), (False, True), (True, True))):
                view, boxes, kind = _page(path, cap, 100 * f + 10 * cap + k, dark, bitmap)
                kinds.add(kind)
                filled = filled_mask(view.shape, decider.decide(view)[1])
                for line, (x0, y0, x1, y1) in enumerate(boxes):
                    share = float(filled[y0:y1, x0:x1].mean())
                    gone = share >= 0.85
                    removed, total = removed + gone, total + 1
                    groups = (f"{cap}px", "bitmap" if bitmap else "anti-aliased", "dark" if dark else "bright")
                    for key in ("all", *groups):
                        tally.setdefault(key, [0, 0])
                        tally[key][0] += gone
                        tally[key][1] += 1
                    if not gone:
                        missed.append({"font": name, "cap_px": cap, "line": line, "dark": dark, "bitmap": bitmap,
                                       "filled": round(share, 3)})
                        if args.keep:
                            _keep(args.keep / f"{Path(name).stem}-{cap}px-{k}-{line}.png", view, filled, boxes[line])
            by_font.setdefault(name, {})[f"{cap}px"] = round(removed / total, 3)
        print(name, by_font[name], flush=True)
    if kinds == {"phantom"}:
        print(f"bench_fonts: no radiographs in {HANNOVER_PNG}: phantoms stand in (set RADIOGRAPH_DEID_SHARED_DATA)",
              file=sys.stderr)
    all_removed, lines = tally.pop("all")
    report = {"backgrounds": sorted(kinds), "lines": lines, "removed_share": round(all_removed / max(1, lines), 3),
              "removed_share_by": {k: round(r / t, 3) for k, (r, t) in tally.items()},
              "removed_share_by_font": by_font, "missed_lines": missed, "skipped": skipped,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: report[k] for k in ("lines", "removed_share", "removed_share_by")}))


if __name__ == "__main__":
    main()
