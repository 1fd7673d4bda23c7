"""Labelled marker boxes on real images: the hand-checked set, read and split by patient.

A label file is JSONL, one image per line: ``{"file", "w", "h", "boxes": [{"xyxy", "cls", "text"}], "patient",
"split"}`` with half-open pixel boxes in the image's own coordinates, ``cls`` ``laterality`` (an isolated side
marker, to be kept) or ``text`` (anything else burned in, to be removed), ``file`` relative to a data root.
"""
from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .enums import BoxClass

LABEL_CLASSES = {"laterality": BoxClass.LATERALITY, "text": BoxClass.OTHER_MARKER}
YOLO_NAMES = ("laterality", "text")  # class index order of the marker detector


class LabelError(ValueError):
    """A label file line is malformed."""


@dataclass(frozen=True)
class LabelledBox:
    xyxy: tuple[int, int, int, int]
    cls: BoxClass
    text: str = ""


@dataclass(frozen=True)
class LabelledImage:
    file: str
    width: int
    height: int
    boxes: tuple[LabelledBox, ...] = ()
    patient: str = ""
    split: str = ""
    extra: dict = field(default_factory=dict, compare=False)


def _box(raw: dict, where: str) -> LabelledBox:
    try:
        x0, y0, x1, y1 = (int(v) for v in raw["xyxy"])
        cls = LABEL_CLASSES[raw["cls"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise LabelError(f"{where}: box {raw!r} needs xyxy [x0, y0, x1, y1] and cls laterality|text") from exc
    if x1 <= x0 or y1 <= y0:
        raise LabelError(f"{where}: empty box {raw['xyxy']}")
    return LabelledBox((x0, y0, x1, y1), cls, str(raw.get("text", "")))


MAX_BOXES = 10_000  # per image: more is not a label but a mistake (or an attack on the server)


def parse_boxes(raw: object, where: str) -> tuple[LabelledBox, ...]:
    """A list of ``{"xyxy", "cls", "text"?}`` boxes, validated; raises LabelError saying what is wrong."""
    if not isinstance(raw, list) or len(raw) > MAX_BOXES:
        raise LabelError(f"{where}: 'boxes' must be a list of at most {MAX_BOXES} boxes")
    boxes = tuple(_box(b if isinstance(b, dict) else {}, where) for b in raw)
    for b in boxes:
        if min(b.xyxy) < 0:
            raise LabelError(f"{where}: box {list(b.xyxy)} has a negative coordinate")
    return boxes


def read_labels(path: str | Path) -> list[LabelledImage]:
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
            out.append(LabelledImage(row["file"], int(row["w"]), int(row["h"]),
                                     tuple(_box(b, where) for b in row.get("boxes", [])),
                                     row.get("patient", ""), row.get("split", ""),
                                     {k: v for k, v in row.items() if k == "note"}))
        except (KeyError, ValueError, TypeError) as exc:
            raise LabelError(f"{where}: {exc}") from exc
    return out


def write_labels(path: str | Path, images: Iterable[LabelledImage]) -> None:
    names = {v: k for k, v in LABEL_CLASSES.items()}
    lines = []
    for im in images:
        row = {"file": im.file, "w": im.width, "h": im.height, "patient": im.patient, "split": im.split,
               "boxes": [{"xyxy": list(b.xyxy), "cls": names[b.cls], "text": b.text} for b in im.boxes]}
        row.update(im.extra)
        lines.append(json.dumps(row, ensure_ascii=False))
    Path(path).write_text("\n".join(lines) + "\n")


def patient_split(patient: str, val_fraction: float = 0.3, salt: str = "radiograph-deid") -> str:
    """A stable train/val assignment by patient, so follow-up images never straddle the split."""
    h = int(hashlib.sha256(f"{salt}:{patient}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val_fraction else "train"


def hannover_patients(csv_path: str | Path) -> dict[str, str]:
    """image_id -> patient_id from the Hannover repository's data.csv."""
    with open(csv_path, newline="") as fh:
        return {row["image_id"]: row["patient_id"] for row in csv.DictReader(fh)}
