"""Marker boxes as a 3D Slicer markups file: one ROI per box, in LPS millimetres.

Slicer places a 2-D radiograph using ImagePositionPatient / ImageOrientationPatient and the pixel spacing; CR and
DX rarely carry the first two, so, like Slicer, the image then lies at the origin along +x (columns) and +y (rows).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from pydicom.dataset import Dataset

from .known_regions import SOURCE as KNOWN_SOURCE, from_rule

MARKUPS_SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/"
                  "Schema/markups-schema-v1.0.3.json#")
COLOURS = {"laterality": [0.2, 0.9, 0.3], "text": [1.0, 0.3, 0.2]}
KNOWN_COLOUR = [0.6, 0.6, 0.6]  # a site's known region: filled by its rule, shown locked, never read back as a label


@dataclass(frozen=True)
class PixelGeometry:
    """Where pixel centres lie in patient space (LPS, mm)."""

    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)  # centre of the first pixel
    row_direction: tuple[float, float, float] = (1.0, 0.0, 0.0)  # along a row: increasing column index
    column_direction: tuple[float, float, float] = (0.0, 1.0, 0.0)  # down a column: increasing row index
    spacing: tuple[float, float] = (1.0, 1.0)  # (between rows, between columns), as DICOM PixelSpacing

    def __post_init__(self) -> None:
        r, c = np.asarray(self.row_direction, float), np.asarray(self.column_direction, float)
        if abs(np.linalg.norm(r) - 1) > 1e-3 or abs(np.linalg.norm(c) - 1) > 1e-3 or abs(r @ c) > 1e-3:
            raise ValueError("row and column directions must be orthonormal")
        if min(self.spacing) <= 0:
            raise ValueError(f"pixel spacing must be positive, got {self.spacing}")

    @classmethod
    def from_dataset(cls, ds: Dataset | None) -> "PixelGeometry":
        """From the DICOM attributes that exist; anything missing or malformed falls back as Slicer does."""
        if ds is None:
            return cls()
        spacing = next((s for s in (_floats(ds, "PixelSpacing", 2), _floats(ds, "ImagerPixelSpacing", 2))
                        if s and min(s) > 0), (1.0, 1.0))  # zero spacing is seen in the wild
        origin = _floats(ds, "ImagePositionPatient", 3) or (0.0, 0.0, 0.0)
        iop = _floats(ds, "ImageOrientationPatient", 6)
        try:
            return cls(origin, iop[:3], iop[3:], spacing) if iop else cls(origin, spacing=spacing)  # type: ignore[arg-type]
        except ValueError:  # directions that are not orthonormal
            return cls(origin, spacing=spacing)  # type: ignore[arg-type]

    def to_lps(self, column: float, row: float) -> np.ndarray:
        """Patient position of a (fractional) pixel-centre coordinate."""
        return (np.asarray(self.origin) + column * self.spacing[1] * np.asarray(self.row_direction)
                + row * self.spacing[0] * np.asarray(self.column_direction))


def _floats(ds: Dataset, keyword: str, n: int) -> tuple[float, ...] | None:
    try:
        values = tuple(float(v) for v in ds.get(keyword) or ())
    except (TypeError, ValueError):
        return None
    return values if len(values) == n else None


def roi_markups(boxes: Sequence[dict[str, Any]], geometry: PixelGeometry) -> dict[str, Any]:
    """A ``.mrk.json`` document with one ROI per box ``{"xyxy": [x0, y0, x1, y1], "cls", ...}``.

    Boxes are half-open pixel rectangles, so a box covers pixel centres x0 .. x1-1: its edges lie half a pixel
    outside them. A site's known region (its ``source`` a known-region rule's) is an ROI of its own name, locked:
    the reviewer sees it filled, and ``boxes_from_markups`` never reads it back as a marker's box.
    """
    r, c = np.asarray(geometry.row_direction), np.asarray(geometry.column_direction)
    normal = np.cross(r, c)
    orientation = np.column_stack([r, c, normal]).ravel().tolist()
    markups = []
    for i, b in enumerate(boxes, 1):
        x0, y0, x1, y1 = (float(v) for v in b["xyxy"])
        centre = geometry.to_lps((x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5).tolist()
        size = [(x1 - x0) * geometry.spacing[1], (y1 - y0) * geometry.spacing[0], 1.0]
        cls = str(b.get("cls", "text"))
        source = str(b.get("source", ""))
        known = from_rule(source)
        name = f"{KNOWN_SOURCE}-{i}" if known else f"{cls}-{i}"
        markups.append({
            "type": "ROI", "name": name, "coordinateSystem": "LPS", "coordinateUnits": "mm", "locked": known,
            "roiType": "Box", "insideOut": False, "center": centre, "orientation": orientation, "size": size,
            "controlPoints": [{"id": "1", "label": name, "position": centre,
                               "description": f"{source}: the site's rule fills it" if known
                               else f"score {float(b.get('score', 1.0)):.3f}"}],
            "display": {"selectedColor": KNOWN_COLOUR if known else COLOURS.get(cls, [1.0, 1.0, 0.0]),
                        "fillOpacity": 0.1},
        })
    return {"@schema": MARKUPS_SCHEMA, "markups": markups}


def boxes_from_markups(doc: dict[str, Any], geometry: PixelGeometry) -> list[dict[str, Any]]:
    """The inverse of :func:`roi_markups` for ROIs edited in Slicer (class from the name before its '-'); a site's
    known regions are left out (a rule's rectangle is no marker's box to learn)."""
    r, c = np.asarray(geometry.row_direction), np.asarray(geometry.column_direction)
    origin = np.asarray(geometry.origin)
    out = []
    for m in doc.get("markups", []):
        if m.get("type") != "ROI" or str(m.get("name", "")).startswith(f"{KNOWN_SOURCE}-"):
            continue
        centre = np.asarray(m.get("center") or m["controlPoints"][0]["position"], float)
        if m.get("coordinateSystem", "LPS") == "RAS":
            centre = centre * np.array([-1.0, -1.0, 1.0])
        sx, sy = float(m["size"][0]) / geometry.spacing[1], float(m["size"][1]) / geometry.spacing[0]
        cx = float((centre - origin) @ r) / geometry.spacing[1] + 0.5
        cy = float((centre - origin) @ c) / geometry.spacing[0] + 0.5
        cls = str(m.get("name", "text")).split("-")[0]
        out.append({"xyxy": [int(round(cx - sx / 2)), int(round(cy - sy / 2)), int(round(cx + sx / 2)),
                             int(round(cy + sy / 2))], "cls": cls if cls in COLOURS else "text"})
    return out
