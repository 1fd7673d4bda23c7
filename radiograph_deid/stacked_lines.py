"""Lines stacked on a redacted text line: a viewer's overlay block (name, ID, date, left- or right-aligned in a
corner), found from the line the detectors did box and read by the text recognizer.

Why: on a house style the detectors never saw (``benchmarks/bench_site.py``), they box one line of such a block,
or the block as one box that stops short of its lines' ends, and leave the other lines: faint light-grey strokes
that run from dark lung onto bright bone, where no stroke threshold taken from the boxed line follows them. The
block's geometry tells where its next line lies: one pitch above or below, the profile of upright strokes down the
rows repeats (compared by normalized correlation, so a faint line on bright bone matches the boxed line on dark
lung as well as a strong one would). The recognizer tells whether it is text (three or more letters and digits,
read surely) and how far it runs (a line is grown sideways while its reading gains characters). Anatomy one pitch
from a line (a rib edge, a vessel) reads as nothing or as one character. A redacted line is itself grown so: the
detectors box part of a line ("kVp" of "83 kVp") whose strokes, faint or on busy ground, were not followed to the
rest.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from .boxes import Box, true_runs
from .enums import BoxClass
from .text_lines import busy_rows, text_rows, upright_strokes

Reader = Callable[[list[np.ndarray]], list[tuple[str, float]]]  # crops -> (text, confidence) each

SOURCE = "stacked"
MIN_CHARS = 3  # letters and digits a stacked line must read as: anatomy reads as nothing, "0", "T" or "11"
MIN_CORRELATION = 0.5  # of the rows' stroke profile with the boxed line's, one pitch away
PITCH = (1.1, 2.4)  # line pitch, in text heights: a block's lines are 1.2-2 text heights apart
LINES = 3  # at most this many lines stacked on a boxed line, each way
NEW_TEXT = 1.5  # text heights of columns no redacted box covers, for a stacked line to be read (three letters)
GROWTH = (5,)  # a stacked line is read again grown by this many text heights each side (2 and 5: 0.25 s more
# per image on bench_site, no more lines filled)


def stacked_lines(gray: np.ndarray, redacted: Sequence[Box], kept: Sequence[Box], read: Reader,
                  confidence: float = 0.8, reach: Sequence[Box] | None = None) -> list[Box]:
    """Text lines stacked above and below the redacted boxes' lines, each read surely (``confidence``), the rows of
    a redacted block of lines read and grown to their ends, and each redacted line grown beyond the columns its
    fill reaches (``reach``, one per box: the line followed to its strokes' ends; default the boxes). Nothing is
    found over a kept laterality marker (``kept``): a lead R beside a name stays."""
    finder = _Finder(gray, kept, read, confidence)
    rows = [_rows(gray, box) for box in redacted]
    seeds = [(row, len(r) > 1) for r in rows for row in r]
    finder.grow_block_rows([row for row, in_block in seeds if in_block])
    fills = list(redacted if reach is None else reach)
    finder.grow_lines([replace(box, x0=min(box.x0, fill.x0), x1=max(box.x1, fill.x1))
                       for box, fill, r in zip(redacted, fills, rows) if r == [box]], [*redacted, *fills])
    for row, _ in seeds:
        finder.stack_on(row, redacted)
    return finder.found


def _rows(gray: np.ndarray, box: Box) -> list[Box]:
    """The box's text lines: its rows when it holds a block of them (``text_lines.text_rows``), itself when it lies
    like a line, else none (a tile, a letter)."""
    rows = text_rows(gray[box.y0 : box.y1, box.x0 : box.x1])
    if len(rows) >= 2:
        return [replace(box, y0=box.y0 + a, y1=box.y0 + b) for a, b in rows]
    return [box] if box.width >= 1.5 * box.height else []


def _text_band(gray: np.ndarray, line: Box) -> tuple[int, int]:
    """The rows of the line's letters within its box: those crossed by a quarter as many upright strokes as the
    busiest (a box's margin above and below holds none)."""
    busy = busy_rows(gray[line.y0 : line.y1, line.x0 : line.x1])
    if busy.max() == 0:
        return line.y0, line.y1
    runs = true_runs(busy >= 0.25 * busy.max())
    return line.y0 + runs[0][0], line.y0 + runs[-1][1]


def _profile(gray: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    return upright_strokes(gray[y0:y1, x0:x1]).mean(axis=1)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / norm if norm > 0 else 0.0


def _chars(reading: tuple[str, float], confidence: float) -> int:
    """The letters and digits read, when read at ``confidence`` or better; else none."""
    return sum(c.isalnum() for c in reading[0]) if reading[1] >= confidence else 0


def _sure(reading: tuple[str, float], confidence: float) -> bool:
    return _chars(reading, confidence) >= MIN_CHARS


def _bare(box: Box, lines: Sequence[Box], height: int) -> list[Box]:
    """The parts of the box's columns that no line already filled or found covers on most of its rows, each at
    least ``NEW_TEXT`` text heights wide (three letters): only there can a stacked line hold text not yet known (two
    boxed lines of a block are each the other's candidate, and a line shorter than its neighbour leaves bare ground
    beside it)."""
    bare = np.ones(box.width, bool)
    for o in lines:
        if min(o.y1, box.y1) - max(o.y0, box.y0) >= 0.7 * box.height:
            bare[max(0, o.x0 - box.x0) : max(0, o.x1 - box.x0)] = False
    return [replace(box, x0=box.x0 + a, x1=box.x0 + b) for a, b in true_runs(bare) if b - a >= NEW_TEXT * height]


class _Finder:
    """The search over one image: its kept markers, the recognizer, and the lines found so far."""

    def __init__(self, gray: np.ndarray, kept: Sequence[Box], read: Reader, confidence: float) -> None:
        self.gray, self.kept, self.read, self.confidence = gray, list(kept), read, confidence
        self.found: list[Box] = []

    def _crop(self, box: Box) -> np.ndarray:
        """The box with a margin of 0.15 of its height: the recognizer was trained on text regions grown so."""
        grown = box.expanded(int(round(0.15 * box.height)), self.gray.shape[:2])
        return self.gray[grown.y0 : grown.y1, grown.x0 : grown.x1]

    def _band(self, box: Box, top: int, bottom: int) -> Box:
        """The box over rows ``top``-``bottom`` (a line's letters) with a quarter of their height above and below:
        the band a line's stroke profile is taken on and its crop read from."""
        pad = max(1, (bottom - top) // 4)
        return replace(box, y0=max(0, top - pad), y1=min(self.gray.shape[0], bottom + pad))

    def _clear(self, box: Box) -> bool:
        return not any(k.intersection(box) > 0 for k in self.kept)

    def _at(self, box: Box, y0: int, y1: int) -> Box | None:
        y0, y1 = max(0, y0), min(self.gray.shape[0], y1)
        if y1 - y0 < box.height or not self._clear(replace(box, y0=y0, y1=y1)):
            return None
        return replace(box, y0=y0, y1=y1, score=0.0, label=BoxClass.OTHER_MARKER, text="", source=SOURCE)

    def grow_block_rows(self, rows: Sequence[Box]) -> None:
        """Each row of a redacted block that reads surely, grown to its line's ends: a block's box is no line, so
        its fill is not followed along any (``text_lines.continued``). A row is read with a quarter of its height
        above and below, as a stacked line's text band is (``_band``; ``text_rows`` gives its letters' rows alone)."""
        rows = [replace(self._band(r, r.y0, r.y1), label=BoxClass.OTHER_MARKER, source=f"{r.source}+{SOURCE}")
                for r in rows]
        for row, reading in zip(rows, self.read([self._crop(r) for r in rows]) if rows else []):
            if _sure(reading, self.confidence):
                self.found.append(replace(self._grown(row, reading), text=reading[0]))

    def grow_lines(self, lines: Sequence[Box], filled: Sequence[Box]) -> None:
        """Each redacted line (its box's rows, its fill's columns) that reads surely, grown where its reading gains
        letters and digits (``_grown``): the detectors boxed "7485744" of "MRN 7485744", and the line's strokes,
        faint or on busy ground, were not followed across the gap to "MRN" (``text_lines.continued``). Read only on
        the sides where letters may stand (``_sides_to_grow``); the detector stage's sure reading of the box stands
        for the line's own."""
        for line in lines:
            top, bottom = _text_band(self.gray, line)
            if bottom - top < 4:
                continue
            band = self._band(line, top, bottom)
            sides = self._sides_to_grow(band, filled, bottom - top)
            if not sides:
                continue
            told = (line.text, 1.0)
            reading = told if _sure(told, self.confidence) else self.read([self._crop(band)])[0]
            if _sure(reading, self.confidence):
                grown = self._grown(band, reading, sides)
                if grown.x0 < band.x0 or grown.x1 > band.x1:
                    self.found.append(replace(grown, label=BoxClass.OTHER_MARKER, source=f"{line.source}+{SOURCE}"))

    def _sides_to_grow(self, band: Box, filled: Sequence[Box], height: int) -> list[int]:
        """The sides of a line's band (right: 1, left: -1) where, within ``GROWTH`` text heights of its end, a bare
        stretch (``_bare``: no box of ``filled`` on it) holds letters' strokes (``_strokes_in_band``). No stroke
        profile is asked of it, as of a stacked line: the digits of "83" beside "kVp" have another."""
        reach = GROWTH[-1] * band.height
        spans = {-1: (max(0, band.x0 - reach), band.x0), 1: (band.x1, min(self.gray.shape[1], band.x1 + reach))}
        beside = {side: replace(band, x0=a, x1=b) for side, (a, b) in spans.items() if b > a}
        return [side for side, box in beside.items()
                if self._clear(box) and any(self._strokes_in_band(p) for p in _bare(box, filled, height))]

    def _strokes_in_band(self, band: Box) -> bool:
        """Whether the band's rows are crossed by strong upright strokes (``text_lines.busy_rows``), one or more per
        row and twice as many as the rows a band's height above and below it: letters on the line's rows, not
        bare ground, nor anatomy, whose edges cross the rows around as often."""
        y0, y1 = max(0, band.y0 - band.height), min(self.gray.shape[0], band.y1 + band.height)
        busy = busy_rows(self.gray[y0:y1, band.x0 : band.x1]).astype(float)
        inside = np.zeros(len(busy), bool)
        inside[band.y0 - y0 : band.y1 - y0] = True
        around = busy[~inside].mean() if (~inside).any() else 0.0
        return busy[inside].mean() >= max(1.0, 2 * around)

    def stack_on(self, line: Box, filled: Sequence[Box]) -> None:
        """The lines stacked one pitch apart above and below ``line``, up to ``LINES`` each way, each read where no
        box in ``filled`` or found already covers it and its rows' stroke profile still matches the line's."""
        top, bottom = _text_band(self.gray, line)
        height = bottom - top
        if height < 4:
            return
        seed = self._band(line, top, bottom)
        own = _profile(self.gray, seed.y0, seed.y1, seed.x0, seed.x1)
        for box, step in (self._next(seed, own, height, d) for d in (1, -1)):
            for _ in range(LINES):
                if box is None:
                    break
                parts = [p for p in _bare(box, [*filled, *self.found], height)
                         if _correlation(own, _profile(self.gray, p.y0, p.y1, p.x0, p.x1)) >= MIN_CORRELATION]
                sure = [(p, r) for p, r in zip(parts, self.read([self._crop(p) for p in parts]) if parts else [])
                        if _sure(r, self.confidence)]
                if not sure:
                    break
                self.found += [replace(self._grown(p, r), text=r[0]) for p, r in sure]
                box = self._at(box, box.y0 + step, box.y1 + step)

    def _next(self, seed: Box, own: np.ndarray, height: int, direction: int) -> tuple[Box | None, int]:
        """The seed's rows moved one pitch up or down (``direction``) to where the rows' stroke profile best matches
        the seed's own (``own``; ``MIN_CORRELATION`` at least), and the move."""
        n = len(own)
        pitches = range(int(PITCH[0] * height), int(PITCH[1] * height) + 1)
        tops = [(p, seed.y0 + direction * p) for p in pitches if 0 <= seed.y0 + direction * p <= self.gray.shape[0] - n]
        if not tops:
            return None, 0
        top = min(y0 for _, y0 in tops)  # the strokes of every row searched, found once
        strokes = _profile(self.gray, top, max(y0 for _, y0 in tops) + n, seed.x0, seed.x1)
        best, move = MIN_CORRELATION, 0
        for pitch, y0 in tops:
            c = _correlation(own, strokes[y0 - top : y0 - top + n])
            if c > best:
                best, move = c, direction * pitch
        return (self._at(seed, seed.y0 + move, seed.y1 + move) if move else None), move

    def _grown(self, line: Box, reading: tuple[str, float], sides: Sequence[int] = (1, -1)) -> Box:
        """The line grown sideways (right: 1, left: -1, of ``sides``), each side as far (of ``GROWTH`` text
        heights) as its reading gains letters and digits: the recognizer reads on where a faint line's strokes fade
        under any threshold, and reads no more where the line has ended. Not over a kept marker."""
        cols = self.gray.shape[1]
        step = max(4, line.height)
        wider = [(side, replace(line, x1=min(cols, line.x1 + k * step)) if side > 0
                  else replace(line, x0=max(0, line.x0 - k * step))) for side in sides for k in GROWTH]
        wider = [(side, w) for side, w in wider if w != line and self._clear(w)]
        x0, x1 = line.x0, line.x1
        gains = {1: _chars(reading, self.confidence), -1: _chars(reading, self.confidence)}
        for (side, w), r in zip(wider, self.read([self._crop(w) for _, w in wider]) if wider else []):
            if _chars(r, self.confidence) > gains[side]:
                gains[side] = _chars(r, self.confidence)
                x0, x1 = (x0, w.x1) if side > 0 else (w.x0, x1)
        return replace(line, x0=x0, x1=x1)
