"""Site-specific detector versions beside the shipped weights, published atomically.

A fine-tuning round writes its weights into a new version folder; only after they load and run is ``current.json``
switched to it (one atomic rename), so a server reading the store either serves the old weights or the new ones,
never a half-written file, and a failed round changes nothing. With no version published, the shipped weights in
``radiograph_deid/models/`` are served: they stay the one source of truth and are never overwritten.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .fileio import write_bytes_atomic
from .train import SHIPPED_ONNX, SHIPPED_PT

SHIPPED = "shipped"


@dataclass(frozen=True)
class ModelVersion:
    name: str
    onnx: Path  # what inference loads
    pt: Path  # what the next fine-tuning round starts from
    info: dict[str, Any]


def check_onnx(path: Path) -> None:
    """Load the detector and run it on a blank image: raises if the file is not a usable marker detector."""
    from .config import DetectorConfig
    from .detector import MarkerDetector

    MarkerDetector(DetectorConfig(name="marker-yolo", weights=str(path), threads=1))(np.zeros((256, 256), np.uint8))


class ModelStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def pointer(self) -> Path:
        return self.root / "current.json"

    def current(self) -> ModelVersion:
        """The version to serve: the published one, or the shipped weights."""
        try:
            info = json.loads(self.pointer.read_text())
            folder = self.root / info["version"]
            version = ModelVersion(info["version"], folder / "marker_detector.onnx", folder / "marker_detector.pt", info)
            if version.onnx.is_file() and version.pt.is_file():
                return version
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return ModelVersion(SHIPPED, SHIPPED_ONNX, SHIPPED_PT, {"version": SHIPPED})

    def publish(self, pt: Path, onnx: Path, info: dict[str, Any]) -> ModelVersion:
        """Copy ``pt`` and ``onnx`` into a new version, check the ONNX runs, then make it current."""
        check_onnx(onnx)
        name = time.strftime("v%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000:06d}"
        folder = self.root / name
        tmp = self.root / f".{name}.partial"
        tmp.mkdir(parents=True)
        shutil.copyfile(pt, tmp / "marker_detector.pt")
        shutil.copyfile(onnx, tmp / "marker_detector.onnx")
        record = {**info, "version": name, "previous": self.current().name, "published": time.time()}
        (tmp / "info.json").write_text(json.dumps(record, indent=1))
        tmp.rename(folder)
        write_bytes_atomic(self.pointer, json.dumps(record, indent=1).encode())
        return self.current()

    def history(self) -> list[dict[str, Any]]:
        """Every published version's record, oldest first."""
        out = []
        for info in sorted(self.root.glob("v*/info.json")):
            try:
                out.append(json.loads(info.read_text()))
            except (OSError, ValueError):
                continue
        return out
