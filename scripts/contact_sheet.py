"""Before/after contact sheet of a redaction run: each input beside its output (or its quarantine reason)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from radiograph_deid.fileio import read_frames
from radiograph_deid.pixels import to_display


def thumb(path: Path, size: int) -> np.ndarray:
    view = to_display(read_frames(path), 0)
    view = cv2.cvtColor(view, cv2.COLOR_GRAY2BGR) if view.ndim == 2 else cv2.cvtColor(view, cv2.COLOR_RGB2BGR)
    s = size / max(view.shape[:2])
    view = cv2.resize(view, (int(view.shape[1] * s), int(view.shape[0] * s)), interpolation=cv2.INTER_AREA)
    tile = np.full((size, size, 3), 40, np.uint8)
    tile[: view.shape[0], : view.shape[1]] = view
    return tile


def label(tile: np.ndarray, text: str) -> np.ndarray:
    cv2.putText(tile, text[:60], (4, tile.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1)
    return tile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("input", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("sheet", type=Path)
    ap.add_argument("--size", type=int, default=420)
    args = ap.parse_args()
    summary = json.loads((args.output / ".deid" / "summary.json").read_text())
    rows = []
    for item in summary["images_detail"]:
        if item["decision"] == "skipped":
            continue
        try:
            before = label(thumb(args.input / item["input"], args.size), "before: " + item["input"])
        except Exception:
            continue
        if item["decision"] == "written":
            after = label(thumb(args.output / item["output"], args.size), "after")
        else:
            after = label(np.full_like(before, 40), "QUARANTINED " + item["stage"])
        rows.append(np.hstack([before, after]))
    cv2.imwrite(str(args.sheet), np.vstack(rows))


if __name__ == "__main__":
    main()
