"""Find rulers burned into a radiograph: a thin straight line with evenly spaced ticks, labelled with numbers.

Why: ruler labels are one- or two-digit numbers, each alone beside a tick. Alone, a "0" or a "1" looks like
anatomy to the learned detector and is too small for the text detector (on the synthetic held-out split they were
half of all missed boxes). A ruler as a whole is unmistakable, though: no anatomy draws a thin straight line with
three or more short, thin, evenly spaced ticks standing on it. So the ruler is found by its geometry, and the band
on both sides of its line, where the labels stand, is redacted. Some rulers are ticks alone, with no line: eight
or more, their ends level, on a scale straighter than the spine's endplates or the ribs ever stand.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from .boxes import Box, joined, true_runs
from .pixels.display import pixel_noise

SOURCE = "ruler"  # Box.source of a ruler's box: a line of labels, never a laterality marker


@dataclass(frozen=True)
class RulerGeometry:
    """What counts as a ruler, in pixels of the view searched."""

    max_thickness: int = 7  # line and tick strokes thinner than this
    min_length: int = 40  # the line is at least this long
    min_ticks: int = 3  # evenly spaced ticks on one side of the line
    min_spacing: int = 4  # tick spacing
    max_tick: int = 60  # a tick is a short stroke: it ends within this many pixels of the line
    min_contrast: int = 10  # stroke brightness above (or below) its surroundings, display levels ...
    noise_contrast: float = 3.5  # ... and this many times the image's pixel noise
    min_tick: int = 4  # tick length
    min_cover: float = 0.7  # the ticks span this much of the line
    spacing_tolerance: float = 0.05  # drawn ticks: their spacing varies by at most this fraction (and a pixel)
    length_tolerance: float = 0.1  # ... and the major ticks' length by this fraction (and a pixel)
    salience: float = 2.25  # the line stands this many times the local texture's spread above the band's median
    evenness: float = 0.5  # ... and its values spread by at most this fraction of that contrast
    band: float = 3.5  # labels stand within this many tick lengths of the line (both sides are filled)
    lineless_ticks: int = 8  # ticks drawn with no line: at least this many, their ends level ...
    lineless_tick: int = 6  # ... each at least this long ...
    lineless_cover: float = 0.6  # ... standing at this share or more of the places the spacing gives

    @property
    def stroke_kernel(self) -> int:
        """The top-hat's reach across a stroke: odd, so that the kernel is centred, and beyond ``max_thickness``."""
        return (self.max_thickness | 1) + 2


def find_rulers(gray: np.ndarray, geometry: RulerGeometry = RulerGeometry(), lineless: bool = True) -> list[Box]:
    """Boxes over each ruler's line, ticks and label band, horizontal and vertical, bright or dark on the image;
    with ``lineless``, also over rows of ticks drawn with no line."""
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError("find_rulers expects a 2-D uint8 display image")
    floor = int(np.ceil(geometry.noise_contrast * pixel_noise(gray)))
    g = replace(geometry, min_contrast=max(geometry.min_contrast, floor))
    lined: list[Box] = []
    ticks: list[Box] = []
    for polarity in (gray, 255 - gray):  # bright strokes and dark
        # strokes thin along the rows (ticks of a ruler along them) and thin along the columns (its line); the
        # view turned a quarter has the same two, exchanged and transposed: each top-hat is taken once
        thin_x = _strokes(polarity, (g.stroke_kernel, 1), g.min_contrast)
        thin_y = _strokes(polarity, (1, g.stroke_kernel), g.min_contrast)
        for view, upright, across, turned in ((polarity, thin_x, thin_y, False),
                                              (polarity.T, thin_y.T, thin_x.T, True)):
            lined += _transposed(_horizontal(view, upright, across, g), turned)
            if lineless:
                ticks += _transposed(_lineless(upright, g), turned)
    # the ticks of a ruler found with its line are not found again
    ticks = [b for b in ticks if not any(2 * f.intersection(b) > b.width * b.height for f in lined)]
    return lined + joined(ticks)  # a ruler tilted by a fraction of a degree: its tick ends level piecewise


def _transposed(boxes: list[Box], turned: bool) -> list[Box]:
    """Boxes found on a view searched transposed (``turned``) put back into the image's coordinates."""
    return [b.transposed() for b in boxes] if turned else boxes


def find_rulers_any_size(gray: np.ndarray, geometry: RulerGeometry = RulerGeometry(), coarse_from: int = 2048
                         ) -> list[Box]:
    """``find_rulers`` on the view and, when its long side exceeds ``coarse_from``, on the view halved as well:
    the geometry's stroke limits are in pixels, and a ruler drawn for a 3000-px image can be thicker than they
    allow (a 9-px line on a synthetic 3047-px image was missed). The same ruler found at both scales gives two
    boxes of like extent; the detector's union merges them. Rows of ticks with no line are searched on the halved
    view alone there (their ticks are then 12 px long or more), a quarter of the pixels."""
    large = max(gray.shape) > coarse_from
    found = find_rulers(gray, geometry, lineless=not large)
    if large:
        half = cv2.resize(gray, (gray.shape[1] // 2, gray.shape[0] // 2), interpolation=cv2.INTER_AREA)
        rows, cols = gray.shape
        found += [replace(b, x0=2 * b.x0, y0=2 * b.y0, x1=min(cols, 2 * b.x1), y1=min(rows, 2 * b.y1))
                  for b in find_rulers(half, geometry)]
    return found


def _strokes(gray: np.ndarray, kernel: tuple[int, int], min_contrast: int) -> np.ndarray:
    """Pixels brighter than their surroundings along ``kernel`` (a white top-hat with a one-pixel-wide kernel)."""
    k = cv2.getStructuringElement(cv2.MORPH_RECT, kernel)
    return cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, k) >= min_contrast


def _horizontal(gray: np.ndarray, upright: np.ndarray, across: np.ndarray, g: RulerGeometry) -> list[Box]:
    """Rulers whose line runs along the rows of ``gray`` (bright strokes); ``upright`` and ``across``: its strokes
    thin along the rows, where the ticks are, and thin along the columns, where the line is (``_strokes`` with a
    kernel ``stroke_kernel`` wide, and as tall)."""
    k = g.max_thickness | 1
    # the line bridged where a tick crosses it (there the stroke is not thin in y), then only long runs kept
    across = cv2.morphologyEx(np.ascontiguousarray(across, dtype=np.uint8), cv2.MORPH_CLOSE,
                              cv2.getStructuringElement(cv2.MORPH_RECT, (g.stroke_kernel, 1)))
    lines = cv2.morphologyEx(across, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (g.min_length, 1)))
    contours, _ = cv2.findContours(lines, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    # the ticks are read off the whole view's top-hat (a row's top-hat does not depend on the rows around it; each
    # line's columns lie a kernel's reach inside what a strip of its own would hold): a 4300-px phantom's ribs gave
    # 130 000 candidate lines, each with a top-hat of its own, 10 s
    out = []
    rects = np.array([cv2.boundingRect(c) for c in contours], int).reshape(-1, 4)
    rects = rects[np.argsort(rects[:, 1], kind="stable")]
    for x, y, w, h in rects.tolist():
        if w < g.min_length or h > k or h > cv2.countNonZero(lines[y : y + h, x : x + w]) / w + 2:
            continue  # not straight along the rows: a straight line's box is as tall as the line is thick
        if _among_parallels((x, y, w, h), rects, g.max_tick):
            continue
        for side in (-1, 1):
            ruler = _ticked(upright, x, y, w, h, side, g)
            if ruler is not None and _inked(gray, lines[y : y + h, x : x + w] > 0, x, y, ruler, g):
                out.append(ruler)
    return out


def _among_parallels(line: tuple[int, int, int, int], rects: np.ndarray, reach: int, most: int = 1) -> bool:
    """Whether more than ``most`` other lines run beside ``line`` (x, y, w, h; ``rects``: every line's, sorted by
    y), each within ``reach`` rows of it and alongside half its length or more: a ruler's line stands alone, or
    with one more (a ruler drawn as a frame); anti-scatter grid lines and a photographed screen's moiré are rows
    of stripes, and the pieces of an edge they cut stand on one of them like ticks (a false ruler over the lung)."""
    x, y, w, _ = line
    near = rects[np.searchsorted(rects[:, 1], y - reach) : np.searchsorted(rects[:, 1], y + reach, side="right")]
    along = np.minimum(x + w, near[:, 0] + near[:, 2]) - np.maximum(x, near[:, 0])
    return int(np.count_nonzero((near[:, 1] != y) & (along >= 0.5 * w))) > most


def _lineless(upright: np.ndarray, g: RulerGeometry) -> list[Box]:
    """Rulers drawn as ticks alone along the rows (a COVID-19 collection film has 34 dark ticks down its edge and
    no line): at least ``lineless_ticks`` short thin upright strokes whose tops (or bottoms) stand level within a
    pixel, evenly spaced, a tick missing here and there. Letters' stems stand level too, but not eight of them
    evenly spaced, apart from a line of text, which is redacted either way. ``upright``: the view's strokes thin
    along its rows (as for ``_horizontal``)."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(np.ascontiguousarray(upright, dtype=np.uint8), connectivity=8)
    x, y, w, h = (stats[1:, i] for i in range(4))
    ticks = np.flatnonzero((w <= g.max_thickness) & (h >= np.maximum(g.lineless_tick, 2 * w)) & (h <= g.max_tick))
    centers = x[ticks] + w[ticks] / 2
    out: list[Box] = []
    free = np.ones(len(ticks), bool)
    for ends in (y[ticks], y[ticks] + h[ticks]):
        for level in np.unique(ends):
            row = np.flatnonzero(free & (np.abs(ends - level) <= 1))
            if len(row) < g.lineless_ticks:
                continue
            for chain in _even_chains(centers[row], h[ticks[row]], w[ticks[row]], g):
                free[row[chain]] = False
                members = ticks[_followed(list(row[chain]), centers, ends, free, g)]
                out.append(_lineless_box(upright.shape, x[members], y[members], w[members], h[members], g))
    return out


def _followed(chain: list[int], centers: np.ndarray, ends: np.ndarray, free: np.ndarray, g: RulerGeometry
              ) -> list[int]:
    """The chain grown a tick at a time past either end, each new tick at the next place on the scale (or the
    one after) with its end within a pixel of its neighbour's: a ruler tilted by a tenth of a degree has its
    tick ends drift a pixel every few ticks, past the one-pixel level that found the chain."""
    chain = sorted(chain, key=lambda i: centers[i])
    spacing = float(np.median(np.diff(centers[chain])))
    for step in (1, -1):
        while True:
            last = chain[-1] if step > 0 else chain[0]
            near = free & (np.abs(ends - ends[last]) <= 1)
            for places in (1, 2):
                miss = np.abs(centers - centers[last] - step * places * spacing)
                fits = np.flatnonzero(near & (miss <= g.spacing_tolerance * spacing + 1))
                if len(fits):
                    tick = int(fits[np.argmin(miss[fits])])
                    free[tick] = False
                    chain = chain + [tick] if step > 0 else [tick] + chain
                    break
            else:
                break
    return chain


def _even_chains(centers: np.ndarray, lengths: np.ndarray, widths: np.ndarray, g: RulerGeometry
                 ) -> list[np.ndarray]:
    """Indices of runs of ticks drawn to a ruler's plan: centres on a straight scale of one spacing (each within
    the tolerance of its place on the fitted scale, a place left empty here and there) and most of one length.
    The spine's endplates and the ribs stand about as evenly, but they stray a sixth of a spacing or more; the
    stems of a word's letters stand closer than three stroke widths apart."""
    order = np.argsort(centers)
    c = centers[order]
    gaps = np.diff(c)
    spacing = float(np.median(gaps)) if len(gaps) else 0.0
    if spacing < max(g.min_spacing, 3 * float(np.median(widths))):
        return []
    chains = []
    for run in np.split(np.arange(len(c)), np.flatnonzero(gaps > 2.5 * spacing) + 1):
        if len(run) < g.lineless_ticks:
            continue
        place = np.round((c[run] - c[run[0]]) / spacing)
        if len(run) < g.lineless_cover * (place[-1] + 1):
            continue
        slope, offset = np.polyfit(place, c[run], 1)
        stray = np.abs(c[run] - (slope * place + offset))
        length = lengths[order[run]]
        usual = np.abs(length - np.median(length)) <= g.length_tolerance * np.median(length) + 1
        if stray.max() <= g.spacing_tolerance * slope + 1 and usual.mean() >= 0.8:
            chains.append(order[run])
    return chains


def _lineless_box(shape: tuple[int, ...], x: np.ndarray, y: np.ndarray, w: np.ndarray, h: np.ndarray,
                  g: RulerGeometry) -> Box:
    """The ticks' span and, on both sides, the band where a ruler's labels stand."""
    band = int(g.band * float(np.median(h)))
    spacing = float(np.median(np.diff(np.sort(x + w / 2))))
    x0, x1 = max(0, int(x.min() - spacing / 2)), min(shape[1], int((x + w).max() + spacing / 2) + 1)
    y0, y1 = max(0, int(y.min()) - band), min(shape[0], int((y + h).max()) + band)
    return Box(y0=y0, x0=x0, y1=y1, x1=x1, score=1.0, source=SOURCE)


def _ticked(upright: np.ndarray, x: int, y: int, w: int, h: int, side: int, g: RulerGeometry) -> Box | None:
    """The ruler's box if evenly spaced ticks stand on the line [x, x+w) x [y, y+h) on ``side`` (-1 above);
    ``upright``: the view's strokes thin along its rows (``_strokes`` with a kernel ``stroke_kernel`` wide)."""
    rows, cols = upright.shape
    reach = g.max_thickness + 2  # an end tick crosses the line's last columns, where the line is not found
    ya, yb = (max(0, y - g.max_tick - 1), y) if side < 0 else (y + h, min(rows, y + h + g.max_tick + 1))
    if yb - ya < 3:
        return None
    lo, hi = max(0, x - reach), min(cols, x + w + reach)
    strip = upright[ya:yb, lo:hi][::-1] if side < 0 else upright[ya:yb, lo:hi]
    x, w = lo, hi - lo
    run = np.where(strip.all(axis=0), len(strip), strip.argmin(axis=0))  # each column's stroke length out from the line
    tick = (run >= g.min_tick) & (run <= g.max_tick)  # a stroke that ends: a grid line or an edge runs on
    if np.count_nonzero(tick) < g.min_ticks:
        return None
    centers, lengths = _tick_runs(tick, run, g.max_thickness)
    found = _even_ticks(centers, lengths, g)
    if found is None:
        return None
    centers, spacing, length = found
    if centers[-1] - centers[0] < g.min_cover * (w - 2 * reach):
        return None
    band = int(g.band * length)
    x0, x1 = x + int(centers[0] - spacing / 2), x + int(centers[-1] + spacing / 2) + 1
    x0, x1 = max(0, x0), min(cols, x1)
    y0, y1 = max(0, y - band), min(rows, y + h + band)
    return Box(y0=y0, x0=x0, y1=y1, x1=x1, score=1.0, source=SOURCE) if x1 > x0 and y1 > y0 else None


def _inked(gray: np.ndarray, line: np.ndarray, x: int, y: int, ruler: Box, g: RulerGeometry) -> bool:
    """Whether the line is drawn in ink: one even value standing well clear of the texture around it. Vessel
    and rib edges in the lung can line up like a ruler, but they are faint against the lung's own texture and
    their brightness wanders."""
    values = gray[y : y + line.shape[0], x : x + line.shape[1]][line].astype(np.float32)
    band = gray[ruler.y0 : ruler.y1, ruler.x0 : ruler.x1].astype(np.float32)
    k = 3 * g.max_thickness
    texture = band - cv2.blur(band, (k, k))
    spread = 1.4826 * float(np.median(np.abs(texture - np.median(texture)))) + 1.0
    contrast = float(np.median(values) - np.median(band))
    return contrast >= g.salience * spread and float(np.std(values)) <= g.evenness * contrast


def _tick_runs(tick: np.ndarray, run: np.ndarray, max_width: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres and lengths of the thin groups of tick columns."""
    centers, lengths = [], []
    for a, b in true_runs(tick):
        if b - a <= max_width:
            centers.append((a + b - 1) / 2)
            lengths.append(int(run[a:b].max()))
    return np.asarray(centers), np.asarray(lengths)


def _even_ticks(centers: np.ndarray, lengths: np.ndarray, g: RulerGeometry) -> tuple[np.ndarray, float, int] | None:
    """The longest ticks of about equal length (a ruler's major ticks; minor ones are shorter), if at least
    ``min_ticks`` of them stand evenly spaced with none missing: (their centres, the spacing, their length)."""
    for longest in sorted(set(lengths.tolist()), reverse=True):
        major = (lengths >= (1 - g.length_tolerance) * longest - 1) & (lengths <= longest)
        if major.sum() < g.min_ticks:
            continue
        c = centers[major]
        gaps = np.diff(c)
        spacing = float(np.median(gaps))
        if spacing >= g.min_spacing and np.all(np.abs(gaps - spacing) <= g.spacing_tolerance * spacing + 1):
            return c, spacing, int(longest)
    return None

