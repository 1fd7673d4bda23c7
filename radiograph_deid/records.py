"""Per-image decision records and the run summary (JSON and CSV). No PHI: no header values, no read text."""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .boxes import Box
from .detector import MARKER_SOURCE
from .enums import BoxAction, Decision, Stage
from .fileio import write_bytes_atomic


def unfilled_boxes(boxes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The marker detector's boxes (records, ``box_record``) left unfilled: ``rejected``, doubted and not read, or a
    ring or a spot spared; not one lying mostly on a box filled or kept in its frame (a second box on a kept
    marker), which is no place to look."""
    decided = [(Box(*b["box"]), b.get("frame", "")) for b in boxes if b["action"] != BoxAction.REJECTED.value]

    def on_decided(b: dict[str, Any]) -> bool:
        box = Box(*b["box"])
        return any(frame == b.get("frame", "") and box.intersection(d) * 2 >= box.width * box.height
                   for d, frame in decided)

    return [b for b in boxes if b["action"] == BoxAction.REJECTED.value
            and Box(*b["box"], source=b["source"]).found_by(MARKER_SOURCE) and not on_decided(b)]


def top_unfilled_score(boxes: list[dict[str, Any]]) -> float:
    """The highest score among ``unfilled_boxes``, 0 when none. What a run leaves readable it cannot see, so a
    reviewer looks first where it doubted most: on the real validation set, 3 of the 4 images that still held a
    marker were among the 14 of 75 with the highest such score (a random 14 hold under one on average); on
    synthetic seed 1000, 7 of 12 among 20 of 60."""
    return max((float(b["score"]) for b in unfilled_boxes(boxes)), default=0.0)


def box_record(box: Box, action: BoxAction, frame: str = "") -> dict[str, Any]:
    rec: dict[str, Any] = {"box": box.as_list(), "class": box.label.value, "score": round(float(box.score), 4),
                           "action": action.value, "source": box.source}
    if action is BoxAction.KEPT_LATERALITY:
        rec["glyph"] = box.text  # the kept marker's letter, visible in the output anyway
    if frame:
        rec["frame"] = frame
    return rec


@dataclass
class ImageRecord:
    input: str  # path relative to INPUT
    input_size: int
    input_mtime_ns: int
    decision: Decision = Decision.QUARANTINED  # fail closed until a stage says otherwise
    stage: Stage = Stage.READ
    reason: str = ""
    output: str = ""  # path relative to OUTPUT
    kind: str = ""
    modality: str = ""
    frames: int = 0
    rows: int = 0
    columns: int = 0
    pixels_modified: bool = False
    unused_bits_cleared: int = 0  # samples whose bits above BitsStored held something (an embedded overlay)
    boxes: list[dict[str, Any]] = field(default_factory=list)
    verification: dict[str, Any] = field(default_factory=dict)
    header_actions: list[dict[str, str]] = field(default_factory=list)
    laterality: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    settings: str = ""  # the run's settings digest (``folder_run.settings_digest``): a rerun under others redoes it

    def to_json(self) -> str:
        d = asdict(self)
        d["decision"], d["stage"] = self.decision.value, self.stage.value
        return json.dumps(d, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "ImageRecord":
        d = json.loads(text)
        d["decision"], d["stage"] = Decision(d["decision"]), Stage(d["stage"])
        return cls(**d)

    def summary_row(self) -> dict[str, Any]:
        redacted = sum(b["action"] == BoxAction.REDACTED.value for b in self.boxes)
        kept = sum(b["action"] == BoxAction.KEPT_LATERALITY.value for b in self.boxes)
        return {"input": self.input, "decision": self.decision.value, "stage": self.stage.value,
                "reason": self.reason, "output": self.output, "boxes_redacted": redacted, "markers_kept": kept,
                "laterality_kept": " ".join(self.laterality.get("kept", [])),
                "laterality_mismatch": bool(self.laterality.get("mismatch", False)), "seconds": round(self.seconds, 3),
                "top_unfilled_score": round(top_unfilled_score(self.boxes), 4)}


SUMMARY_FIELDS = ["input", "decision", "stage", "reason", "output", "boxes_redacted", "markers_kept", "laterality_kept",
                  "laterality_mismatch", "seconds", "top_unfilled_score"]


def _shown(name: str) -> str:
    """A file name as text: bytes that are no UTF-8 (a name written in Latin-1 on an old share, "M\\xfcller")
    shown as escapes; the CSV stays UTF-8 (such a name had stopped the run as it wrote the summary)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def write_summary(folder: Path, records: list[ImageRecord], run_info: dict[str, Any]) -> dict[str, Any]:
    counts = {d.value: sum(r.decision is d for r in records) for d in Decision}
    mismatches = sum(bool(r.laterality.get("mismatch")) for r in records if r.decision is Decision.WRITTEN)
    summary = {**run_info, "images": len(records), "counts": counts, "laterality_mismatches": mismatches,
               "seconds_per_image": round(sum(r.seconds for r in records) / max(1, len(records)), 4),
               "images_detail": [r.summary_row() for r in records]}
    write_bytes_atomic(folder / "summary.json", json.dumps(summary, indent=1).encode())
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS)
    writer.writeheader()
    for r in records:
        writer.writerow({k: _shown(v) if isinstance(v, str) else v for k, v in r.summary_row().items()})
    write_bytes_atomic(folder / "summary.csv", buf.getvalue().encode())
    return summary
