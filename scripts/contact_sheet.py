"""Before/after contact sheet of a redaction run: each input beside its output (or its quarantine reason).

``--review N``: only the N written images whose unfilled marker-detector boxes scored highest
(``top_unfilled_score`` in summary.csv), those boxes outlined in yellow on the output: where a reviewer looks first.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from radiograph_deid.config import OutputConfig
from radiograph_deid.enums import OutputNames
from radiograph_deid.fileio import read_frames
from radiograph_deid.folder_run import record_path, records_folder
from radiograph_deid.pixels import to_display
from radiograph_deid.records import unfilled_boxes


def thumb(path: Path, size: int, outlined: Sequence[Sequence[int]] = ()) -> np.ndarray:
    view = to_display(read_frames(path), 0)
    view = cv2.cvtColor(view, cv2.COLOR_GRAY2BGR) if view.ndim == 2 else cv2.cvtColor(view, cv2.COLOR_RGB2BGR)
    s = size / max(view.shape[:2])
    view = cv2.resize(view, (int(view.shape[1] * s), int(view.shape[0] * s)), interpolation=cv2.INTER_AREA)
    for x0, y0, x1, y1 in outlined:
        cv2.rectangle(view, (int(x0 * s) - 2, int(y0 * s) - 2), (int(x1 * s) + 2, int(y1 * s) + 2), (0, 255, 255), 1)
    tile = np.full((size, size, 3), 40, np.uint8)
    tile[: view.shape[0], : view.shape[1]] = view
    return tile


def label(tile: np.ndarray, text: str) -> np.ndarray:
    cv2.putText(tile, text[:60], (4, tile.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1)
    return tile


def summary_folder(output: Path, records_dir: str = OutputConfig().records_dir) -> Path:
    """Where a run's summary and records are: OUTPUT/.deid, or beside OUTPUT (OUTPUT_deid) when its outputs were
    named pseudonymously (``output.names``); ``records_dir`` is the run's ``output.records_dir``."""
    tried = [records_folder(output, records_dir, names) for names in OutputNames]
    for folder in tried:
        if (folder / "summary.json").is_file():
            return folder
    raise SystemExit(f"contact_sheet: no summary.json in {' nor in '.join(map(str, tried))}: give the OUTPUT of a "
                     "finished redact run (and its output.records_dir as --records-dir, if the run set one)")


def unfilled(records: Path, rel: str) -> list[list[int]]:
    """The marker detector's unfilled boxes (``records.unfilled_boxes``) on the image's first frame, from its record."""
    path = record_path(records, Path(rel))
    boxes = json.loads(path.read_text())["boxes"] if path.is_file() else []
    return [b["box"] for b in unfilled_boxes(boxes) if not b.get("frame")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("input", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("sheet", type=Path)
    ap.add_argument("--size", type=int, default=420)
    ap.add_argument("--review", type=int, default=0, metavar="N",
                    help="only the N written images with the highest top_unfilled_score, their unfilled boxes outlined")
    ap.add_argument("--records-dir", default=OutputConfig().records_dir,
                    help="the run's output.records_dir, where it was set (default: %(default)s)")
    args = ap.parse_args()
    records = summary_folder(args.output, args.records_dir)
    summary = json.loads((records / "summary.json").read_text())
    items = summary["images_detail"]
    if args.review:
        written = [i for i in items if i["decision"] == "written"]
        items = sorted(written, key=lambda i: -float(i.get("top_unfilled_score", 0.0)))[: args.review]
    rows = []
    for item in items:
        if item["decision"] == "skipped":
            continue
        try:
            before = label(thumb(args.input / item["input"], args.size), "before: " + item["input"])
        except Exception:
            continue
        if item["decision"] == "written":
            outlined = unfilled(records, item["input"]) if args.review else []
            shown = f"after: unfilled {item.get('top_unfilled_score', 0.0):.2f}" if args.review else "after"
            after = label(thumb(args.output / item["output"], args.size, outlined), shown)
        else:
            after = label(np.full_like(before, 40), "QUARANTINED " + item["stage"])
        rows.append(np.hstack([before, after]))
    cv2.imwrite(str(args.sheet), np.vstack(rows))


if __name__ == "__main__":
    main()
