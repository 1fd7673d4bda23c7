"""Hand-labelling aid for real radiographs: render images with a pixel grid, zoom into regions, draw labels.

Labels are JSONL rows ``{"file", "w", "h", "boxes": [{"xyxy": [x0, y0, x1, y1], "cls", "text"}]}`` with
half-open pixel boxes in the image's own coordinates and ``cls`` one of ``laterality`` (an isolated L/R-type
marker that must be kept) or ``text`` (anything else burned in, which must be removed).

    python scripts/label_tool.py show IMAGE OUT.png [--silver SILVER.jsonl] [--labels LABELS.jsonl]
    python scripts/label_tool.py crop IMAGE OUT.png X0 Y0 X1 Y1
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

GRID = 50
COLOURS = {"laterality": (0, 200, 0), "text": (0, 0, 255), "silver": (255, 128, 0)}


def _rows(path: str | None) -> dict[str, dict]:
    if not path or not Path(path).exists():
        return {}
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return {row["file"]: row for row in rows}


def _key(image: Path) -> str:
    parts = image.resolve().parts
    for anchor in ("hannover", "covid-ccby"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor):])
    return image.name


def _grid(canvas: np.ndarray, origin: tuple[int, int], scale: float, step: int) -> None:
    h, w = canvas.shape[:2]
    x_start = (origin[0] // step + 1) * step
    y_start = (origin[1] // step + 1) * step
    for x in range(x_start, origin[0] + int(w / scale) + 1, step):
        px = int((x - origin[0]) * scale)
        cv2.line(canvas, (px, 0), (px, h), (0, 255, 255), 1)
        cv2.putText(canvas, str(x), (px + 2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1)
    for y in range(y_start, origin[1] + int(h / scale) + 1, step):
        py = int((y - origin[1]) * scale)
        cv2.line(canvas, (0, py), (w, py), (0, 255, 255), 1)
        cv2.putText(canvas, str(y), (2, py - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1)


def _draw(canvas: np.ndarray, xyxy, colour, label: str, origin, scale) -> None:
    x0, y0, x1, y1 = [int(round((v - o) * scale)) for v, o in zip(xyxy, (*origin, *origin))]
    cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, 1)
    cv2.putText(canvas, label, (x0, max(10, y0 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1)


def render(image: Path, out: Path, region=None, silver=None, labels=None, target: int = 1000) -> None:
    gray = cv2.imread(str(image), cv2.IMREAD_GRAYSCALE)
    x0, y0, x1, y1 = region or (0, 0, gray.shape[1], gray.shape[0])
    crop = gray[y0:y1, x0:x1]
    scale = target / max(crop.shape)
    canvas = cv2.cvtColor(cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST if scale > 2 else cv2.INTER_AREA), cv2.COLOR_GRAY2BGR)
    step = GRID if region is None else max(5, int(round(max(x1 - x0, y1 - y0) / 10 / 5) * 5))
    _grid(canvas, (x0, y0), scale, step)
    key = _key(image)
    for box in (silver or {}).get(key, {}).get("boxes", []):
        poly = np.asarray(box["poly"])
        _draw(canvas, [*poly.min(0), *poly.max(0)], COLOURS["silver"], f"ocr:{box['text']}", (x0, y0), scale)
    for box in (labels or {}).get(key, {}).get("boxes", []):
        _draw(canvas, box["xyxy"], COLOURS[box["cls"]], box.get("text", box["cls"]), (x0, y0), scale)
    cv2.imwrite(str(out), canvas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    show = sub.add_parser("show")
    show.add_argument("image", type=Path)
    show.add_argument("out", type=Path)
    show.add_argument("--silver")
    show.add_argument("--labels")
    crop = sub.add_parser("crop")
    crop.add_argument("image", type=Path)
    crop.add_argument("out", type=Path)
    crop.add_argument("box", type=int, nargs=4)
    crop.add_argument("--labels")
    args = parser.parse_args()
    if args.cmd == "show":
        render(args.image, args.out, silver=_rows(args.silver), labels=_rows(args.labels))
    else:
        render(args.image, args.out, region=tuple(args.box), labels=_rows(args.labels), target=600)


if __name__ == "__main__":
    main()
