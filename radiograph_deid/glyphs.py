"""Recognise an isolated laterality glyph in any placement: Otsu, components, normalisation, a small classifier.

Why learned: measured here, Tesseract ``--psm 10`` with an ``LR`` whitelist read 0 of 108 rotated glyphs and 47%
of upright ones. The classifier is trained on glyphs rendered in many fonts, in all eight 90-degree placements and
mirrors (a lead marker seen from behind is mirrored), so "upright correction" is learned rather than searched.
Inference needs only numpy, OpenCV and onnxruntime; training (``train_glyph_classifier``) needs torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import cv2
import numpy as np

from .pixels.display import pixel_noise

if TYPE_CHECKING:
    from .labels import LabelledImage

GLYPH_CLASSES = ("L", "R", "other")
GLYPH_SIZE = 32
LETTER_HEIGHT = 0.4  # of the tallest letter: a lower-case letter is about half a capital, a full stop a sixth
SOLID = 0.75  # share of its bounding box from which a component is a tile, band, counter or blob, not a letter
BOLD_SOLID = 0.9  # ... unless a black-face letter: a bold R fills 0.8 of its box; a band, dot or tile more
BOLD_COUNTER = (0.01, 0.12)  # ... enclosing a small counter (a solid D-shaped blob none, a tile the letter cut out)
HOLLOW = 1.0  # holes larger than the strokes around them: a frame or ring (a letter's counter is smaller)
ITALIC_OVERLAP = 0.2  # letters of an italic word: their boxes overlap by up to this share of the narrower
SLIVER = 0.1  # of the inkiest letter's area: a piece of a tile's frame, not a letter (an I is a third of a W)
STROKE_SECOND_MIN = 8  # grey levels: a second, weaker level of strokes looked at only from this contrast up
STROKE_SCALES = (0.25, 0.4)  # of a box's shorter side: the widest stroke a stroke look keeps (a bold R's is a third)
STROKE_MIN_SIDE = 16  # pixels: a box's shorter side from which its strokes are looked for apart from their ground
MIN_EXTENT = 0.25  # a glyph shorter than this share of its box's short side is a speck or dot, not the marker
RING_ASPECT = 1.15  # a ring's box is square; a "0" is taller (glyphs.lone_ring)
TALLER = 1.15  # a marker's letter over the initials stamped beside it ("R JS"): taller than each of them by this
APART = 0.15  # and set apart from them by this share of its height at least (the "L" of "Lee" stands closer)
STOP = 0.2  # of the tallest glyph's height: a full stop is a sixth of a capital's, initials beside a marker a third
SHIPPED_GLYPH_ONNX = Path(__file__).parent / "models" / "laterality_glyph.onnx"
LEVEL_DEGREES = 10.0  # a glyph tilted more than this from a quarter turn is also read turned back (``glyph_tilt``)


@dataclass(frozen=True)
class GlyphComponent:
    """A candidate glyph in a crop: its mask (crop-shaped), the model input, and what says it may be no letter."""

    mask: np.ndarray
    tensor: np.ndarray  # (GLYPH_SIZE, GLYPH_SIZE) float32, glyph bright on dark
    solidity: float = 0.0  # share of its bounding box it fills: letters ~0.2-0.6, a tile or band ~0.8-1
    in_word: bool = False  # a glyph of like size stands closer than a word space: a letter of a word
    touches_border: bool = False  # reaches the crop's edge (chosen only when nothing inside the crop would do)
    hollowness: float = 0.0  # area of the holes it encloses over its own area: a letter's counter ~0.1-0.6, a frame >1
    extent: float = 1.0  # its longer side over the crop's shorter side: a marker fills its box, a speck does not

    @property
    def may_be_letter(self) -> bool:
        """Not a letter of a word, a solid band or tile, a frame or ring around something, or a speck."""
        return not self.in_word and self.shaped_as_letter

    @property
    def shaped_as_letter(self) -> bool:
        """Not a solid band or tile, a frame or ring around something, or a speck (whatever stands beside it)."""
        return self.solidity < SOLID and self.hollowness <= HOLLOW and self.extent >= MIN_EXTENT

    @property
    def may_be_bold_letter(self) -> bool:
        """Too solid for a letter of ordinary weight, but a black-face R may be: clear of the crop's edges, alone,
        filling less than ``BOLD_SOLID`` of its box, its counter still open and small (``BOLD_COUNTER``). An L
        never fills this much of its box; a solid D-shaped blob, which the classifier reads as R at 0.92, has no
        counter; a tile encloses the letter cut out of it, a large hole."""
        low, high = BOLD_COUNTER
        return (not self.in_word and not self.touches_border and SOLID <= self.solidity < BOLD_SOLID
                and low < self.hollowness <= high and self.extent >= MIN_EXTENT)


def _too_small(gray: np.ndarray) -> bool:
    """Whether a crop is too small to hold a glyph worth reading (fewer than 16 pixels, or under 4 on a side)."""
    return gray.size < 16 or min(gray.shape) < 4


def figure_mask(gray: np.ndarray) -> np.ndarray:
    """Otsu, with the threshold taken inside the box's inner part (a tile's edge and the margin around it would
    otherwise be the two classes), applied to the whole box; the glyph is the minority side (a letter covers
    less than its tile or background)."""
    return figure_side(gray)(gray)


def figure_side(gray: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``figure_mask``'s threshold and side as a function, to apply to pixels around the box too."""
    h, w = gray.shape
    m = int(round(min(h, w) * 0.15))
    inner = gray[m : h - m, m : w - m] if min(h, w) - 2 * m >= 6 else gray
    t, _ = cv2.threshold(inner, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if (inner > t).mean() <= 0.5:
        return lambda pixels: pixels > t
    return lambda pixels: pixels <= t


def glyph_components(gray: np.ndarray, most: int = 3, min_share: float = 0.3) -> list[GlyphComponent]:
    """Candidate glyphs, largest first: components that do not touch the crop border (frames and tile edges do)
    and do not enclose another (a box or circle drawn around the letter); after the largest, up to ``most - 1``
    more of at least ``min_share`` of its area (a broken ring's arc can outweigh the letter it circles).

    The glyph is taken to be Otsu's minority side; when that side holds only solid blobs clear of the border (the
    counter of a bold letter filling its box), the other side is searched instead. A solid piece that touches the
    border (a stroke the box cuts, a band) does not turn the search to the background around it."""
    if _too_small(gray):
        return []
    fig = figure_mask(gray)
    found = _components(fig, most, min_share)
    if found and all(c.solidity >= SOLID and not c.touches_border for c in found):  # enclosed blobs: counters
        other = _components(~fig, most, min_share)
        if any(c.solidity < SOLID for c in other):
            return other
    return found


def bold_components(gray: np.ndarray, most: int = 3) -> list[GlyphComponent]:
    """Candidate black-face letters on either side of Otsu's threshold (``GlyphComponent.may_be_bold_letter``),
    largest first on each side: ``glyph_components`` sets them aside as tiles or blobs (a bold R fills 0.8 of its
    box), and takes the counter of a bold letter for its minority side."""
    if _too_small(gray):
        return []
    fig = figure_mask(gray)
    return [c for side in (fig, ~fig) for c in _components(side, most, 0.3) if c.may_be_bold_letter]


def stroke_components(gray: np.ndarray, most: int = 3) -> tuple[list[GlyphComponent], list[GlyphComponent]]:
    """Candidate glyphs drawn as strokes thinner than ``STROKE_SCALES`` of the crop's shorter side, bright
    (top-hat) or dark (black-hat), largest first for each scale and polarity: a step edge of the anatomy or of a
    tile's shadow crossing the box, or lighting that darkens one side of it, is no stroke, and wins Otsu's split
    of the crop as it is (a dark L on a clear tile over a rib's edge; a ringed L half in shadow). Two levels:
    the strokes above Otsu's level, and the weaker ones, above Otsu's level of what lies below it (from
    ``STROKE_SECOND_MIN``), where a ring's arc over a deep shadow stands out so far that it alone passes the first
    (a thin L inside the ring, 30 grey levels over its ground, passes the second). A crop under
    ``STROKE_MIN_SIDE`` on a side holds no stroke that narrow: its looks are noise (a 12 x 8 px vendor icon's
    read L)."""
    strong: list[GlyphComponent] = []
    weaker: list[GlyphComponent] = []
    if _too_small(gray) or min(gray.shape[:2]) < STROKE_MIN_SIDE:
        return strong, weaker
    for scale in STROKE_SCALES:
        size = max(3, int(round(min(gray.shape[:2]) * scale)) | 1)
        element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        for op in (cv2.MORPH_TOPHAT, cv2.MORPH_BLACKHAT):
            strokes = cv2.morphologyEx(gray, op, element)
            t, _ = cv2.threshold(strokes, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
            strong += _components(strokes > t, most, 0.3)
            t, _ = cv2.threshold(strokes[strokes <= t].reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
            if t >= STROKE_SECOND_MIN:
                weaker += _components(strokes > t, most, 0.3)
    return strong, weaker


def _components(fig: np.ndarray, most: int, min_share: float) -> list[GlyphComponent]:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fig.astype(np.uint8), connectivity=8)
    if n < 2:
        return []
    h, w = fig.shape
    _, _, bw, bh, area = (stats[1:, i] for i in range(5))
    # clear of the border, and no speck: a fiftieth of the box, or as long as a marker is (a thin-stroked L
    # inside a ring covers less than that share of its box)
    big = (area >= 0.02 * h * w) | ((np.maximum(bw, bh) >= MIN_EXTENT * min(h, w)) & (area >= 6))
    inner = _clear_of_edges(stats[1:], (h, w)) & big
    candidates = np.flatnonzero(inner) if inner.any() else np.arange(n - 1)
    enclosing = _enclosing(stats[1:], candidates, 0.1)
    if not enclosing.all():
        candidates = candidates[~enclosing]
    order = [int(i) for i in candidates[np.argsort(-area[candidates], kind="stable")]]
    if area[order[0]] < 6:
        return []
    chosen = [order[0]] + [i for i in order[1:most] if area[i] >= max(6, min_share * area[order[0]])]
    return [GlyphComponent(labels == i + 1, normalise(labels == i + 1, stats[i + 1]),
                           float(area[i]) / max(1, int(bw[i]) * int(bh[i])), _in_word(stats[1:], i, (h, w)), not inner[i],
                           _hollowness(labels, i + 1, stats[i + 1]), max(int(bw[i]), int(bh[i])) / min(h, w))
            for i in chosen]


def _clear_of_edges(stats: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """For each component (rows of cv2 stats), whether its bounding box lies clear of the crop's edges: frames,
    tile edges, the ground and letters the box cuts reach them."""
    x, y, w, h = (stats[:, k] for k in range(4))
    rows, cols = shape[:2]
    return (x > 0) & (y > 0) & (x + w < cols) & (y + h < rows)


def _hollowness(labels: np.ndarray, label: int, stat: np.ndarray) -> float:
    """Area of the holes component ``label`` of a labelled image encloses (background not reachable from outside
    its bounding box), over its own area; looked at in its bounding box only."""
    x, y, w, h, area = (int(v) for v in stat[:5])
    inside = ~cv2.copyMakeBorder((labels[y : y + h, x : x + w] == label).astype(np.uint8), 1, 1, 1, 1,
                                 cv2.BORDER_CONSTANT, value=0).astype(bool)
    n, holes_labels = cv2.connectedComponents(inside.astype(np.uint8), connectivity=4)
    holes = inside & (holes_labels != holes_labels[0, 0])
    return float(holes.sum()) / max(1, area)


def _in_word(stats: np.ndarray, i: int, shape: tuple[int, int], gap: float = 0.35) -> bool:
    """Whether another glyph-like component (0.6 to 1.5 times the height across the line; not a speck, a thin
    frame or tile edge, or a frame around it) stands beside component ``i`` in a line, horizontal or turned 90
    degrees, apart but closer than ``gap`` times that height: the spacing of letters in a word ("RD", "12"), not
    the space before initials ("R JS"), nor a touching piece of the same broken glyph. A band at the crop's edge,
    filling 0.4 of its box or more and thinner than the glyph's stroke extent allows a letter, is no letter beside
    it: the lit side of a tile the box cuts, a ragged strip of ground along a tile's side, a wedge of ground beside
    a tile turned a little (a triangle fills half its box)."""
    x, y, w, h, area = (stats[:, k].astype(float) for k in range(5))
    edge = ~_clear_of_edges(stats, shape)
    for j in range(len(stats)):
        speck_or_frame = area[j] < 0.15 * area[i] or area[j] < 0.15 * w[j] * h[j]
        band = edge[j] and area[j] >= 0.4 * w[j] * h[j] and min(w[j], h[j]) <= 0.4 * min(w[i], h[i])
        if j == i or speck_or_frame or band or _encloses(stats, j, i):
            continue
        whole = area[j] >= 0.3 * area[i] and area[j] >= 0.2 * w[j] * h[j]  # a letter, not sparse edge noise
        for along, across in (((x, w), (y, h)), ((y, h), (x, w))):
            (p, lp), (q, lq) = along, across  # position and extent along the line, and across it
            overlap = min(q[i] + lq[i], q[j] + lq[j]) - max(q[i], q[j])
            alike = 0.6 <= lq[j] / lq[i] <= 1.5 and overlap >= 0.5 * min(lq[i], lq[j])
            distance = max(p[j] - (p[i] + lp[i]), p[i] - (p[j] + lp[j]))
            # touching or overlapping: pieces of one glyph, unless both are whole letters whose boxes only
            # slant into each other (italic "ER")
            slant = whole and -ITALIC_OVERLAP * min(lp[i], lp[j]) < distance < 0
            if alike and (0 < distance or slant) and distance <= gap * lq[i]:
                return True
    return False


def _enclosing(stats: np.ndarray, among: np.ndarray, share: float, least: float = 0) -> np.ndarray:
    """For each of the components ``among`` (indices of rows of cv2 stats), whether its bounding box holds another
    one's of ``among`` whose area is at least ``share`` of its own and ``least`` pixels: a frame or ring around
    something. Vectorised: a grainy crop has thousands of specks (pairwise in Python, one took five minutes); a
    component that fills its own box encloses nothing."""
    x, y, w, h, area = (stats[among, k].astype(np.int64) for k in range(5))
    out = np.zeros(len(among), bool)
    for n in np.flatnonzero(area < w * h):
        inside = (x[n] <= x) & (y[n] <= y) & (x + w <= x[n] + w[n]) & (y + h <= y[n] + h[n])
        inside &= area >= max(least, share * area[n])
        inside[n] = False
        out[n] = inside.any()
    return out


def _encloses(stats: np.ndarray, outer: int, inner: int) -> bool:
    """Whether component ``outer``'s bounding box contains component ``inner``'s (rows of connected-component stats)."""
    ox, oy, ow, oh = (int(v) for v in stats[outer, :4])
    ix, iy, iw, ih = (int(v) for v in stats[inner, :4])
    return ox <= ix and oy <= iy and ix + iw <= ox + ow and iy + ih <= oy + oh


@dataclass(frozen=True)
class LeadingGlyph:
    """The first glyph of a line of text, by columns of its crop, and the background after it."""

    start: int
    stop: int  # columns [start, stop)
    gap: int  # columns of background between it and the next glyph


def glyph_spans(gray: np.ndarray) -> list[list[int]]:
    """[x0, x1, y0, y1] of each glyph of a horizontal line, left to right: Otsu's minority side in columns of their
    own (a letter broken into pieces is one). Left out: specks and stops, under ``STOP`` of the tallest glyph's
    height, and pieces mostly above or below the tallest glyph's rows (ground in a corner of the box, which would
    join the last letter's columns)."""
    if _too_small(gray):
        return []
    fig = figure_mask(gray)
    _, _, stats, _ = cv2.connectedComponentsWithStats(fig.astype(np.uint8), connectivity=8)
    stats = stats[1:][stats[1:, 4] >= 6]
    if not len(stats):
        return []
    _, top, _, tallest, _ = (int(v) for v in stats[np.argmax(stats[:, 3])])
    spans: list[list[int]] = []
    for x, y, w, h, area in sorted(stats.tolist()):
        if h < STOP * tallest or min(y + h, top + tallest) - max(y, top) < h / 2:
            continue
        if spans and x < spans[-1][1]:
            last = spans[-1]
            spans[-1] = [last[0], max(last[1], x + w), min(last[2], y), max(last[3], y + h)]
        else:
            spans.append([x, x + w, y, y + h])
    return spans


def leading_glyph(gray: np.ndarray) -> LeadingGlyph | None:
    """The first (leftmost) glyph of a horizontal line when it stands apart from the glyphs after it and is
    taller than each of them: a lead marker's letter with the technician's initials stamped beside it ("R JS"),
    not the capital of a word or name ("Lee": as tall as nothing after it, but close to it). Initials a third of
    the letter's height count (though they fill less than a quarter of a loose box's height: "R HS"); full stops
    do not (``glyph_spans``)."""
    spans = glyph_spans(gray)
    if len(spans) < 2:
        return None
    first, rest = spans[0], spans[1:]
    height, gap = first[3] - first[2], rest[0][0] - first[1]
    if height < TALLER * max(s[3] - s[2] for s in rest) or gap < APART * height:
        return None
    return LeadingGlyph(first[0], first[1], gap)


def word_letter_at(gray: np.ndarray, x0: int, x1: int) -> bool:
    """Whether the glyph over columns [x0, x1) of a horizontal line's crop is a letter of a word: a glyph beside it,
    closer than ``APART`` of its height, is about as tall (not ``TALLER`` times shorter). The R of a hospital's
    "RGH"; not a lead marker's R stamped beside initials half its height, however close ("LFXJ"), nor one set a
    space apart from its initials ("R JS"). Judged on a whole line's glyph spans (``glyph_spans``), with
    ``leading_glyph``'s bounds; ``_in_word`` asks the same of one box's connected components, on its own bounds."""
    spans = glyph_spans(gray)
    centre = (x0 + x1) / 2
    at = [i for i, s in enumerate(spans) if s[0] <= centre < s[1]]
    if not at:
        return False
    mine = spans[at[0]]
    height = mine[3] - mine[2]
    beside = [spans[j] for j in (at[0] - 1, at[0] + 1) if 0 <= j < len(spans)]
    return any(max(s[0] - mine[1], mine[0] - s[1]) < APART * height and TALLER * (s[3] - s[2]) >= height
               for s in beside)


@dataclass(frozen=True)
class LettersPage:
    """A crop's letters alone, black on white with a margin, how many separate letters there are, and the extent
    of those letters (along their line, across it)."""

    image: np.ndarray
    count: int
    span: tuple[int, int]


def letters_page(gray: np.ndarray) -> LettersPage | None:
    """The crop's letters alone: what a text recognizer reads best (a tile's edge, a frame or a ring around a
    word is read as another character). Letters are components of Otsu's minority side (else of the other side)
    that neither touch the crop's edge nor enclose another component, are no outline around a hole much larger
    than their strokes (a thin D or O has up to about 1.3 times), and are not specks."""
    if _too_small(gray):
        return None
    fig = figure_mask(gray)
    found = _letters(fig) or _letters(~fig)
    if found is None:
        return None
    ink, count, span = found
    return LettersPage(ink_page(ink), count, span)


def word_inks(gray: np.ndarray) -> list[np.ndarray]:
    """Candidate pixels of the crop's letters alone (crop-shaped), the likeliest first: what a kept laterality
    word keeps, once one reads as the word (``ink_page``). On each side of Otsu's threshold, the minority side
    first: the components ``letters_page`` takes for letters (clear of the crop's edges), then the side less its
    components that enclose another of their side (a frame or ring around the word, the ground around its tile)
    and its specks, letters the box cuts included. Nothing but solid blobs clear of the crop's edges is no
    candidate: those are counters (a bold D's reads D) or a tile, and the letters are on the other side. Otsu's
    minority side kept whole was the ground around a bold "DX" and the tile under a dark "G": their letters were
    filled and the ground kept, and anything else on that side of the box would have stayed."""
    if _too_small(gray):
        return []
    fig = figure_mask(gray)
    found: list[np.ndarray] = []
    for side in (fig, ~fig):
        letters = _letters(side)
        for ink in (None if letters is None else letters[0], _word_side(side)):
            if ink is not None and not _blobs_only(ink) and not any(np.array_equal(ink, f) for f in found):
                found.append(ink)
    return found


def ink_page(ink: np.ndarray) -> np.ndarray:
    """The ink black on white, cut to its extent with a margin of a third of its height: what a text recognizer
    reads best."""
    ys, xs = np.nonzero(ink)
    m = max(2, (int(ys.max()) - int(ys.min())) // 3)
    page = np.where(ink, 0, 255).astype(np.uint8)[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return cv2.copyMakeBorder(page, m, m, m, m, cv2.BORDER_CONSTANT, value=255)


def _word_side(side: np.ndarray, speck: float = 0.02) -> np.ndarray | None:
    """One side of the threshold less its components that enclose another of their side, and less specks (under
    ``speck`` of the largest left), or None where nothing is left."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(side.astype(np.uint8), connectivity=8)
    area = stats[1:, cv2.CC_STAT_AREA]
    found = np.arange(n - 1)
    found = found[~_enclosing(stats[1:], found, 0.02, 4)]
    found = found[area[found] >= max(4, speck * area[found].max(initial=0))]
    return np.isin(labels, found + 1) if len(found) else None


def _blobs_only(ink: np.ndarray) -> bool:
    """Whether every component of the ink is a solid blob (``SOLID``) clear of the crop's edges."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    _, _, bw, bh, area = (stats[1:, i] for i in range(5))
    return bool((_clear_of_edges(stats[1:], ink.shape) & (area >= SOLID * bw * bh)).all())


def _letters(fig: np.ndarray) -> tuple[np.ndarray, int, tuple[int, int]] | None:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fig.astype(np.uint8), connectivity=8)
    _, _, bw, bh, area = (stats[1:, i] for i in range(5))
    inner = np.flatnonzero(_clear_of_edges(stats[1:], fig.shape))
    letters = inner[~_enclosing(stats[1:], inner, 0.02, 4)]  # a speck in a letter's counter does not make it a frame
    letters = [i for i in letters if _hollowness(labels, i + 1, stats[i + 1]) <= 2 * HOLLOW]  # outlines, rings
    tallest = max([int(bh[i]) for i in letters], default=0)
    letters = [i for i in letters if bh[i] >= 0.25 * tallest and area[i] >= 4]
    if not letters:
        return None
    counted = stats[1:][[i for i in letters if bh[i] >= LETTER_HEIGHT * tallest]]  # a full stop is drawn, not counted
    line = counted[_inked(counted)]
    return np.isin(labels, np.asarray(letters) + 1), _letter_count(line), _span(line)


def _extent(stats: np.ndarray) -> tuple[int, int]:
    """The width and height of the box around the components (cv2 stats rows)."""
    x, y, w, h = (stats[:, i] for i in range(4))
    return int((x + w).max() - x.min()), int((y + h).max() - y.min())


def _along_x(stats: np.ndarray) -> bool:
    """Whether the components (cv2 stats rows) stand side by side across the crop, not up it."""
    wide, tall = _extent(stats)
    return wide >= tall


def _inked(stats: np.ndarray) -> np.ndarray:
    """Which components (cv2 stats rows) hold a tenth of the inkiest one's ink or more (``SLIVER``): pieces of a
    tile's broken frame beside a blurred word ("LT" run together into one blob) stand as tall as a letter, but
    hold a twentieth of its ink."""
    return stats[:, 4] >= SLIVER * stats[:, 4].max() if len(stats) else np.ones(0, bool)


def _span(stats: np.ndarray) -> tuple[int, int]:
    """The extent (along the line, across it) of the components (cv2 stats rows)."""
    if len(stats) == 0:
        return 0, 0
    wide, tall = _extent(stats)
    return (wide, tall) if wide >= tall else (tall, wide)  # as _along_x tells the line's direction


def _letter_count(stats: np.ndarray) -> int:
    """How many letters the components (cv2 stats rows) make: a letter worn or printed thin breaks into pieces
    (a T's bar and stem), which stand over one another across the line, where letters stand side by side along
    it. A piece whose extent along the line lies mostly within a larger one's is part of that letter."""
    if len(stats) < 2:
        return len(stats)
    lo, size = (stats[:, 0], stats[:, 2]) if _along_x(stats) else (stats[:, 1], stats[:, 3])
    letters: list[int] = []
    for i in np.argsort(-size):
        inside = [j for j in letters if min(lo[i] + size[i], lo[j] + size[j]) - max(lo[i], lo[j]) >= 0.7 * size[i]]
        if not inside:
            letters.append(int(i))
    return len(letters)


def rotational_symmetry(tensor: np.ndarray) -> float:
    """How much the glyph looks the same turned by 90, 180 and 270 degrees (the least IoU of the three).

    Letters are not symmetric so (L and R in 88 renderings: at most 0.83); squares, rings, crosses and dots,
    which a classifier trained on letters can take for an R, are (about 1.0)."""
    m = tensor > 0.5
    return float(min((m & np.rot90(m, k)).sum() / max(1, (m | np.rot90(m, k)).sum()) for k in (1, 2, 3)))


def lone_ring(gray: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> bool:
    """Whether the box [x0, x1) x [y0, y1) of a grey view holds a ring alone on plain ground: an ECG electrode,
    a nipple marker, a coin, a ring drawn round a finding. The marker detector boxes them as markers at 0.7; they
    are no text, and filling one blacks out what it marks. Sampled around the box's centre (``cv2.warpPolar``)
    on the view less its smooth lighting: at one radius (a quarter to two thirds of the box) ink of one polarity
    stands on 85 % of the angles or more, and within the ring, and for 60 % of its radius beyond it, the ground
    holds no ink of either polarity (a circled letter has its letter inside; a disc's halo is a disc inside).
    A box more than 1.15 times as long as wide is no ring (a "0"), nor one the view's edge cuts."""
    w, h = x1 - x0, y1 - y0
    size = max(w, h)
    if size < 8 or size > RING_ASPECT * min(w, h):
        return False
    reach = int(np.ceil(0.9 * size))
    lit = _unlit_around(gray, x0, y0, x1, y1, reach, size / 2)
    if lit is None:
        return False
    flat, noise, centre = lit
    # rows: 180 angles; columns: the radius, a pixel each
    polar = cv2.warpPolar(flat, (reach, 180), centre, reach, cv2.WARP_POLAR_LINEAR)
    for sign in (1.0, -1.0):
        contrast = float(np.percentile(sign * polar[:, : int(0.6 * reach)], 95))
        if contrast < 4 * noise:
            continue
        ink = (sign * polar > 0.5 * contrast).mean(axis=0)  # share of the angles inked, per radius
        either = (np.abs(polar) > 0.5 * contrast).mean(axis=0)
        k = int(np.argmax(ink[: int(0.7 * reach)]))
        if ink[k] < 0.85 or not 0.25 * size <= k <= 0.65 * size:
            continue
        lo, hi = k, k
        while lo > 0 and ink[lo - 1] >= 0.4:
            lo -= 1
        while hi < reach - 1 and ink[hi + 1] >= 0.4:
            hi += 1
        inside, outside = either[: max(1, lo - 1)], either[hi + 2 : min(reach, int(1.6 * k))]
        if lo >= 2 and inside.max() <= 0.15 and (outside.size == 0 or outside.max() <= 0.3):
            return True
    return False


def lone_disc(gray: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> bool:
    """Whether the box [x0, x1) x [y0, y1) of a grey view holds one round spot alone on plain ground, brightest
    (or darkest) at its centre and fading out: a speck of dust, a small calcification. The marker detector boxes
    bright specks as markers at 0.45-0.85 (10 of 16 false boxes on a site's 40 plates); a spot is no text, and a
    fill blacks out what may be a finding. The view less its smooth lighting is sampled around the spot's peak,
    as it is and smoothed a pixel (a thin stroke's peak, or a noisy pixel's, drops; a spot's stays): each way,
    ink of one polarity stands on 85 % of the angles from the peak out to the spot's edge, and beyond its fading
    skirt, out past the box's edge, the ground holds no ink of either polarity on more than 15 % of the angles
    (a dot-matrix character's next dot, the rest of a small letter)."""
    w, h = x1 - x0, y1 - y0
    size = max(w, h)
    if size < 5 or size > 1.5 * min(w, h):
        return False
    reach = int(np.ceil(1.2 * size))
    lit = _unlit_around(gray, x0, y0, x1, y1, reach, size)
    if lit is None:
        return False
    flat, noise, _ = lit  # the spot is sampled around its own peak, not the box's centre
    smooth = cv2.GaussianBlur(flat, (0, 0), 1.0)
    return any(_spot_alone(sign * flat, reach, size, noise) and _spot_alone(sign * smooth, reach, size, noise)
               for sign in (1.0, -1.0))


def _spot_alone(flat: np.ndarray, reach: int, size: int, noise: float) -> bool:
    """``lone_disc``'s test on one polarity of one view (ink bright), centred at (``reach``, ``reach``)."""
    half = size // 2
    spot = flat[reach - half : reach + half + 1, reach - half : reach + half + 1]
    contrast = float(spot.max())
    if not contrast >= 4 * noise:
        return False
    py, px = np.unravel_index(int(np.argmax(spot)), spot.shape)
    polar = cv2.warpPolar(flat, (reach, 90), (float(reach - half + px), float(reach - half + py)), reach,
                          cv2.WARP_POLAR_LINEAR)
    ink = (polar > 0.35 * contrast).mean(axis=0)
    either = (np.abs(polar) > 0.35 * contrast).mean(axis=0)
    edge = 0
    while edge < reach - 1 and ink[edge + 1] >= 0.85:
        edge += 1
    skirt = edge + 1  # a spot off the sampling centre by a pixel fades out over a radius or two
    while skirt < min(reach, edge + 4) and either[skirt] > 0.15:
        skirt += 1
    ground = either[skirt : min(reach, max(2 * edge + 4, int(0.7 * size) + 1))]
    return edge >= 1 and skirt < edge + 4 and ground.size > 0 and float(ground.max()) <= 0.15


def _unlit_around(gray: np.ndarray, x0: int, y0: int, x1: int, y1: int, reach: int, sigma: float
                  ) -> tuple[np.ndarray, float, tuple[float, float]] | None:
    """The square crop reaching ``reach`` px around the box's centre, less its smooth lighting (a Gaussian blur of
    ``sigma``), its pixel noise, and the box's centre (x, y) in it; None where the view's edge cuts the crop
    (``lone_ring``, ``lone_disc``)."""
    ax, ay = (x0 + x1) // 2 - reach, (y0 + y1) // 2 - reach
    if ax < 0 or ay < 0 or ax + 2 * reach + 1 > gray.shape[1] or ay + 2 * reach + 1 > gray.shape[0]:
        return None
    raw = gray[ay : ay + 2 * reach + 1, ax : ax + 2 * reach + 1]
    crop = raw.astype(np.float32)
    return (crop - cv2.GaussianBlur(crop, (0, 0), sigma), pixel_noise(raw, most_rows=len(raw)) + 0.5,  # every row
            ((x0 + x1) / 2 - ax, (y0 + y1) / 2 - ay))


def dominant_component(gray: np.ndarray) -> GlyphComponent | None:
    """The largest candidate glyph (see :func:`glyph_components`), or None."""
    found = glyph_components(gray, most=1)
    return found[0] if found else None


def normalise(mask: np.ndarray, stat: np.ndarray) -> np.ndarray:
    """The component's bounding box, aspect kept, centred on a GLYPH_SIZE square."""
    x, y, w, h = (int(v) for v in stat[:4])
    crop = mask[y : y + h, x : x + w].astype(np.float32)
    s = (GLYPH_SIZE - 4) / max(w, h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.zeros((GLYPH_SIZE, GLYPH_SIZE), np.float32)
    oy, ox = (GLYPH_SIZE - nh) // 2, (GLYPH_SIZE - nw) // 2
    out[oy : oy + nh, ox : ox + nw] = small
    return out


def glyph_tilt(mask: np.ndarray) -> float:
    """How far a glyph's strokes turn from the nearest quarter turn, in degrees (-45, 45]: the peak of its edges'
    orientations, folded to a quarter turn and weighed by their strength. A letter of straight strokes (L, R, T,
    E) has its edges square to one another; the minimum-area rectangle is no guide, as an L's is as small laid
    along the line from one arm's end to the other's."""
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0)
    gx, gy = cv2.Sobel(soft, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(soft, cv2.CV_32F, 0, 1, ksize=3)
    strength = np.hypot(gx, gy)
    folded = np.degrees(np.arctan2(gy, gx)) % 90.0
    hist = np.bincount(folded.astype(np.int32).ravel() % 90, weights=strength.ravel(), minlength=90)
    hist = np.convolve(np.concatenate([hist[-3:], hist, hist[:3]]), np.ones(7) / 7, mode="same")[3:-3]
    peak = float(np.argmax(hist)) + 0.5
    return peak - 90.0 if peak > 45.0 else peak


def rotated(image: np.ndarray, degrees: float, fill: int = 0) -> np.ndarray:
    """``image`` turned by ``degrees`` about its centre on a canvas grown to hold it whole (cv2's sense: positive
    is counter-clockwise), the new corners ``fill``."""
    h, w = image.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(turn[0, 0]), abs(turn[0, 1])
    size = (int(np.ceil(w * cos + h * sin)), int(np.ceil(w * sin + h * cos)))
    turn[:, 2] += (size[0] - w) / 2, (size[1] - h) / 2
    return cv2.warpAffine(image, turn, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


def levelled(mask: np.ndarray, tilt: float) -> np.ndarray | None:
    """The glyph of ``mask`` turned back by its ``tilt`` (``glyph_tilt``), cropped to it, or None when nothing of
    it is left."""
    upright = rotated(mask.astype(np.uint8) * 255, tilt) > 127
    ys, xs = np.nonzero(upright)
    return upright[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] if len(xs) else None


def as_tensor(glyph: np.ndarray) -> np.ndarray:
    """A glyph's mask cropped to it as the classifier's input (``normalise``)."""
    return normalise(glyph, np.array([0, 0, glyph.shape[1], glyph.shape[0]]))


class GlyphClassifier:
    """Probabilities over GLYPH_CLASSES for normalised glyph tensors (ONNX, onnxruntime)."""

    def __init__(self, path: str | Path = "", threads: int = 1) -> None:
        import onnxruntime as ort

        path = Path(path).expanduser() if path else SHIPPED_GLYPH_ONNX
        if not path.is_file():
            raise FileNotFoundError(f"glyph classifier weights not found: {path} (set retention.glyph_weights)")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, tensors: Sequence[np.ndarray]) -> np.ndarray:
        if not tensors:
            return np.zeros((0, len(GLYPH_CLASSES)), np.float32)
        x = np.stack(tensors)[:, None].astype(np.float32)
        (logits,) = self.session.run(None, {self.input: x})
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


# --- training (torch; the train extra) -------------------------------------------------------------------------

OTHER_GLYPHS = "ABCDEFGHIJKMNOPQSTUVWXYZ0123456789abdefghknpqrstuvwxyz#+*?&%-/"
CUT_SHARE = 0.15  # rendered and real glyphs cut by the crop's edge (real markers at the plate edge are)


def _rendered_crop(text: str, rng: np.random.Generator) -> np.ndarray:
    """A marker crop as the detector would box it: glyph(s), maybe on a tile/frame, any placement, degraded."""
    from .marker_synth import _framed, _rotate, render_text

    height = int(rng.integers(10, 60))
    alpha = render_text(text, height, rng, bold=rng.random() < 0.6)
    alpha = _framed(alpha, ("bare", "bare", "tile", "box", "circle")[rng.integers(5)], rng)
    alpha = _rotate(alpha, rng) if rng.random() < 0.9 else alpha
    pads = [int(rng.integers(1, max(2, height // 3)))] * 4  # top, bottom, left, right
    if rng.random() < CUT_SHARE:
        alpha, side = _cut(alpha, rng)
        pads[side] = 0
    alpha = cv2.copyMakeBorder(alpha, *pads, cv2.BORDER_CONSTANT, value=0.0)
    bg = float(rng.uniform(0.1, 0.6))
    ink = float(rng.uniform(0.8, 1.0)) if rng.random() < 0.8 else float(rng.uniform(0.0, 0.1))
    img = bg * (1 - alpha) + ink * alpha
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.3, 1.2)))
    img = img + rng.normal(0, float(rng.uniform(0, 0.05)), img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _cut(img: np.ndarray, rng: np.random.Generator, most: float = 0.3) -> tuple[np.ndarray, int]:
    """The image with 8 % to ``most`` of it cut off one side (0 top, 1 bottom, 2 left, 3 right), as the plate or
    collimation edge cuts a marker placed at it; every class is cut alike, so a cut is no sign of a letter."""
    side = int(rng.integers(4))
    n = img.shape[0] if side < 2 else img.shape[1]
    k = max(1, int(n * rng.uniform(0.08, most)))
    cut = (img[k:], img[:-k], img[:, k:], img[:, :-k])[side]
    return np.ascontiguousarray(cut), side


def _jittered(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A real marker crop as another detector box and placement would give it: edges moved, turned, mirrored."""
    h, w = crop.shape
    d = lambda n: int(rng.integers(-max(1, n // 8), max(2, n // 5)))  # noqa: E731  (mostly a little larger)
    pad = max(h, w) // 4 + 2
    big = cv2.copyMakeBorder(crop, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    y0, x0 = max(0, pad - d(h)), max(0, pad - d(w))
    out = big[y0 : pad + h + d(h), x0 : pad + w + d(w)]
    k = int(rng.integers(8))
    out = np.rot90(out if k < 4 else np.fliplr(out), k % 4)
    if rng.random() < CUT_SHARE:
        out = _cut(out, rng, most=0.4)[0]  # the margin goes first: up to 0.4 of the box reaches into the glyph
    noisy = out.astype(np.float32) + rng.normal(0, float(rng.uniform(0, 8)), out.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def synth_glyph_set(n: int, seed: int, backgrounds: Sequence[np.ndarray] = (),
                    real: Sequence[tuple[np.ndarray, int]] = ()) -> tuple[np.ndarray, np.ndarray]:
    """``n`` normalised glyph tensors with labels: L, R, other glyphs/strings, background patches, and (when
    given) real marker crops with their labels, jittered (a fifth of the set)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    while len(xs) < n:
        r = rng.random()
        if real and rng.random() < 0.2:
            crop, label = real[int(rng.integers(len(real)))]
            comp = dominant_component(_jittered(crop, rng))
            if comp is not None:
                xs.append(comp.tensor)
                ys.append(label)
            continue
        if r < 0.3:
            label, text = 0, "L"
        elif r < 0.6:
            label, text = 1, "R"
        elif r < 0.9 or not backgrounds:
            k = int(rng.integers(1, 4))
            label, text = 2, "".join(OTHER_GLYPHS[i] for i in rng.integers(0, len(OTHER_GLYPHS), k))
        else:
            bg = backgrounds[int(rng.integers(len(backgrounds)))]
            s = int(rng.integers(12, 80))
            y, x = int(rng.integers(0, bg.shape[0] - s)), int(rng.integers(0, bg.shape[1] - s))
            label, crop = 2, bg[y : y + s, x : x + s]
            text = ""
        if text:
            crop = _rendered_crop(text, rng)
        comp = dominant_component(crop)
        if comp is not None:
            xs.append(comp.tensor)
            ys.append(label)
    return np.stack(xs).astype(np.float32), np.asarray(ys, np.int64)


def glyph_material(images: Sequence["LabelledImage"], root: Path) -> tuple[list[tuple[np.ndarray, int]], list[np.ndarray]]:
    """Real training material from hand-labelled images (give only the train split): crops of their markers
    (L and R as such, other text as ``other``; laterality words that are no single glyph left out) and the
    images themselves, laterality markers painted over, as background patches for ``other``."""
    from .enums import BoxClass
    from .evaluate import labelled_items
    from .pixels.display import to_gray

    crops: list[tuple[np.ndarray, int]] = []
    backgrounds = []
    for _, view, boxes in labelled_items(images, root):  # read as redact reads them, with its errors
        gray = to_gray(view)
        for b in boxes:
            x0, y0, x1, y1 = b.xyxy
            text = b.text.strip().upper()
            if b.cls is BoxClass.LATERALITY and text not in ("L", "R"):
                continue
            label = text if b.cls is BoxClass.LATERALITY else "other"
            crops.append((gray[y0:y1, x0:x1].copy(), GLYPH_CLASSES.index(label)))
        painted = gray.copy()
        for b in boxes:
            if b.cls is BoxClass.LATERALITY:
                x0, y0, x1, y1 = b.xyxy
                painted[y0:y1, x0:x1] = int(np.median(gray))
        backgrounds.append(painted)
    return crops, backgrounds


def _net():  # type: ignore[no-untyped-def]
    import torch.nn as nn

    def block(i: int, o: int) -> list:
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(*block(1, 16), *block(16, 32), *block(32, 64), nn.Flatten(),
                         nn.Linear(64 * 4 * 4, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, len(GLYPH_CLASSES)))


def train_glyph_classifier(dest: Path, n_train: int = 60000, n_val: int = 6000, epochs: int = 6, seed: int = 0,
                           backgrounds: Sequence[np.ndarray] = (), real: Sequence[tuple[np.ndarray, int]] = ()
                           ) -> dict[str, float]:
    """Train on rendered glyphs (and real train-split marker crops), export ONNX to ``dest``, and return
    accuracy per class on held-out rendered glyphs."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    x_tr, y_tr = synth_glyph_set(n_train, seed, backgrounds, real)
    x_va, y_va = synth_glyph_set(n_val, seed + 1, backgrounds)
    net = _net()
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 4e-3, total_steps=epochs * ((n_train + 255) // 256))
    xt, yt = torch.from_numpy(x_tr)[:, None], torch.from_numpy(y_tr)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(xt)).split(256):
            loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        pred = net(torch.from_numpy(x_va)[:, None]).argmax(1).numpy()
    acc = {c: float((pred[y_va == i] == i).mean()) for i, c in enumerate(GLYPH_CLASSES)}
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(net, torch.zeros(1, 1, GLYPH_SIZE, GLYPH_SIZE), str(dest), input_names=["glyph"],
                      output_names=["logits"], dynamic_axes={"glyph": {0: "n"}, "logits": {0: "n"}}, opset_version=17,
                      dynamo=False)
    return acc
