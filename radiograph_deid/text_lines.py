"""Complete a line of text that a detector boxed only in part.

Why: a box that stops a few characters short of a line's end leaves the last digits of an ID or a date readable
(5 of the 49 misses on the synthetic held-out split were such partial lines). Burned-in text is thin strokes on a
smooth background, so the line is followed along its long axis while strokes continue in the box's rows, across
word spaces but not across a gap wider than the line is tall; a column whose strokes also run above and below
the line is something crossing it (a rib edge, a wire), not the line's next character. A box the detector
doubted on a redacted box's line is that line's text too (``bridged_doubts``): dot-matrix characters have no
strokes to follow.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import cv2
import numpy as np

from .boxes import Box, true_runs


def stroke_strength(gray: np.ndarray, width: int) -> np.ndarray:
    """How much each pixel stands out as part of a bright or dark stroke narrower than ``width`` (white and black
    top-hat): thin text responds, smooth anatomy and wide structures do not."""
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (width | 1, width | 1))
    bright = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, k)
    dark = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, k)
    return np.maximum(bright, dark)


def _stroke_threshold(ink: np.ndarray, min_contrast: int) -> float:
    """The stroke strength (``stroke_strength``) from which a pixel is one of the strokes of the text in ``ink``,
    the box's own: half its strongest (97th percentile), and never under ``min_contrast``."""
    return max(float(min_contrast), 0.5 * float(np.percentile(ink, 97)))


def upright_strokes(crop: np.ndarray) -> np.ndarray:
    """How strongly each pixel changes along the row: the upright strokes of letters."""
    return np.abs(cv2.Sobel(crop.astype(np.float32), cv2.CV_32F, 1, 0, ksize=3))


def busy_rows(crop: np.ndarray) -> np.ndarray:
    """Per row of a grey crop, how many strong upright strokes cross it (at half the crop's strongest, never under
    20): a text line's rows are busy, the rows between lines and a box's margin are not."""
    strokes = upright_strokes(crop)
    return (strokes > max(20.0, 0.5 * float(np.percentile(strokes, 97)))).sum(axis=1)


def text_rows(crop: np.ndarray, most: int = 8) -> list[tuple[int, int]]:
    """The (top, bottom) rows of each line of text in a grey crop holding two to ``most`` of them, else []: a
    viewer's overlay stacks four lines in a corner, and a line recognizer reads such a block as nothing. A line is
    a run of rows, at least a twelfth of the crop tall, crossed by at least a quarter as many strong horizontal
    changes (letters' upright strokes) as the busiest row; between lines only an edge or two crosses a row. The
    lines of a block are of one font: no line half again as tall as another (rows found on anatomy are not)."""
    h = crop.shape[0]
    if h < 16:
        return []
    busy = busy_rows(crop)
    if busy.max() == 0:
        return []
    runs = [(a, b) for a, b in true_runs(busy >= 0.25 * busy.max()) if b - a >= max(4, h // 12)]
    heights = [b - a for a, b in runs]
    return runs if 2 <= len(runs) <= most and max(heights) <= 1.5 * min(heights) else []


def spanning_unread(line: Box, box: Box, unread: Sequence[Box], share: float = 0.7, most: float = 6.0) -> Box:
    """``line`` spanning each text region the OCR detector proposed around ``box`` (holding ``share`` of it, at
    most ``most`` times its area) but could not read: the marker detector boxed the R of a mirrored "ER-2" alone,
    too square a box to follow along its line, and DBNet's region, read "-3", held the whole line."""
    area = box.width * box.height
    for region in unread:
        if region.intersection(box) >= share * area and region.width * region.height <= most * area:
            line = line.spanning(region)
    return line


def continued(gray: np.ndarray, box: Box, max_gap: float = 1.5, min_contrast: int = 12, min_aspect: float = 1.5
              ) -> Box:
    """``box`` grown along its long axis to the ends of the text line it lies on (at most its own length, or
    four line heights, on each side); unchanged where no strokes continue, and for a box under ``min_aspect``
    times as long as it is tall: one character or a marker tile, whose "line" is whatever edge runs through it
    (a redacted tile's fill ran 350 px down a rib)."""
    if not _is_line(box, min_aspect):
        return box
    (x0, x1), turned = _laid_along_rows(gray, box, lambda *frame: _along(*frame, max_gap, min_contrast))
    return replace(box, y0=x0, y1=x1) if turned else replace(box, x0=x0, x1=x1)


def _is_line(box: Box, min_aspect: float) -> bool:
    return max(box.width, box.height) >= min_aspect * min(box.width, box.height)


def _laid_along_rows(gray: np.ndarray, box: Box, measure: Callable[..., tuple[int, int]]
                     ) -> tuple[tuple[int, int], bool]:
    """``measure(gray, x0, y0, x1, y1)`` with the box's line running along the rows (the image transposed for a
    line running up it), and whether it was transposed."""
    if box.height > box.width:
        return measure(gray.T, box.y0, box.x0, box.y1, box.x1), True
    return measure(gray, box.x0, box.y0, box.x1, box.y1), False


def _along(gray: np.ndarray, x0: int, y0: int, x1: int, y1: int, max_gap: float, min_contrast: int) -> tuple[int, int]:
    """The horizontal case: new (x0, x1) for the box [x0, x1) x [y0, y1). Columns are judged in steps of a
    quarter line height: a step continues the line when its strokes are at least a third as dense as the box's
    and do not run as much above and below the line."""
    cols = gray.shape[1]
    h = y1 - y0
    reach = max(x1 - x0, 4 * h)
    lo, hi = max(0, x0 - reach), min(cols, x1 + reach)
    on_line, off_line = _strokes_on_band(gray, lo, y0, hi, y1,
                                         lambda line: _stroke_threshold(line[:, x0 - lo : x1 - lo], min_contrast))
    density = on_line[x0 - lo : x1 - lo].mean()
    if density == 0:
        return x0, x1
    step = max(2, h // 4)
    gap = max(1, int(max_gap * h / step))

    def text(a: int, b: int) -> bool:
        on, off = on_line[a - lo : b - lo].mean(), off_line[a - lo : b - lo].mean()
        return on >= density / 3 and off <= on / 2

    left = _walk([(a, a + step) for a in range(x0 - step, lo - 1, -step)], text, gap, x0, lambda a, b: a)
    right = _walk([(b - step, b) for b in range(x1 + step, hi + 1, step)], text, gap, x1, lambda a, b: b)
    return left, right


def _strokes_on_band(gray: np.ndarray, x0: int, y0: int, x1: int, y1: int,
                     threshold_of: Callable[[np.ndarray], float]) -> tuple[np.ndarray, np.ndarray]:
    """Per column of [x0, x1): how many pixels of the band [y0, y1) are strokes (``stroke_strength`` over
    ``threshold_of`` the band's strengths), and how many of the rows half the band's height above and below it,
    scaled to the band's height: a line's strokes lie on its band, an edge crossing it runs above and below too."""
    rows = gray.shape[0]
    h = y1 - y0
    pad = max(2, h // 2)
    ya, yb = max(0, y0 - pad), min(rows, y1 + pad)
    ink = stroke_strength(np.ascontiguousarray(gray[ya:yb, x0:x1]), max(3, h // 2))
    line = ink[y0 - ya : y1 - ya]
    threshold = threshold_of(line)
    on_line = (line > threshold).sum(axis=0).astype(float)
    off_line = ((ink[: y0 - ya] > threshold).sum(axis=0) + (ink[y1 - ya :] > threshold).sum(axis=0)) * h / max(1, 2 * pad)
    return on_line, off_line


def _walk(steps: list[tuple[int, int]], text, gap: int, start: int, edge) -> int:  # type: ignore[no-untyped-def]
    """The outer edge of the last text step before more than ``gap`` steps without text."""
    end, run = start, 0
    for a, b in steps:
        if text(a, b):
            end, run = edge(a, b), 0
        else:
            run += 1
            if run > gap:
                break
    return end


def on_line(box: Box, line: Box, max_gap: float = 1.5, least_across: float = 0.4) -> Box | None:
    """``box`` bridged to ``line`` on ``line``'s band, if it lies on that text line: most of it within the band,
    from ``least_across`` of the band's height across (not a speck) to half again its height, and at most
    ``max_gap`` band heights from it, mostly beside it (a line grows at its ends: a box over it, or around it,
    is something else); else None. A line runs across the image unless it stands upright (half again as tall as
    wide): a line's first character starts no line down the image (an electrode's snap, boxed, drew a doubt on
    the lead below it into a fill three times its height)."""
    turned = line.height > 1.5 * line.width
    (a0, a1, b0, b1), (l0, l1, m0, m1) = (((box.x0, box.x1, box.y0, box.y1), (line.x0, line.x1, line.y0, line.y1))
                                          if turned else ((box.y0, box.y1, box.x0, box.x1),
                                                          (line.y0, line.y1, line.x0, line.x1)))
    across, height = a1 - a0, l1 - l0
    inside = min(a1, l1) - max(a0, l0)
    gap = max(b0 - m1, m0 - b1, 0)
    beside = min(b1, m1) - max(b0, m0) <= 0.5 * (b1 - b0) and not (b0 < m0 and b1 > m1)
    if not (inside >= 0.5 * across and least_across * height <= across <= 1.5 * height and gap <= max_gap * height
            and beside):
        return None
    bridged = line.spanning(box)  # the stretch between them holds the line's text too
    return replace(bridged, x0=line.x0, x1=line.x1) if turned else replace(bridged, y0=line.y0, y1=line.y1)


def bridged_doubts(doubts: Sequence[Box], lines: Sequence[Box]) -> list[tuple[Box, Box]]:
    """(doubt, bridge) for each doubted box on one of ``lines`` (``on_line``) or on the band of a doubt found on
    one, in turn: the bridge spans from the line to the doubt on the line's band, with the doubt's score, class
    and source."""
    out: list[tuple[Box, Box]] = []
    pending = list(doubts)
    while lines and pending:
        found = [(b, bridge) for b in pending if (bridge := _first_on_line(b, lines)) is not None]
        pending = [b for b in pending if all(b is not f for f, _ in found)]
        out += [(b, replace(bridge, score=b.score, label=b.label, source=b.source)) for b, bridge in found]
        lines = [bridge for _, bridge in found]
    return out


def _first_on_line(box: Box, lines: Sequence[Box]) -> Box | None:
    """``box`` bridged to the first of ``lines`` it lies on (``on_line``), or None."""
    return next((bridge for line in lines if (bridge := on_line(box, line)) is not None), None)


JOIN_GAP = 8.0  # line heights between two boxes on one text line that are joined when the stretch holds strokes
WORD_GAP = 2.0  # ... and joined whatever the stretch holds: a word space
JOIN_SOURCE = "joined"  # Box.source of the stretch filled between them


def joined_lines(gray: np.ndarray, lines: Sequence[tuple[Box, Box]], most_gap: float = JOIN_GAP,
                 word_gap: float = WORD_GAP, min_contrast: int = 6) -> list[Box]:
    """A box over the stretch between each two ``lines`` ((box, its fill) of redacted text) that stand end to end
    on one text line: the detectors boxed "12.0" and "Radiologie 2" of a dark "12.03.2024 14:27 Radiologie 2"
    crossing from bright ground onto a dark band, and "3.2024 14:27" between them, too faint there beside the
    boxes' own strokes to follow (``continued``), stayed readable. On one line means: both boxes lines (half
    again as long as tall) running the same way, of heights within half again of each other, their bands
    overlapping by 0.6 of the lower. The fills are joined where they stand at most ``word_gap`` heights of the
    taller apart (a word space), or up to ``most_gap`` of the lower where the stretch holds the strokes of a line
    (``_holds_strokes``, at its own contrast): two fields of a generated overlay on one row, lung between them,
    stay apart. A line running up the image is joined along its columns."""
    out = []
    for upright in (False, True):
        image = np.ascontiguousarray(gray.T) if upright else gray
        laid = [(b.transposed(), f.transposed()) if upright else (b, f) for b, f in lines
                if _is_line(b, 1.5) and (b.height > b.width) == upright]
        for (a, fa), (b, fb) in _end_to_end(sorted(laid, key=lambda p: p[1].x0), most_gap):
            gap = Box(fa.x1, min(a.y0, b.y0), fb.x0, max(a.y1, b.y1), 0.0, source=JOIN_SOURCE)
            if gap.width <= word_gap * max(a.height, b.height) or _holds_strokes(image, gap, min_contrast):
                grown = replace(gap, y0=min(fa.y0, fb.y0), y1=max(fa.y1, fb.y1))  # as far as their fills
                out.append(grown.transposed() if upright else grown)
    return out


def _end_to_end(lines: Sequence[tuple[Box, Box]], most_gap: float) -> list[tuple[tuple[Box, Box], tuple[Box, Box]]]:
    """(left, right) for each (box, fill) and the nearest to its right on its text line (``lines`` sorted by their
    fills' x0, each running along the rows), their fills at most ``most_gap`` heights of the lower box apart."""
    pairs = []
    for i, (a, fa) in enumerate(lines):
        for b, fb in lines[i + 1 :]:
            low = min(a.height, b.height)
            overlap = min(a.y1, b.y1) - max(a.y0, b.y0)
            if fb.x0 > fa.x1 and max(a.height, b.height) <= 1.5 * low and overlap >= 0.6 * low:
                if fb.x0 - fa.x1 <= most_gap * low:
                    pairs.append(((a, fa), (b, fb)))
                break  # the nearest on its line only: a farther one is joined through it
    return pairs


def _holds_strokes(gray: np.ndarray, gap: Box, min_contrast: int, least: float = 0.25, blank: float = 4.0) -> bool:
    """Whether the stretch ``gap`` (a line's band, running along the rows) holds the strokes of text: ``least`` of
    its steps (a quarter height each, as ``_along`` walks a line) hold strokes lying on the band, not as much above
    and below it (a rib's edge or a wire crossing it), and no run of more than ``blank`` heights holds none (a
    word too faint to see between words seen). Its threshold is taken from the stretch itself, down to
    ``min_contrast``: the text there is fainter than in the boxes either side (dark text crossing a dark band).
    Measured: the stretches of lines joined held strokes in 42-80 % of their steps, blank for 3.3 heights at
    most; those between two fields of a generated overlay on one row, over lung, in 0-17 %, blank for 4.2-6."""
    h = gap.height
    on_line, off_line = _strokes_on_band(gray, gap.x0, gap.y0, gap.x1, gap.y1,
                                         lambda line: _stroke_threshold(line, min_contrast))
    step = max(2, h // 4)
    starts = np.arange(0, gap.width, step)
    on, off = np.add.reduceat(on_line, starts), np.add.reduceat(off_line, starts)  # per step; the test is scale-free
    text = (on > 0) & (off <= on / 2)
    longest = max((b - a for a, b in true_runs(~text)), default=0)
    return text.sum() >= least * len(text) > 0 and longest * step <= blank * h


def with_cut_strokes(gray: np.ndarray, box: Box, found: Box | None = None, reach: float = 2.0, min_contrast: int = 12,
                     min_aspect: float = 3.0) -> Box:
    """``box`` grown across its line to the ends of the strokes it cuts: a detector boxes a line by its body, and
    the ascenders and descenders it cuts stay (the alif and lam of Arabic rise nearly twice as high as the body
    of a word boxed at 0.45). A stroke counts when it crosses the box's edge and ends within ``reach`` box
    heights of it; one running on further is something crossing the line (a rib's edge, a wire). Only a line
    (``min_aspect`` times as long as it is tall): a box around a framed label or a block of lines is no line's
    body, and the strokes crossing its edge are the frame's or the anatomy's. ``found``: the box as the detector
    found it, when ``box`` is that box followed along its line (``continued``): its shape says which it is."""
    if not _is_line(found or box, min_aspect):
        return box
    (y0, y1), turned = _laid_along_rows(gray, box, lambda *frame: _across(*frame, reach, min_contrast))
    return replace(box, x0=y0, x1=y1) if turned else replace(box, y0=y0, y1=y1)


def _across(gray: np.ndarray, x0: int, y0: int, x1: int, y1: int, reach: float, min_contrast: int) -> tuple[int, int]:
    """The horizontal case: new (y0, y1) for the box [x0, x1) x [y0, y1)."""
    rows = gray.shape[0]
    h = y1 - y0
    span = max(1, int(reach * h))
    ya, yb = max(0, y0 - span), min(rows, y1 + span)
    ink = stroke_strength(np.ascontiguousarray(gray[ya:yb, x0:x1]), max(3, h // 2))
    threshold = _stroke_threshold(ink[y0 - ya : y1 - ya], min_contrast)
    n, _, stats, _ = cv2.connectedComponentsWithStats((ink > threshold).astype(np.uint8), connectivity=8)
    top, bottom = y0, y1
    for i in range(1, n):
        a = int(stats[i, cv2.CC_STAT_TOP]) + ya
        b = a + int(stats[i, cv2.CC_STAT_HEIGHT])
        crosses = a < y0 < b or a < y1 < b
        ends = (a > ya or ya == 0) and (b < yb or yb == rows)
        if crosses and ends:
            top, bottom = min(top, a), max(bottom, b)
    return top, bottom

