"""Photographed screens: a viewer's overlay text on a radiograph shown on a monitor, photographed with a phone.

    python benchmarks/bench_screens.py [--images 24] [--tilt DEGREES] [--set KEY=VALUE]
        [--out benchmarks/results/screens.json]

Radiographs reach research sets as phone photographs of a reading-room monitor too. The viewer's overlay (patient
name, ID, birth date, accession number, institution, study date, window/level, zoom, exposure, technician,
referring physician) sits in the four corners in a small sans, mono or serif font, white, yellow, green or grey.
The photograph tilts the screen in perspective and adds moiré, a colour cast, glare, blur, noise and JPEG
compression; the result is a 3000 x 2250 RGB image, as a phone's. None of this was in the detector's training
data. Backgrounds: the shared Hannover radiographs when ../shared/data is present, else chest phantoms.

A line counts as removed when the pipeline's fill (``MarkerDecider`` with the shipped defaults, as ``redact``
runs it) covers >= 85 % of its box's bounding rectangle in the photograph (with ``--tilt``, of that rectangle
turned with the photograph: a phone held askew). Also reported: the share of the photograph filled outside every
overlay line (what the fills cost in image), and seconds per image.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from radiograph_deid.config import load_config
from radiograph_deid.evaluate import filled_mask
from radiograph_deid.marker_synth import font_files
from radiograph_deid.pipeline import MarkerDecider
from radiograph_deid.synthetic import phantom

from data_paths import HANNOVER_PNG  # beside this script

CORNERS = (("MUELLER^ANNA", "ID 00482913", "*12.03.1985 F", "ACC 7734120"),
           ("ST. MARY HOSPITAL", "CR CHEST PA", "2024-05-17 08:41", "Se: 1 Im: 1"),
           ("W: 4095 L: 2047", "Zoom: 85%", "kVp 120 mAs 2.5"),
           ("Tech: JS", "Portable", "Dr. K. Novak"))
FONTS = ("DejaVuSans.ttf", "DejaVuSansMono.ttf", "DejaVuSerif.ttf")
COLOURS = ((255, 255, 255), (255, 255, 120), (120, 255, 120), (200, 200, 200))
SIZES = (14, 18, 22)  # px on a 1600 x 1200 display; about 1.6 times that in the photograph
DISPLAY = (1200, 1600)
PHOTO = (2250, 3000)


def backgrounds(n: int) -> list[np.ndarray]:
    files = sorted(HANNOVER_PNG.glob("*.png")) if HANNOVER_PNG.is_dir() else []
    if files:
        return [cv2.imread(str(files[i * len(files) // n]), cv2.IMREAD_GRAYSCALE) for i in range(n)]
    return [(phantom(2000, 1700, seed=i) * 255).astype(np.uint8) for i in range(n)]


def on_screen(gray: np.ndarray, rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """The radiograph fitted to the display, the overlay drawn in its corners; the overlay lines' boxes."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = DISPLAY
    scale = 0.95 * min(h / gray.shape[0], w / gray.shape[1])
    fitted = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    display = np.zeros((h, w), np.uint8)
    y0, x0 = (h - fitted.shape[0]) // 2, (w - fitted.shape[1]) // 2
    display[y0 : y0 + fitted.shape[0], x0 : x0 + fitted.shape[1]] = fitted
    image = Image.fromarray(display).convert("RGB")
    draw = ImageDraw.Draw(image)
    name = FONTS[int(rng.integers(len(FONTS)))]
    path = next((p for p in font_files() if p.name == name), None)
    if path is None:
        raise SystemExit(f"{name} not found (install matplotlib or fonts-dejavu)")
    font = ImageFont.truetype(str(path), size)
    colour = COLOURS[int(rng.integers(len(COLOURS)))]
    step = int(size * 1.3)
    boxes = []
    for corner, lines in enumerate(CORNERS):
        for i, text in enumerate(lines):
            width = draw.textlength(text, font=font)
            x = 10 if corner % 2 == 0 else w - 10 - width
            y = 10 + i * step if corner < 2 else h - 10 - (len(lines) - i) * step
            draw.text((x, y), text, fill=colour, font=font)
            boxes.append(draw.textbbox((x, y), text, font=font))
    return np.asarray(image), boxes


def photographed(rgb: np.ndarray, boxes: list[tuple[int, ...]], rng: np.random.Generator
                 ) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """The display photographed: perspective, moiré, colour cast, glare, blur, noise, JPEG; boxes mapped along."""
    h, w = rgb.shape[:2]
    H, W = PHOTO
    m = 250
    corners = [(m, m), (W - m, m), (W - m, H - m), (m, H - m)]
    dst = np.float32([[x + rng.uniform(-120, 120), y + rng.uniform(-120, 120)] for x, y in corners])
    warp = cv2.getPerspectiveTransform(np.float32([[0, 0], [w, 0], [w, h], [0, h]]), dst)
    photo = cv2.warpPerspective(rgb, warp, (W, H), borderValue=(25, 25, 30)).astype(np.float32)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    angle, freq = rng.uniform(0, np.pi), rng.uniform(0.15, 0.35)
    moire = 1 + 0.08 * np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)))
    glare = 1 + 0.25 * np.exp(-((xx - rng.uniform(0, W)) ** 2 + (yy - rng.uniform(0, H)) ** 2) / (2 * 600.0**2))
    cast = np.array([rng.uniform(0.8, 1.0), rng.uniform(0.85, 1.0), rng.uniform(0.9, 1.1)], np.float32)
    photo = photo * (moire * glare)[..., None] * cast + rng.normal(0, 5, photo.shape)
    photo = cv2.GaussianBlur(np.clip(photo, 0, 255).astype(np.uint8), (0, 0), rng.uniform(0.6, 1.4))
    _, jpeg = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 86))])
    photo = cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED)
    mapped = []
    for x0, y0, x1, y1 in boxes:
        quad = cv2.perspectiveTransform(np.float32([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]]), warp)[0]
        mapped.append((int(quad[:, 0].min()), int(quad[:, 1].min()), int(quad[:, 0].max()) + 1, int(quad[:, 1].max()) + 1))
    return photo, mapped


def tilted(photo: np.ndarray, boxes: list[tuple[int, int, int, int]], degrees: float
           ) -> tuple[np.ndarray, list[np.ndarray]]:
    """The photograph turned by ``degrees`` about its centre (a phone held askew) on a canvas grown to hold it
    whole, and each line's box as the four corners it then has."""
    h, w = photo.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(turn[0, 0]), abs(turn[0, 1])
    size = (int(round(w * cos + h * sin)), int(round(w * sin + h * cos)))  # the canvas grown: no line cut off
    turn[:, 2] += (size[0] - w) / 2, (size[1] - h) / 2
    turned = cv2.warpAffine(photo, turn, size, borderValue=(25, 25, 30))
    quads = [np.rint(cv2.transform(np.float32([[[x0, y0], [x1 - 1, y0], [x1 - 1, y1 - 1], [x0, y1 - 1]]]), turn)[0])
             .astype(np.int32) for x0, y0, x1, y1 in boxes]  # the corner pixels: filled, exactly the box at 0
    return turned, quads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "screens.json")
    parser.add_argument("--tilt", type=float, default=0.0, metavar="DEGREES",
                        help="turn each photograph this much more (a phone held askew; default 0)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="as redact --set: a configuration value other than the shipped default")
    args = parser.parse_args()
    decider = MarkerDecider(load_config(overrides=args.overrides))
    per_size: dict[int, list[int]] = {s: [0, 0] for s in SIZES}
    outside, seconds, missed = [], [], {}
    for i, gray in enumerate(backgrounds(args.images)):
        rng = np.random.default_rng(i)
        size = SIZES[i % len(SIZES)]
        photo, quads = tilted(*photographed(*on_screen(gray, rng, size), rng), args.tilt)
        t = time.perf_counter()
        filled = filled_mask(photo.shape[:2], decider.decide(photo)[1])
        seconds.append(time.perf_counter() - t)
        lines = np.zeros_like(filled)
        for quad, text in zip(quads, (t for c in CORNERS for t in c)):
            line = cv2.fillConvexPoly(np.zeros(filled.shape, np.uint8), quad, 1).astype(bool)
            lines |= line
            removed = filled[line].mean() >= 0.85
            per_size[size][0] += int(removed)
            per_size[size][1] += 1
            if not removed:
                missed[text] = missed.get(text, 0) + 1
        outside.append(float((filled & ~lines).mean()))
        print(i, size, f"{per_size[size][0]}/{per_size[size][1]}", flush=True)
    removed, total = sum(r for r, _ in per_size.values()), sum(n for _, n in per_size.values())
    report = {
        "images": args.images, "backgrounds": "hannover" if HANNOVER_PNG.is_dir() else "phantom",
        "removed_share": round(removed / total, 4), "lines": total,
        "removed_share_by_display_px": {f"{s}px": round(r / n, 4) for s, (r, n) in per_size.items() if n},
        "missed_lines": dict(sorted(missed.items(), key=lambda kv: -kv[1])),
        "filled_outside_lines": round(float(np.mean(outside)), 4),
        "seconds_per_image": round(float(np.mean(seconds)), 2),
        "tilt_degrees": args.tilt,
        "overrides": args.overrides,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
    }
    print(json.dumps(report, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
