"""Keep isolated laterality markers: only the glyph's own pixels survive, the rest of its box is filled.

The paper's second pass on original-resolution pixels: Otsu -> connected components -> the dominant glyph
(``glyphs.glyph_components``: frames and tile edges set aside, largest first) -> recognition. Recognition is the
learned glyph classifier (any rotation or mirror); when it is unsure, a second reader decides: the text
detector's own reading of the box, else Tesseract, as in the paper. When no glyph reads as a letter, the crop
less its smooth lighting is looked at once more (a faint letter on a tile lit unevenly), then black-face letters
too solid for the first look (a bold R fills 0.8 of its box) on a sure reading alone. Words in the vocabulary
longer than one letter (LT, RT, DX, ...) are read by the CRNN text recognizer, and keep the pixels of their
letters that read as the word (``glyphs.word_inks``), not a frame, tile or ground around them. Whatever is not
kept is filled whole: "R JS" keeps the R and loses the initials; where the initials stand so close that the R
reads as a letter of a word, a box read as the letter and the initials is cut in two at the gap after a letter
taller than them.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import cv2
import numpy as np

from . import tesseract
from .boxes import Box
from .config import RetentionConfig
from .corner_icons import SOURCE as ICON
from .enums import BoxAction, BoxClass
from .glyphs import (GLYPH_CLASSES, LEVEL_DEGREES, GlyphClassifier, GlyphComponent, as_tensor, bold_components,
                     dominant_component, figure_mask, figure_side, glyph_components, glyph_tilt, ink_page,
                     leading_glyph, letters_page, levelled, rotated, rotational_symmetry, stroke_components,
                     word_inks, word_letter_at)
from .pixels.display import detector_gray
from .rulers import SOURCE as RULER

SYMMETRIC = 0.92  # rotational symmetry from which a glyph is a shape, not a letter (glyphs.rotational_symmetry)
WORD_LENGTH = 1.2  # a capital's most width over its height, spacing included (a bold W; an L or T is 0.7)
MIRRORED_ALIKE = frozenset("DI")  # one-letter words that are their own mirror image: read in two placements
INITIALS = 4  # letters and digits stamped beside a marker's letter ("R JS"); more is a word or a name
DOUBT_GROWTH = 0.2  # of a doubted box's longer side, the box is grown by to hold a glyph it cuts (``sure_letter``)


@dataclass(frozen=True)
class RetentionResult:
    box: Box
    action: BoxAction
    keep_mask: np.ndarray | None  # True where the glyph's pixels stay (same shape as the box)


# The side each laterality word names (left: gauche, izquierda, sinistra; right: droite/derecha, destra), for
# the cross-check against the DICOM laterality tags. A vocabulary word not listed here is kept unchecked.
SIDES = {**dict.fromkeys(("L", "LT", "LEFT", "G", "I", "SX", "SIN"), "L"),
         **dict.fromkeys(("R", "RT", "RIGHT", "D", "DX", "DEX"), "R")}


def folded(text: str) -> str:
    """Upper case, compatibility forms folded (the recognizer reads a lone I as the full-width \uff29), trimmed."""
    return unicodedata.normalize("NFKC", text).strip().upper()


def normalized_token(text: str) -> str:
    """Letters and digits only of the folded text."""
    return "".join(c for c in folded(text) if c.isalnum())


def side_of(word: str) -> str:
    """'L', 'R' or '' (unknown) for a kept laterality word."""
    return SIDES.get(normalized_token(word), "")


def laterality_mismatch(tag_values: Iterable[str], kept_words: Iterable[str]) -> bool:
    """Whether the kept markers name a side that the DICOM laterality tags (ImageLaterality, Laterality) do not:
    only when both say something ("B", bilateral, and words of unknown side check nothing)."""
    tags = {normalized_token(t) for t in tag_values} & {"L", "R"}
    sides = {side_of(w) for w in kept_words} - {""}
    return bool(tags and sides and not tags & sides)


def _word_of(reading: str) -> str:
    """The folded reading, less marks at its ends when two or more letters remain ("RIGHT·" is RIGHT): exactly
    the word otherwise, so "g." is no G and "L.T" no LT."""
    text = folded(reading)
    inner = text.strip("".join(c for c in set(text) if not c.isalnum()))
    return inner if len(inner) >= 2 else text


def _edits(a: str, b: str) -> int:
    """Levenshtein distance: the fewest characters inserted, deleted or replaced to turn ``a`` into ``b``."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def _names_side_read(letter: str, told: set[str]) -> bool:
    """Whether a glyph's letter may stand for its box: it names a side the box's reading names (``told``), when
    that reading names one; otherwise it is a piece of the word read (the stem of the D of "DEX" is no L)."""
    return not told or side_of(letter) in told


def _initials(reading: str) -> bool:
    """Whether a mark stands between the reading's letters ("L.T", "J-D"), as in initials."""
    inner = _word_of(reading)
    return len(inner) >= 3 and any(not c.isalnum() and not c.isspace() for c in inner)


def glyph_mask(gray: np.ndarray, box: Box) -> np.ndarray | None:
    """The dominant glyph's pixels inside ``box`` (a mask of the box's shape, slightly grown), or None."""
    comp = dominant_component(gray[box.y0 : box.y1, box.x0 : box.x1])
    return None if comp is None else _grown(comp.mask)


def flattened(gray: np.ndarray) -> np.ndarray:
    """The crop less its smooth lighting (a blur half the box wide), stretched to 0-255: on a tile lit unevenly
    Otsu splits the tile's bright side from its dark side and takes the bright side and the letter for one glyph."""
    sigma = max(3.0, min(gray.shape[:2]) / 2)
    detail = gray.astype(np.float32) - cv2.GaussianBlur(gray.astype(np.float32), (0, 0), sigma)
    return cv2.normalize(detail, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


# the classifier's reading a letter found only among the weaker strokes must reach (a thin L in a ringed marker half
# in shadow: 0.9995; strokes of anatomy read L at 0.85-0.96 on bench_redact's images, each costing Tesseract's
# eight placements, 1.2 s)
WEAKER_STROKE_SURE = 0.99


def _kept(box: Box, text: str, score: float, mask: np.ndarray) -> RetentionResult:
    """The box relabelled as the laterality marker it holds; only the glyph's pixels (grown a little) are kept."""
    return RetentionResult(replace(box, label=BoxClass.LATERALITY, text=text, score=score),
                           BoxAction.KEPT_LATERALITY, _grown(mask))


def _unkept(result: RetentionResult) -> RetentionResult:
    """A kept result taken back: redacted with the rest of its box, its reading dropped (no side recorded)."""
    return RetentionResult(replace(result.box, label=BoxClass.OTHER_MARKER, text=""), BoxAction.REDACTED, None)


def _frames(kept: RetentionResult, others: Sequence[Box], inside: float = 0.8, touched: float = 0.1) -> bool:
    """Whether the kept glyph frames another box found: ``inside`` of that box lies within the glyph's extent and
    less than ``touched`` of it under the glyph's pixels. A letter holds no text in its crook or counter; the rim
    of a turned label tile ("SCHMIDT W.", "43056156"), cut by the tile's box, was read as L with the tile's text
    boxed inside it, and kept."""
    if kept.keep_mask is None or not kept.keep_mask.any():
        return False
    extent = kept.box.around(kept.keep_mask)
    for other in others:
        common = other.common(extent)
        if common is None or common.width * common.height < inside * other.width * other.height:
            continue
        if kept.keep_mask[common.within(kept.box)].mean() < touched:
            return True
    return False


def _grown(mask: np.ndarray) -> np.ndarray:
    k = _kernel(mask)
    return cv2.dilate(mask.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)


def _kernel(mask: np.ndarray) -> int:
    """The side of the square a kept glyph is grown by: a twelfth of its height, odd, at least 3."""
    ys, _ = np.nonzero(mask)
    return 3 if len(ys) == 0 else max(3, ((int(ys.max() - ys.min()) // 12) | 1))


def whole_glyph(gray: np.ndarray, keep: np.ndarray, box: tuple[slice, slice], most_added: float = 0.5) -> np.ndarray:
    """The keep mask of a fill (``gray``'s shape; the detector's box at ``box`` in it) extended over the kept
    glyph's ink beyond the box: a box that stops short of a letter's foot keeps only the part inside it, and the
    fill's margin would cut the foot off ("L" reads "L."). Only ink joined to the kept glyph is added, only
    outside the box (inside it retention has decided), and at most ``most_added`` of the glyph's area (ink that
    runs on is a band or the body, not the letter); otherwise ``keep`` as it is."""
    k = _kernel(keep)
    core = cv2.erode(keep.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)  # the glyph, less the growth
    ink = figure_side(gray[box])(gray)
    if (core & ~ink).sum() > (core & ink).sum():
        ink = ~ink  # the kept glyph is on the other side (a bold letter's strokes, not its counter)
    _, labels = cv2.connectedComponents(ink.astype(np.uint8), connectivity=8)
    inside = np.zeros_like(ink)
    inside[box] = True
    glyph = core & ink & inside
    joined = np.isin(labels, np.unique(labels[glyph])) & ink if glyph.any() else np.zeros_like(ink)
    added = joined & ~inside & ~keep
    if not added.any() or added.sum() > most_added * int(glyph.sum()):
        return keep
    return keep | _grown(added | glyph) & ~inside


def tesseract_letter(tensor: np.ndarray, letters: str) -> str:
    """Tesseract's single-character reading (``--psm 10``) of a glyph in its eight placements; '' if none."""
    img = cv2.copyMakeBorder((255 - tensor * 255).astype(np.uint8), 16, 16, 16, 16, cv2.BORDER_CONSTANT, value=255)
    img = cv2.resize(img, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    for k in range(8):
        variant = np.rot90(img if k < 4 else np.fliplr(img), k % 4)
        read = tesseract.image_to_string(variant, f"--psm 10 -c tessedit_char_whitelist={letters}").strip()
        if len(read) == 1 and read in letters:
            return read
    return ""


class LateralityRetainer:
    def __init__(self, cfg: RetentionConfig) -> None:
        self.cfg = cfg
        self.letters = "".join(v for v in cfg.vocabulary if v in GLYPH_CLASSES and len(v) == 1)
        self.words = tuple(v for v in cfg.vocabulary if len(v) > 1 or v not in GLYPH_CLASSES)
        self.longest = max(map(len, cfg.vocabulary), default=0)  # text longer than this is no laterality word
        self.classifier = GlyphClassifier(cfg.glyph_weights) if cfg.enabled and self.letters else None
        self._recognizer = None

    def __call__(self, view: np.ndarray, boxes: Sequence[Box]) -> list[RetentionResult]:
        """Decide each detected box: keep an isolated laterality glyph, redact everything else."""
        gray = detector_gray(view)
        return self._isolated(gray, self._marker_sized([res for box in boxes for res in self._decided(gray, box)],
                                                       gray.shape[:2]))

    def sure_letter(self, gray: np.ndarray, box: Box) -> RetentionResult | None:
        """The box kept for its letter on the strictest reading, or None: for a box the detector doubts, only its
        dominant glyph, lying clear of the box's edges, read as a laterality letter by the classifier alone at
        ``min_confidence`` (no second reader, no words). A grey-scale wedge's step edge, read L at 0.82, runs
        out of its box. A glyph the box cuts is looked for again in the box grown by ``DOUBT_GROWTH`` of its
        longer side: the detector boxes a doubted marker tightly (the foot of an L beside a technician's initials
        lay outside its box); a step edge runs out of that box too."""
        if self.classifier is None or self._is_line(box):
            return None
        found = box
        glyph = dominant_component(gray[box.y0 : box.y1, box.x0 : box.x1])
        if glyph is not None and glyph.touches_border:
            box = box.expanded(max(2, int(DOUBT_GROWTH * max(box.width, box.height))), gray.shape[:2])
            glyph = dominant_component(gray[box.y0 : box.y1, box.x0 : box.x1])
        if glyph is None or not glyph.may_be_letter or glyph.touches_border or \
                not self._sized_as_marker(glyph.mask, gray.shape[:2]):
            return None
        letter, score = self._letter(glyph, second_opinion=False)
        if not letter:
            return None
        kept = found.spanning(box.around(glyph.mask))  # the box found and the glyph: its fill grows no more
        return _kept(kept, letter, round(score, 4), glyph.mask[kept.within(box)])

    def _sized_as_marker(self, keep: np.ndarray, shape: tuple[int, int]) -> bool:
        """Whether a kept glyph's longer side is ``min_marker_share`` of the image's shorter side or more: a lead
        marker is 1-2 cm tall on a 35-43 cm plate (the smallest kept on the evaluation sets, 1.3 %). The glyphs
        kept that were no marker, a viewer's flip icon's 9-px R on a 2000-px image, dot-matrix and 6-13 px
        glyphs, were 0.4-0.75 %."""
        rows, cols = np.nonzero(keep.any(axis=1))[0], np.nonzero(keep.any(axis=0))[0]
        if not len(rows):
            return False
        longer = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
        return longer >= self.cfg.min_marker_share * min(shape)

    def _marker_sized(self, results: list[RetentionResult], shape: tuple[int, int]) -> list[RetentionResult]:
        """Kept glyphs too small for a lead marker (``_sized_as_marker``) redacted with the rest of their box."""
        return [r if r.action is not BoxAction.KEPT_LATERALITY or r.keep_mask is None
                or self._sized_as_marker(r.keep_mask, shape)
                else _unkept(r) for r in results]

    def _isolated(self, gray: np.ndarray, results: list[RetentionResult]) -> list[RetentionResult]:
        """A letter found inside a line of text (another box longer than ``max_aspect``: the L of "EXAMPLE") or
        inside a word read in another box, as a letter of it (``_letter_of_word``), is part of that text, not an
        isolated marker, and a glyph that frames text (``_frames``) is no letter: each is redacted with its box."""
        others = [r.box for r in results if r.action is not BoxAction.KEPT_LATERALITY]
        lines = [box for box in others if self._is_line(box)]
        out = []
        for r in results:
            area = r.box.width * r.box.height
            if r.action is BoxAction.KEPT_LATERALITY and (
                    any(r.box.intersection(line) >= 0.5 * area for line in lines) or _frames(r, others)
                    or self._letter_of_word(gray, r.box, others)):
                r = _unkept(r)
            out.append(r)
        return out

    def _letter_of_word(self, gray: np.ndarray, kept: Box, others: Sequence[Box]) -> bool:
        """Whether the kept box lies mostly in a horizontal box read as a word of two or more letters and digits,
        no laterality word, where its glyph is a letter of that word (``glyphs.word_letter_at``): the marker detector
        boxed the R of a hospital's "RGH" alone, as laterality, and the text detector read the word around it."""
        area = kept.width * kept.height
        for word in others:
            token = normalized_token(word.text)
            if len(token) < 2 or token in self.words or word.height > word.width \
                    or kept.intersection(word) < 0.5 * area:
                continue
            x0, x1 = max(kept.x0, word.x0) - word.x0, min(kept.x1, word.x1) - word.x0
            if word_letter_at(gray[word.y0 : word.y1, word.x0 : word.x1], x0, x1):
                return True
        return False

    def _decided(self, gray: np.ndarray, box: Box) -> list[RetentionResult]:
        """The box decided whole; when it is not kept and holds a marker's letter with initials beside it, the
        letter kept and the initials redacted (the text detector boxes "R JS" as one line of text). A box kept
        that the detector stage did not read, or read as one letter, is read first (``_reading``), and decided on
        that reading: the text detector read a "KG" as "G", its K on a band of shadow that Otsu took with it. A
        corner pictogram's box (``corner_icons``) is filled whole: its tile's corner or a mark in it read as L."""
        if box.found_by(ICON):
            return [RetentionResult(box, BoxAction.REDACTED, None)]
        whole = self._decide(gray, box)
        if whole.action is BoxAction.KEPT_LATERALITY and len(normalized_token(box.text)) <= 1:
            reading = self._reading(gray[box.y0 : box.y1, box.x0 : box.x1])
            if reading:
                box = replace(box, text=reading)
                whole = self._decide(gray, box)
        split = None if whole.action is BoxAction.KEPT_LATERALITY else self._letter_and_initials(gray, box)
        if split is not None:
            glyph, around, initials = split
            kept = self._decide(gray, around)
            if kept.action is BoxAction.KEPT_LATERALITY and kept.box.text == glyph.text and kept.keep_mask is not None:
                narrowed = replace(kept.box, x0=glyph.x0, y0=glyph.y0, x1=glyph.x1, y1=glyph.y1)
                return [RetentionResult(narrowed, kept.action, kept.keep_mask[glyph.within(around)]),
                        RetentionResult(initials, BoxAction.REDACTED, None)]
        return [whole]

    def _letter_and_initials(self, gray: np.ndarray, box: Box) -> tuple[Box, Box, Box] | None:
        """(letter, around it, initials): a horizontal box read as a laterality letter and up to ``INITIALS`` more
        letters after it (or before it), whose first (last) glyph stands apart from the rest and taller than each
        of them (``glyphs.leading_glyph``), cut in two in the gap between them; or None. The letter is read in a
        crop reaching a quarter of the box's height beyond it except towards the initials, so that the glyph, not
        the ground around it, is the minority side (a bold R fills a box cut tight)."""
        token = normalized_token(box.text)
        if self.classifier is None or box.height > box.width or not 2 <= len(token) <= INITIALS + 1:
            return None
        crop = gray[box.y0 : box.y1, box.x0 : box.x1]
        for letter, leading in ((token[0], True), (token[-1], False)):
            found = leading_glyph(crop if leading else crop[:, ::-1]) if letter in self.letters else None
            if found is None:
                continue
            half, pad = max(1, found.gap // 2), max(2, box.height // 4)
            rows, cols = gray.shape[:2]
            start, stop = (found.start, found.stop) if leading else (box.width - found.stop, box.width - found.start)
            glyph = replace(box, x0=box.x0 + start, x1=box.x0 + stop, label=BoxClass.LATERALITY, text=letter)
            if leading:
                x0, x1 = max(0, glyph.x0 - pad), glyph.x1 + half
                initials = replace(box, x0=x1, label=BoxClass.OTHER_MARKER, text=token[1:])
            else:
                x0, x1 = glyph.x0 - half, min(cols, glyph.x1 + pad)
                initials = replace(box, x1=x0, label=BoxClass.OTHER_MARKER, text=token[:-1])
            around = replace(glyph, x0=x0, y0=max(0, box.y0 - pad), x1=x1, y1=min(rows, box.y1 + pad))
            return glyph, around, initials
        return None

    def _decide(self, gray: np.ndarray, box: Box) -> RetentionResult:
        redact = RetentionResult(replace(box, label=BoxClass.OTHER_MARKER), BoxAction.REDACTED, None)
        if not self.cfg.enabled or (self._is_line(box) and not self._read_as_word(box)) or self._read_as_text(box):
            return redact
        crop = gray[box.y0 : box.y1, box.x0 : box.x1]
        if self._holds_lines(crop):
            return redact
        comps = glyph_components(crop, most=self.cfg.glyph_candidates)
        if not comps:
            return redact
        told = self._sides_read(box)
        for rank, comp in enumerate(comps):  # the dominant glyph first; the others only on a confident reading
            if not comp.may_be_letter or (rank and comp.touches_border):
                continue  # e.g. a letter of "RD" or "12", a bright band the classifier could take for an R, or
                # beside the dominant glyph, a piece the box cuts (a dark tile's lit edge read L at 0.81)
            reading, dominant = (folded(box.text), not comp.touches_border) if rank == 0 else ("", False)
            letter, score = self._letter(comp, second_opinion=dominant, reading=reading)
            if not letter and dominant:
                letter, score = self._levelled_letter(comp, crop, reading)
            if letter and _names_side_read(letter, told):
                return _kept(box, letter, round(score, 4), comp.mask)
        flat = glyph_components(flattened(crop), most=1)  # a faint letter on a tile lit unevenly
        if flat and flat[0].may_be_letter and not flat[0].touches_border:
            letter, score = self._letter(flat[0], second_opinion=False)
            if letter and _names_side_read(letter, told):
                return _kept(box, letter, round(score, 4), flat[0].mask)
        for comp in bold_components(crop):  # a black-face letter, on the classifier's sure reading alone
            letter, score = self._letter(comp, second_opinion=False)
            if letter and _names_side_read(letter, told):
                return _kept(box, letter, round(score, 4), comp.mask)
        word = self._word_told(crop, box) or (
            "" if self._read_as_other(box) else self._word(crop, len(normalized_token(box.text))))
        if word:
            return _kept(box, word, box.score, self._word_pixels(crop, word))
        last = self._last_look(crop, box)
        return redact if last is None else last

    def _last_look(self, crop: np.ndarray, box: Box) -> RetentionResult | None:
        """The box kept for a letter the looks above missed, confirmed by Tesseract (``_stroke_letter``, then
        ``_neighboured_letter``), or None; a box read as anything at the detector stage is not looked at (a stroke
        of the "IQ" or "RS" read in it was kept as L), nor any box without Tesseract's second opinion."""
        if normalized_token(box.text) or not self.cfg.tesseract_second_opinion:
            return None
        return self._stroke_letter(crop, box) or self._neighboured_letter(crop, box)

    def _neighboured_letter(self, crop: np.ndarray, box: Box) -> RetentionResult | None:
        """The box kept for its dominant glyph when only something beside it at letter spacing made it a letter of
        a word (``GlyphComponent.in_word``), or None: a lead L on its tile with a crocodile clip's jaw beside it
        (synthetic) was filled. As for the stroke look, a box read as anything at the detector stage or read
        surely now as two or more characters ("RD", "12", "AL") keeps nothing, and the classifier's sure letter
        must be Tesseract's reading as well. Only the glyph's pixels stay; the rest of the box, its neighbour
        too, is filled."""
        comps = glyph_components(crop, most=1)
        return self._confirmed_alone(crop, box, [(c, 0.0) for c in comps if c.in_word and c.shaped_as_letter
                                                 and not c.touches_border])

    def _stroke_letter(self, crop: np.ndarray, box: Box) -> RetentionResult | None:
        """The box kept for a letter drawn as strokes apart from their ground (``glyphs.stroke_components``), or
        None. Where a bone's edge or a shadow crosses a tile or ring, Otsu splits the ground, not the letter from
        it. Strokes of anatomy and of words read as letters too, so a box the recognizer reads surely as two or
        more characters (``_reading``: "DOE", "05" of a name and a date no detector read) keeps nothing, and the
        classifier's sure letter must be Tesseract's reading as well; a letter among the weaker strokes only must
        be read ``WEAKER_STROKE_SURE`` or more first."""
        strong, weaker = stroke_components(crop, most=self.cfg.glyph_candidates)
        candidates = [(c, 0.0) for c in strong] + [(c, WEAKER_STROKE_SURE) for c in weaker]
        return self._confirmed_alone(crop, box, [(c, least) for c, least in candidates
                                                 if c.may_be_letter and not c.touches_border])

    def _confirmed_alone(self, crop: np.ndarray, box: Box, comps: Sequence[tuple[GlyphComponent, float]]
                         ) -> RetentionResult | None:
        """The box kept for the first of ``comps`` the classifier reads surely (and from the score paired with it)
        as a letter and Tesseract reads as that letter too, or None; None as well when the recognizer reads two or
        more characters in the box."""
        letters = [(comp, *self._letter(comp, second_opinion=False)) for comp, _ in comps]
        letters = [(comp, letter, score) for (comp, letter, score), (_, least) in zip(letters, comps)
                   if letter and score >= least]
        if not letters or self._reading(crop):
            return None
        for comp, letter, score in letters:
            if tesseract_letter(comp.tensor, self.letters) == letter:
                return _kept(box, letter, round(score, 4), comp.mask)
        return None

    def _sides_read(self, box: Box) -> set[str]:
        """The sides the text detector's reading of the box names, by its words of the vocabulary (a glyph
        classifier tried in the thirteenth session read the stem of the D of "DEX", serifs and all, L at 0.82)."""
        return {side_of(w) for w in map(_word_of, box.text.split()) if w in self.cfg.vocabulary} - {""}

    def _is_line(self, box: Box) -> bool:
        """Longer than ``max_aspect`` times its width, or a ruler: a line of text, never an isolated marker."""
        return box.found_by(RULER) or max(box.width, box.height) > self.cfg.max_aspect * min(box.width, box.height)

    def _read_as_word(self, box: Box) -> bool:
        """The detector stage read the box as one laterality word of two or more letters and nothing else: a
        "RIGHT" the text detector boxes tight to its letters is 3.5 times as long as tall, as a line of text is."""
        word = _word_of(box.text)
        return len(word) >= 2 and word in self.words

    def _read_as_text(self, box: Box) -> bool:
        """The box was read as text that is no laterality word, and none of its words is one: longer than any (a
        bold "liegend" drawn with dark outlines: a piece of outline read as L at 1.0), or two or more characters
        two or more edits from each (the L of "L:1.9" and "L11" was kept as a marker). A marker with initials
        beside it reads as a vocabulary word and a short one ("R JS"), or as one word ("RHS"), which
        ``_letter_and_initials`` cuts in two."""
        words = [_word_of(w) for w in box.text.split()]
        if any(w in self.cfg.vocabulary for w in words):
            return False
        return len(normalized_token(box.text)) > self.longest or self._read_as_other(box)

    def _read_as_other(self, box: Box) -> bool:
        """The detector stage read the box surely as two or more characters, two or more edits from every
        laterality word: no word reading will find one in it (pieces of a name or a date the detector doubted,
        read "SA", "024", "DOE"; reading each again in every placement took 0.24 s of an image's 1.7 s). One
        edit away, the word reading looks again: it read a DEX that the text detector had read "DBX"."""
        token = normalized_token(box.text)
        return len(token) >= 2 and all(_edits(token, w) >= 2 for w in self.cfg.vocabulary)

    def _holds_lines(self, crop: np.ndarray) -> bool:
        """Whether two or more lines of text in the box (``detector.row_crops``) read as words longer than any
        laterality word: a viewer's overlay of four lines over a bright corner of the image, boxed as one marker;
        the corner with the strokes on it made an L-shaped blob the classifier read as L at 0.95, and the name's
        letters on it would have been kept. An L with "pa" under it reads one letter and two."""
        from .detector import row_crops

        rows = row_crops(crop)
        if not rows:
            return False
        readings = self.reader().batch([cv2.cvtColor(r, cv2.COLOR_GRAY2BGR) for r in rows])
        return sum(c >= self.cfg.min_confidence and len(normalized_token(t)) > self.longest for t, c in readings) >= 2

    def _reading(self, crop: np.ndarray) -> str:
        """The recognizer's sure upright reading of the crop when it is two or more letters and digits, else "":
        in a short word or number the marker detector boxed alone, blurred or spaced so that its letters are not
        seen as a word, a letter was kept as a marker (the R of "GHR", the 1 of "10" as L); only the reading
        tells. A lone letter's reading adds nothing to the classifier's."""
        text, conf = self.reader().batch([cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)])[0]
        return text if conf >= self.cfg.min_confidence and len(normalized_token(text)) >= 2 else ""

    def reader(self):  # type: ignore[no-untyped-def]
        """The CRNN line recognizer, loaded when first needed (the decider's stacked lines are read with it too)."""
        if self._recognizer is None:
            from .ocr_models import TextRecognizer

            self._recognizer = TextRecognizer(1)
        return self._recognizer

    def _letter(self, comp: GlyphComponent, second_opinion: bool = True, reading: str = "") -> tuple[str, float]:
        """The laterality letter the glyph is, or "": the classifier's sure reading, or its unsure one (from half
        the confidence) confirmed by a second reader: the OCR recognizer's ``reading`` of the whole box (it read
        the R cut by a film's edge that the classifier gave 0.6; a bold italic R it gave 0.41, "other" 0.56, is
        weighed as that letter too), else Tesseract."""
        if self.classifier is None or rotational_symmetry(comp.tensor) >= SYMMETRIC:
            return "", 0.0  # a square, ring, cross or dot is no letter, whatever the classifier says
        probs = self.classifier([comp.tensor])[0]
        best = int(np.argmax(probs))
        letter, p = GLYPH_CLASSES[best], float(probs[best])
        if letter not in self.letters and len(reading) == 1 and reading in self.letters:
            letter, p = reading, float(probs[GLYPH_CLASSES.index(reading)])  # the reading's letter, unsure
        if letter not in self.letters:
            return "", p
        if p >= self.cfg.min_confidence:
            return letter, p
        if reading == letter and p >= self.cfg.min_confidence / 2:
            return letter, p
        if second_opinion and self.cfg.tesseract_second_opinion and p >= self.cfg.min_confidence / 2:
            return (letter, p) if tesseract_letter(comp.tensor, self.letters) == letter else ("", p)
        return "", p

    def _levelled_letter(self, comp: GlyphComponent, crop: np.ndarray, reading: str) -> tuple[str, float]:
        """The laterality letter the dominant glyph is when turned back by its own tilt (``glyphs.glyph_tilt``,
        from ``LEVEL_DEGREES``: a lead marker taped on askew, which the classifier, trained on quarter turns and a
        few degrees either side, read as "other"), or "". Turned by its own slant, more shapes look like a letter
        than upright (a T read L at 0.94; a script R turned back by a wrong tilt, L at 1.0), so the classifier's
        letter, from half its confidence, must be read surely by the OCR recognizer too: in the box's
        ``reading``, or in the box's crop turned back (``_reads_as``)."""
        tilt = glyph_tilt(comp.mask)
        glyph = None if self.classifier is None or abs(tilt) < LEVEL_DEGREES else levelled(comp.mask, tilt)
        if glyph is None or rotational_symmetry(tensor := as_tensor(glyph)) >= SYMMETRIC:
            return "", 0.0
        probs = self.classifier([tensor])[0]
        best = int(np.argmax(probs))
        letter, p = GLYPH_CLASSES[best], float(probs[best])
        if letter not in self.letters or p < self.cfg.min_confidence / 2:
            return "", p
        back = rotated(crop, tilt, int(np.median(crop)))
        return (letter, p) if reading == letter or self._reads_as(back, letter) else ("", p)

    def _reads_as(self, crop: np.ndarray, letter: str) -> bool:
        """Whether the recognizer's surest reading of the crop, in the placement of the eight that reads best, is
        surely ``letter``, and none of them surely a word naming the other side. The best placement, not the
        crop as it is: a T lying on its side reads "L" at 0.91 as it is, and "T" at 0.99 stood up."""
        from .detector import orientations

        readings = self.reader().batch([cv2.cvtColor(np.ascontiguousarray(v), cv2.COLOR_GRAY2BGR)
                                        for v in [crop] + orientations(crop)])
        sure = {normalized_token(t) for t, c in readings if c >= self.cfg.min_confidence}
        text, conf = max(readings, key=lambda r: r[1])
        return (conf >= self.cfg.min_confidence and normalized_token(text) == letter
                and {side_of(w) for w in sure} - {""} == {side_of(letter)})

    def _word_told(self, crop: np.ndarray, box: Box) -> str:
        """The word of the vocabulary the detector stage read surely in the box, when the box's letters are no
        more than it has and their ink no longer than its letters can be (``WORD_LENGTH``): a blurred "LT" on a
        tile, read "LT" in the text detector's region, runs together into one blob that reads as nothing cut to
        the box. Blurred letters run together, so their count alone would let "LT JS" pass for LT."""
        told = _word_of(box.text)
        if told not in self.words:
            return ""
        page = letters_page(crop)
        if page is None or page.count > len(told):
            return ""
        along, across = page.span
        return told if along <= WORD_LENGTH * len(told) * across else ""

    def _word_pixels(self, crop: np.ndarray, word: str) -> np.ndarray:
        """The pixels a kept word keeps: the first of ``glyphs.word_inks`` that reads as the word surely, upright,
        else in any placement; else Otsu's minority side (``figure_mask``), as before this was looked for."""
        from .detector import orientations

        inks = word_inks(crop)
        pages = [ink_page(ink) for ink in inks]
        for views in ([[p] for p in pages], [orientations(p) for p in pages]):
            readings = iter(self.reader().batch([cv2.cvtColor(v, cv2.COLOR_GRAY2BGR) for vs in views for v in vs]))
            for ink, vs in zip(inks, views):
                read = [next(readings) for _ in vs]
                if any(conf >= self.cfg.min_confidence and _word_of(text) == word for text, conf in read):
                    return ink
        return figure_mask(crop)

    def _word(self, crop: np.ndarray, read: int = 0) -> str:
        """A laterality word of the vocabulary (LT, DX, I, ...), from the crop as it is or from its letters alone.
        A sure upright reading of every letter decides (a panel letter "a" is not turned until it reads G);
        otherwise any sure reading in another placement does (an S mirrored reads 2, so the surest placement
        cannot decide): an "RT" running down the image read "R" upright, surely, and was filled. The
        word must explain as many letters as the crop holds (not the D of "ID"), and as many as the detector
        stage ``read`` in its box: a doubted box on "DOE" cut through the O, read "DO", held one whole letter,
        and its D was kept as the word for right (droite, derecha). A D or an I (``MIRRORED_ALIKE``) not read
        upright must read surely in two placements or more, as its mirror image is itself: a ring round an italic
        "LEFT", the lung dark inside it below the word, read D turned a quarter (0.94) and in no other placement
        surely, and the LEFT was kept as right; real turned D markers read D in two (0.96-0.99)."""
        if not self.words:
            return ""
        from .detector import orientations

        page = letters_page(crop)
        least = max(read, 0 if page is None else page.count)
        if least > max(map(len, self.words)):
            return ""  # more letters than any word of the vocabulary has: no reading could be one
        views = [crop] if page is None else [crop, page.image]
        uprights = self.reader().batch([cv2.cvtColor(v, cv2.COLOR_GRAY2BGR) for v in views])
        if uprights[0][1] >= self.cfg.min_confidence and _initials(uprights[0][0]):
            return ""  # "D.X", "S.X.": initials, though their letters alone (stops are specks) read DX, SX
        for view, upright in zip(views, uprights):
            decides = upright[1] >= self.cfg.min_confidence and len(normalized_token(upright[0])) >= least
            readings = [upright] + ([] if decides else self.reader().batch(
                [cv2.cvtColor(p, cv2.COLOR_GRAY2BGR) for p in orientations(view)]))
            sure = [(conf, _word_of(text)) for text, conf in readings if conf >= self.cfg.min_confidence]
            if len({side_of(w) for _, w in sure if w in self.cfg.vocabulary} - {""}) > 1:
                return ""  # its placements read both sides (a lit tile's edge "D", its dark letter "L"): no guess
            words = [(conf, w) for conf, w in sure if w in self.words and len(w) >= least]
            if not words:
                continue
            word = max(words)[1]
            if word in MIRRORED_ALIKE and not decides and sum(w == word for _, w in sure) < 2:
                continue  # one such letter read surely in one placement only: no letter, by its symmetry
            return word
        return ""
