"""Dot-matrix imprints: text printed as dots of one size on a lattice.

Sparse dot-matrix names and codes ("Kowalski, Peter", "TM", "PA") read as nothing to the text recognizer, even
with their dots joined into strokes (``detector.stroke_variants``): the joined strokes are not the letters' shapes.
Their dots are what tells them: a dozen or more, of one size, each nearest a neighbour at one pitch along one or
two directions (a lattice, upright or slanted). Anatomy, noise and hardware give spots of every size at every
spacing and angle: of the 255 boxes the marker detector doubted on the 261 real images and read as nothing,
none passed.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import cKDTree

MIN_DOTS = 12  # dots in a box: a short word of 5x7 dots has well over this; a speckled rib rarely reaches it ...
LATTICE = 0.7  # ... with this share of them nearest a neighbour along one of two directions (within ``ANGLE``) ...
ANGLE = 10.0  # degrees
ON_PITCH = 0.7  # ... this share of them at one pitch: within ``PITCH`` of the median nearest-neighbour distance
PITCH = 0.25  # (of spots strewn at random, 0.4 are) ...
SIZE_SPREAD = 1.0  # ... and of one size (interquartile range of the dots' areas over their median)
CONTRAST = 3.0  # a dot stands this many robust standard deviations above (or below) its surroundings


def holds_dot_matrix(gray: np.ndarray) -> bool:
    """Whether the grey crop holds a dot-matrix imprint (bright dots or dark), as the module says."""
    return any(_imprint(centres, areas) for centres, areas in (_dots(gray, 1), _dots(gray, -1)))


def _dots(gray: np.ndarray, sign: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres (N, 2) and areas (N,) of the small spots of one polarity that stand out of the crop's local ground
    (a median as wide as a third of the crop: a dot is far smaller than that, a letter's stroke of dots too)."""
    h, w = gray.shape[:2]
    k = min(255, max(5, (min(h, w) // 3) | 1))
    detail = sign * (gray.astype(np.float32) - cv2.medianBlur(gray, k).astype(np.float32))
    spread = 1.4826 * float(np.median(np.abs(detail - np.median(detail)))) + 1e-3
    _, _, stats, centres = cv2.connectedComponentsWithStats((detail > CONTRAST * spread).astype(np.uint8),
                                                            connectivity=8)
    most = max(2, h // 5)
    small = (stats[1:, 4] >= 2) & (stats[1:, 2] <= most) & (stats[1:, 3] <= most)
    return centres[1:][small], stats[1:, 4][small].astype(np.float64)


def _imprint(centres: np.ndarray, areas: np.ndarray) -> bool:
    if len(centres) < MIN_DOTS:
        return False
    q1, q3 = np.percentile(areas, [25, 75])
    if (q3 - q1) > SIZE_SPREAD * np.median(areas):
        return False
    nearest, neighbour = _nearest(centres)
    pitch = np.median(nearest)
    if (np.abs(nearest - pitch) <= PITCH * pitch).mean() < ON_PITCH:
        return False
    step = centres[neighbour] - centres
    return _lattice_share(np.degrees(np.arctan2(step[:, 1], step[:, 0])) % 180) >= LATTICE


def _nearest(centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each dot's distance to its nearest other dot, and that dot's index (the lowest on a tie). A tree, not a
    matrix of every pair: a doubted box over grainy anatomy can hold thousands of spots."""
    n = len(centres)
    k = min(n, 16)
    while True:
        dist, idx = cKDTree(centres).query(centres, k=k)
        dist = np.where(idx == np.arange(n)[:, None], np.inf, dist)
        nearest = dist.min(axis=1)
        tied = dist == nearest[:, None]
        if k == n or not tied[:, -1].any():  # every tie at the nearest distance is among the k found
            return nearest, np.where(tied, idx, n).min(axis=1)
        k = min(n, 4 * k)


def _lattice_share(angles: np.ndarray) -> float:
    """The share of directions (degrees, modulo 180) within ``ANGLE`` of the two most common ones."""
    covered = np.zeros(len(angles), bool)
    candidates = np.arange(0.0, 180.0, 2.0)
    for _ in range(2):
        near = np.abs((angles[None] - candidates[:, None] + 90) % 180 - 90) <= ANGLE
        best = int(np.argmax((near & ~covered).sum(axis=1)))
        covered |= near[best]
    return float(covered.mean())
