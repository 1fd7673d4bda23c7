"""Boxes in original pixel coordinates, shared by every stage."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from .enums import BoxClass


@dataclass(frozen=True)
class Box:
    """A half-open pixel rectangle [x0, x1) x [y0, y1) in original image coordinates.

    ``text`` is what a recognizer read; it may be PHI, so it is never logged or recorded (kept markers excepted).
    """

    x0: int
    y0: int
    x1: int
    y1: int
    score: float = 1.0
    label: BoxClass = BoxClass.OTHER_MARKER
    text: str = ""
    source: str = ""  # the detector that found it; "a+b" when several did (detector.merge_duplicates)

    def __post_init__(self) -> None:
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise ValueError(f"empty box {self.as_list()}")

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def as_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]

    def expanded(self, margin: int, shape: tuple[int, int]) -> "Box":
        """Grown by ``margin`` pixels on every side, clipped to an image of ``shape`` (rows, cols)."""
        h, w = shape
        return replace(self, x0=max(0, self.x0 - margin), y0=max(0, self.y0 - margin),
                       x1=min(w, self.x1 + margin), y1=min(h, self.y1 + margin))

    def intersection(self, other: "Box") -> int:
        """Pixels the two rectangles share."""
        common = self.common(other)
        return 0 if common is None else common.width * common.height

    def common(self, other: "Box") -> "Box | None":
        """The rectangle the two share (this box's fields otherwise), or None when they do not overlap."""
        x0, y0, x1, y1 = max(self.x0, other.x0), max(self.y0, other.y0), min(self.x1, other.x1), min(self.y1, other.y1)
        return replace(self, x0=x0, y0=y0, x1=x1, y1=y1) if x1 > x0 and y1 > y0 else None

    def spanning(self, other: "Box") -> "Box":
        """The smallest rectangle holding both (this box's fields otherwise)."""
        return replace(self, x0=min(self.x0, other.x0), y0=min(self.y0, other.y0), x1=max(self.x1, other.x1),
                       y1=max(self.y1, other.y1))

    def found_by(self, detector: str) -> bool:
        """Whether ``detector`` is among the detectors that found this box."""
        return detector in self.source.split("+")

    def contains(self, other: "Box") -> bool:
        """Whether ``other`` lies wholly inside this rectangle."""
        return self.x0 <= other.x0 and self.y0 <= other.y0 and other.x1 <= self.x1 and other.y1 <= self.y1

    def within(self, whole: "Box") -> tuple[slice, slice]:
        """The rows and columns of this rectangle in an array laid over ``whole``."""
        return slice(self.y0 - whole.y0, self.y1 - whole.y0), slice(self.x0 - whole.x0, self.x1 - whole.x0)

    def around(self, mask: np.ndarray) -> "Box":
        """The rectangle around ``mask``'s true pixels (a mask laid over this box, one pixel at least true), this
        box's fields otherwise: a kept glyph's extent in the image."""
        ys, xs = np.nonzero(mask)
        return replace(self, x0=self.x0 + int(xs.min()), y0=self.y0 + int(ys.min()), x1=self.x0 + int(xs.max()) + 1,
                       y1=self.y0 + int(ys.max()) + 1)

    def transposed(self) -> "Box":
        """This box with rows and columns exchanged (this box's fields otherwise): what a box found on a view
        searched transposed (a line or ruler running up the image) is in the image, and back again."""
        return replace(self, x0=self.y0, y0=self.x0, x1=self.y1, y1=self.x1)

    def gap(self, other: "Box") -> int:
        """Chebyshev distance in pixels between the two rectangles (0 when they touch or overlap)."""
        dx = max(other.x0 - self.x1, self.x0 - other.x1, 0)
        dy = max(other.y0 - self.y1, self.y0 - other.y1, 0)
        return max(dx, dy)


def iou(a: Sequence[int], b: Sequence[int]) -> float:
    """Intersection over union of two [x0, y0, x1, y1] rectangles."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def joined(boxes: Sequence[Box]) -> list[Box]:
    """The boxes with every overlapping pair joined into the box spanning both, until none overlaps: one thing
    found as several overlapping pieces (a slightly tilted ruler's level runs, an icon cut at two levels)."""
    out: list[Box] = []
    for box in boxes:
        while (other := next((o for o in out if o.intersection(box) > 0), None)) is not None:
            out.remove(other)
            box = box.spanning(other)
        out.append(box)
    return out


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in a 1-D mask: the rows of a text line, the columns of a ruler's tick."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.asarray(mask, bool).astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]
