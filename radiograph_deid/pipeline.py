"""The main job, one file at a time: read -> de-identify header -> detect -> retain -> redact -> verify -> write.

Fail closed: a file reaches OUTPUT only after every stage succeeded; anything else is copied untouched to the
quarantine folder with the stage and reason. INPUT is only ever read.
"""
from __future__ import annotations

import errno
import logging
import os
import stat
import time
import traceback
from dataclasses import dataclass, replace
from functools import cache, partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from pydicom.dataset import Dataset

from .boxes import Box
from .config import Config
from .detector import MARKER_SOURCE, TEXT_SOURCE, Detector, build_detector
from .dicom_profile import HeaderDeidentifier
from .enums import BoxAction, BoxClass, Decision, NonImagePolicy, Stage
from .fileio import (ReadError, archive_kind, beside, copy_atomic, is_dicom, is_media_directory, read_dicom,
                     read_image, store_pixels, write_bytes_atomic, write_dicom_atomic, write_image_atomic)
from .glyphs import lone_disc, lone_ring
from .known_regions import KnownRegions
from .output_names import OutputNamer
from .pixels import NoPixelData, PixelDataError, PixelFrames, decode_dataset, fill_boxes, frames_from_array, to_display
from .pixels.display import detector_gray
from .pseudonym import Pseudonymizer, load_or_create_key
from .records import ImageRecord, box_record
from .retention import (LateralityRetainer, RetentionResult, laterality_mismatch, normalized_token, side_of,
                        whole_glyph)
from .rulers import SOURCE as RULER
from .stacked_lines import stacked_lines
from .text_lines import bridged_doubts, continued, joined_lines, spanning_unread, with_cut_strokes
from .verify import VerifierTimeout, build_verifier

log = logging.getLogger("radiograph_deid")

SKIP_NAMES = {"DICOMDIR"}
MEDIA_DIRECTORY_SKIPPED = ("a DICOMDIR (the index of a CD or export) is not copied: it names the patients and the "
                           "original UIDs, and would not match the de-identified files")


class StageError(Exception):
    """A stage refused the file; the message is safe to log (no PHI)."""

    def __init__(self, stage: Stage, reason: str, decision: Decision = Decision.QUARANTINED) -> None:
        super().__init__(reason)
        self.stage, self.reason, self.decision = stage, reason, decision


@dataclass(frozen=True)
class Decided:
    """One detected box after retention: what was found, what was decided, the region filled, the pixels kept."""

    box: Box
    action: BoxAction
    fill: Box
    keep: np.ndarray | None  # True where pixels of ``fill`` stay (kept glyphs, this box's or a neighbour's); None: all


@dataclass
class Redaction:
    """What the pixel stages found and did for one image."""

    boxes: list[dict]
    kept: list[Box]
    changed_pixels: int


def sample_frames(n_frames: int, max_frames: int) -> list[int]:
    """Evenly spaced frame indices, first and last included."""
    if n_frames <= max_frames:
        return list(range(n_frames))
    return sorted({int(round(i)) for i in np.linspace(0, n_frames - 1, max_frames)})


def frame_views(px: PixelFrames, max_frames: int) -> list[tuple[str, np.ndarray]]:
    """Display views to search: each sampled frame, and for cine the highest and lowest value each pixel takes
    in any frame, sampled or not: static burned-in text stands out there from moving anatomy, and text stamped
    on one frame the sample passes over shows (bright text in one, dark text in the other)."""
    views = [(str(i), to_display(px, i)) for i in sample_frames(px.frames.shape[0], max_frames)]
    if px.frames.shape[0] > 1:
        ends = replace(px, frames=np.stack([px.frames.max(axis=0), px.frames.min(axis=0)]))
        views += [("max", to_display(ends, 0)), ("min", to_display(ends, 1))]
    return views


def _inside_kept_dropped(decided: list[Decided]) -> list[Decided]:
    """Without the boxes that lie wholly inside a kept marker's fill: the text detector's box on part of the kept
    glyph would fill the very pixels kept, and the kept marker's own fill covers the rest anyway. A marker kept
    twice, its letter boxed inside its tile, is one marker: the inner box's glyph joins the outer's."""
    out = []
    for i, d in enumerate(decided):
        around = [k for j, k in enumerate(decided) if j != i and k.action is BoxAction.KEPT_LATERALITY
                  and k.fill.contains(d.fill) and (k.fill.as_list() != d.fill.as_list() or j < i)]
        outer = max(around, key=lambda k: k.fill.width * k.fill.height, default=None)  # the outermost
        if outer is None:
            out.append(d)
        elif d.action is BoxAction.KEPT_LATERALITY:
            if d.box.text != outer.box.text or outer.keep is None or d.keep is None:
                out.append(d)  # another reading: both stand
            else:
                outer.keep[d.fill.within(outer.fill)] |= d.keep
    return out


def unkept_on_known(decided: list[Decided], known: Sequence[Box]) -> list[Decided]:
    """A marker kept on a known region (``known_regions``) is filled with it: the site said nothing there stays."""
    return [replace(d, action=BoxAction.REDACTED, keep=None)
            if d.action is BoxAction.KEPT_LATERALITY and any(d.box.intersection(k) > 0 for k in known) else d
            for d in decided]


def with_known(decided: list[Decided], known: Sequence[Box]) -> list[Decided]:
    """The decisions with the ``known`` regions filled as well, and no marker kept on them (``unkept_on_known``)."""
    return [Decided(k, BoxAction.REDACTED, k, None) for k in known] + unkept_on_known(decided, known)


def _one_side_each(decided: list[Decided]) -> list[Decided]:
    """A marker kept twice, a box inside its tile's box, whose two readings name opposite sides (a framed G,
    gauche, read "G" and its frame around it read "D", droite) is recorded on one reading: the longer word (RIGHT
    over an I, izquierda, read inside it), else the inner box's, read on less of what surrounds the letter. Its
    pixels are kept as before (``_inside_kept_dropped`` joins the two glyphs); no record names both sides."""
    kept = [d for d in decided if d.action is BoxAction.KEPT_LATERALITY]
    reading: dict[int, str] = {}
    for i, inner in enumerate(kept):
        for j, outer in enumerate(kept):
            sides = side_of(inner.box.text), side_of(outer.box.text)
            same = outer.fill.as_list() == inner.fill.as_list()  # one box read twice: the first is taken as outer
            if i == j or not outer.fill.contains(inner.fill) or (same and j > i) or "" in sides \
                    or sides[0] == sides[1]:
                continue
            if len(normalized_token(outer.box.text)) > len(normalized_token(inner.box.text)):
                reading[id(inner)] = outer.box.text
            else:
                reading[id(outer)] = inner.box.text
    return [replace(d, box=replace(d.box, text=reading[id(d)])) if id(d) in reading else d for d in decided]


def _glyphs_spared(decided: list[Decided]) -> list[Decided]:
    """Every fill spares the kept glyphs' pixels, not only the kept marker's own: text boxed beside a marker, its
    fill grown by the margin and along its line, blacked out the L standing next to "ACC42789". Only the glyph's
    pixels are spared (grown a little), never the rest of its box."""
    kept = [d for d in decided if d.action is BoxAction.KEPT_LATERALITY and d.keep is not None]
    out = []
    for d in decided:
        shared = [(k, c) for k in kept if k is not d for c in [d.fill.common(k.fill)] if c is not None]
        if not shared:
            out.append(d)
            continue
        keep = np.zeros((d.fill.height, d.fill.width), bool) if d.keep is None else d.keep.copy()
        for k, c in shared:
            keep[c.within(d.fill)] |= k.keep[c.within(k.fill)]
        out.append(replace(d, keep=keep))
    return out


def _under_fills(kept: RetentionResult, fills: Sequence[Box]) -> float:
    """The share of a kept result's glyph pixels (of its box, without a mask) that ``fills`` cover."""
    covered = np.zeros((kept.box.height, kept.box.width), bool)
    for fill in fills:
        common = kept.box.common(fill)
        if common is not None:
            covered[common.within(kept.box)] = True
    return float(covered[kept.keep_mask].mean() if kept.keep_mask is not None and kept.keep_mask.any()
                 else covered.mean())


def _passes_under(line: Box, marker: Box, rise: float = 0.5) -> bool:
    """Whether a redacted line's fill only passes under a marker standing beside it: the line runs across the
    marker's box without holding its middle, and the marker stands out of the line's band by more than ``rise``
    of the band's height (a technician's initials beside a lead L two of their heights tall: the line, followed
    along its strokes, ran on along the L's foot on its baseline). A letter of the line stays within its band."""
    turned = line.height > line.width
    (a0, a1), (m0, m1) = ((line.x0, line.x1), (marker.x0, marker.x1)) if turned else \
        ((line.y0, line.y1), (marker.y0, marker.y1))
    w, h = marker.width // 3, marker.height // 3
    middle = replace(marker, x0=marker.x0 + w, y0=marker.y0 + h, x1=marker.x1 - w, y1=marker.y1 - h)
    return max(a0 - m0, m1 - a1) > rise * (a1 - a0) and line.intersection(middle) == 0


def _margin(box: Box, fraction: float) -> int:
    """Pixels a box's fill reaches beyond it: ``fraction`` of its short side (a detector's box can cut a
    stroke); a ruler's box already spans its label band on both sides, so it gets the least margin."""
    if box.found_by(RULER):
        return 2
    return max(2, int(fraction * min(box.width, box.height)))


class MarkerDecider:
    """Detect -> retain on one display view: the pixel decisions shared by ``redact`` and ``evaluate``."""

    def __init__(self, cfg: Config, detector: Detector | None = None) -> None:
        self.cfg = cfg
        self.detector = detector or build_detector(cfg.detector)
        self.retainer = LateralityRetainer(cfg.retention)
        # Retention needs a marker that is the same in every frame; cine loops are redacted whole.
        self.cine_retainer = LateralityRetainer(replace(cfg.retention, enabled=False))
        self._doubting: MarkerDecider | None = None if detector is None else self  # a caller's detector is as it is

    def decide(self, view: np.ndarray, retain: bool = True, modality: str = ""
               ) -> tuple[list[tuple[Box, BoxAction]], list[Decided]]:
        """Detect and retain on one display view: the rejected proposals, and each box's fill and keep mask. On a
        modality of ``detector.doubt_modalities`` the marker detector's boxes are doubted up to
        ``detector.doubt_threshold`` (filled when read)."""
        if modality.strip().upper() in self.cfg.detector.doubt_modalities:
            return self._doubter().decide(view, retain)
        gray = detector_gray(view)
        found = self._rings_spared(gray, self.detector(view))
        rejected = [(b, a) for b, a in found if a is BoxAction.REJECTED]
        text = [b for b, a in found if a is not BoxAction.REJECTED]
        unread = [b for b, _ in rejected if b.source == TEXT_SOURCE]
        decided = [self._filled(gray, res, unread)
                   for res in (self.retainer if retain else self.cine_retainer)(view, text)]
        # retention's strictest reading of a doubted box, read once: both steps below ask it of the same doubts
        letter = cache(partial(self.retainer.sure_letter, gray))
        if retain:
            doubted = self._doubted_letters(letter, [b for b, _ in rejected], decided)
            rejected = [(b, a) for b, a in rejected if all(b is not box for box, _ in doubted)]
            decided += [self._filled(gray, kept) for _, kept in doubted]
        if self.cfg.detector.complete_lines:
            bridged = self._doubts_on_lines(letter, [b for b, _ in rejected], decided)
            rejected = [(b, a) for b, a in rejected if all(b is not doubt for doubt, _ in bridged)]
            decided += [self._filled(gray, RetentionResult(line, BoxAction.REDACTED, None), unread)
                        for _, line in bridged]
        if self.cfg.detector.stacked_lines:
            decided += [self._filled(gray, RetentionResult(line, BoxAction.REDACTED, None), unread)
                        for line in self._stacked(gray, decided)]
        if self.cfg.detector.complete_lines:
            lines = [(d.box, d.fill) for d in decided if d.action is BoxAction.REDACTED and not d.box.found_by(RULER)]
            decided += [Decided(gap, BoxAction.REDACTED, gap, None) for gap in joined_lines(gray, lines)]
        return rejected, _glyphs_spared(_inside_kept_dropped(_one_side_each(decided)))

    def _stacked(self, gray: np.ndarray, decided: list[Decided]) -> list[Box]:
        """The lines stacked on the redacted boxes' lines (``stacked_lines``: a viewer's overlay block of which
        the detectors boxed one line, or the block short of its lines' ends), clear of the kept markers."""
        redacted = [d for d in decided if d.action is BoxAction.REDACTED and not d.box.found_by(RULER)]
        if not redacted:
            return []
        kept = [d.box for d in decided if d.action is BoxAction.KEPT_LATERALITY]
        return stacked_lines(gray, [d.box for d in redacted], kept, self.retainer.reader().batch,
                             self.cfg.detector.confirm_confidence, reach=[d.fill for d in redacted])

    def _doubter(self) -> MarkerDecider:
        """This decider with ``detector.doubt_threshold`` for ``score_threshold``, built when first needed."""
        if self._doubting is None:
            det = replace(self.cfg.detector, score_threshold=self.cfg.detector.doubt_threshold, doubt_modalities=())
            self._doubting = MarkerDecider(replace(self.cfg, detector=det))
        return self._doubting

    def _rings_spared(self, gray: np.ndarray, found: list[tuple[Box, BoxAction]]) -> list[tuple[Box, BoxAction]]:
        """The marker detector's boxes that hold a ring alone (``glyphs.lone_ring``: an ECG electrode, a nipple
        marker, a ring drawn round a finding) or a spot alone (``glyphs.lone_disc``: a speck of dust, a small
        calcification) rejected: no text is in them, and a fill would black out what the ring marks or what the
        spot is. Boxes any reader read stay as they are."""
        if not self.cfg.detector.spare_rings:
            return found
        return [(b, BoxAction.REJECTED if a is not BoxAction.REJECTED and b.source == MARKER_SOURCE and not b.text
                 and (lone_ring(gray, b.x0, b.y0, b.x1, b.y1) or lone_disc(gray, b.x0, b.y0, b.x1, b.y1))
                 else a) for b, a in found]

    def _filled(self, gray: np.ndarray, res: RetentionResult, unread: Sequence[Box] = ()) -> Decided:
        """The region a decided box fills (its margin; the rest of its text line, as its strokes continue and as
        far as a text region proposed around it but not read reaches) and the pixels kept in it."""
        margin = _margin(res.box, self.cfg.detector.margin_fraction)
        line = res.box
        if self.cfg.detector.complete_lines and res.keep_mask is None:
            line = spanning_unread(continued(gray, res.box), res.box, unread)
            if not res.box.found_by(RULER):  # its box spans its label band already (``_margin``)
                line = with_cut_strokes(gray, line, res.box)
        grown = line.expanded(margin, gray.shape[:2])
        keep = None
        if res.keep_mask is not None:
            keep = np.zeros((grown.height, grown.width), bool)
            keep[res.box.within(grown)] = res.keep_mask
            keep = whole_glyph(gray[grown.y0 : grown.y1, grown.x0 : grown.x1], keep, res.box.within(grown))
        return Decided(res.box, res.action, grown, keep)

    @staticmethod
    def _doubts_on_lines(letter: Callable[[Box], RetentionResult | None], doubted: list[Box], decided: list[Decided]
                         ) -> list[tuple[Box, Box]]:
        """(doubt, line) for the marker detector's doubted boxes on the text line of a redacted box, each bridged
        to it (``text_lines.bridged_doubts``): the detector boxed the L of a dot-matrix "L:1.2" surely and doubted
        "1.2". Left out: a doubt inside a fill already, and a lone L or R (retention's strictest reading,
        ``letter``), which stays as it was: a marker beside a name is not filled for it. Doubts with no redacted box
        on their line stay rejected, however they line up: the steps of a grey-scale wedge are a row of doubts
        too."""
        lines = [d.fill for d in decided if d.action is BoxAction.REDACTED and not d.box.found_by(RULER)]
        doubts = [b for b in doubted if b.found_by(MARKER_SOURCE) and not any(d.fill.contains(b) for d in decided)
                  and (b.label is not BoxClass.LATERALITY or letter(b) is None)]
        return [(doubt, replace(line, label=BoxClass.OTHER_MARKER, source=f"{doubt.source}+line"))
                for doubt, line in bridged_doubts(doubts, lines)]

    @staticmethod
    def _doubted_letters(letter: Callable[[Box], RetentionResult | None], doubted: list[Box], decided: list[Decided]
                         ) -> list[tuple[Box, RetentionResult]]:
        """(box, kept) for the laterality boxes the marker detector doubted (scored below its threshold) that hold
        a letter on retention's strictest reading (``letter``: ``LateralityRetainer.sure_letter``), clear of the
        decided boxes' fills (a fifth of its glyph under them at most). Such an L or R stays in the image either way;
        kept, its side is recorded (and cross-checked against the header) and anything boxed beside it is filled. A
        clear lead L alone in a film's corner scored 0.33. A doubt on a letter of a name or inside a ruler's band
        lies in a decided box's fill and is left alone; a line's fill that only passes under a marker standing out
        of its band (``_passes_under``) does not count."""
        out = []
        for box in doubted:
            if box.label is not BoxClass.LATERALITY or not box.found_by(MARKER_SOURCE):
                continue
            fills = [d.fill for d in decided if not _passes_under(d.box, box)]
            if not any(2 * box.intersection(fill) > box.width * box.height for fill in fills):
                kept = letter(box)
                if kept is not None and _under_fills(kept, fills) < 0.2:
                    # recorded as found by the detector and confirmed by the glyph classifier
                    out.append((box, replace(kept, box=replace(kept.box, source=f"{box.source}+glyph"))))
        return out


class Redactor:
    """Holds the models for a run; ``process`` handles one file."""

    def __init__(self, cfg: Config, detector: Detector | None = None) -> None:
        self.cfg = cfg
        self._t_stage = 0.0
        self._before_write: Callable[[Path], None] | None = None
        self.markers = MarkerDecider(cfg, detector)
        self.known = KnownRegions.configured(cfg.detector.known_regions)
        self.verifier = build_verifier(cfg.verify) if cfg.verify.enabled else None
        pseudonymizer = Pseudonymizer(load_or_create_key(cfg.header.key_file), cfg.header.pseudonym_prefix,
                                      cfg.header.max_date_shift_days)
        self.header = HeaderDeidentifier(cfg.header, pseudonymizer)
        self.names = OutputNamer(cfg.output.names, pseudonymizer)

    # -- the stages -------------------------------------------------------------------------------------------
    def read(self, path: Path, rec: ImageRecord) -> tuple[Dataset | None, PixelFrames | None]:
        if is_dicom(path):
            rec.kind = "dicom"
            ds = read_dicom(path)
            rec.modality = str(ds.get("Modality", "") or "")
            try:
                return ds, decode_dataset(ds, self.cfg.input.max_pixels_per_frame, self.cfg.input.max_frames)
            except NoPixelData:
                return ds, None
        if path.suffix.lower() in self.cfg.input.image_extensions:
            rec.kind = "image"
            return None, frames_from_array(read_image(path, self.cfg.input.max_pixels_per_frame))
        archive = archive_kind(path)
        if archive:
            raise StageError(Stage.READ, f"a {archive} archive: what it holds was not searched; unpack it under INPUT "
                                         "and run again", Decision.SKIPPED)
        raise StageError(Stage.READ, "not a DICOM file or a supported image", Decision.SKIPPED)

    def detect_retain_redact(self, px: PixelFrames, modality: str = "", known: Sequence[Box] = ()) -> Redaction:
        """Detect on the sampled views, decide per box (keep an isolated laterality glyph or fill), fill; and fill
        the ``known`` regions (``known_regions``) on every frame, where no marker is kept."""
        multi = px.frames.shape[0] > 1
        records: list[dict] = [box_record(b, BoxAction.REDACTED) for b in known]
        fills: list[Box] = list(known)
        masks: list[np.ndarray | None] = [None] * len(known)
        kept: list[Box] = []
        for name, view in frame_views(px, self.cfg.verify.max_frames):
            rejected, decided = self.markers.decide(view, retain=not multi, modality=modality)
            records += [box_record(b, a, name if multi else "") for b, a in rejected]
            for d in unkept_on_known(decided, known):
                if d.action is BoxAction.KEPT_LATERALITY:
                    kept.append(d.box)
                fills.append(d.fill)
                masks.append(d.keep)
                records.append(box_record(d.fill, d.action, name if multi else ""))
        changed = fill_boxes(px, fills, masks) if fills else 0
        return Redaction(records, kept, changed)

    def verify(self, px: PixelFrames, kept: Sequence[Box], rec: ImageRecord) -> None:
        if self.verifier is None:
            rec.verification = {"engine": "none", "checked": False}
            return
        findings = []
        for name, view in frame_views(px, self.cfg.verify.max_frames):
            try:
                findings += [(name, f) for f in self.verifier(view, kept)]
            except VerifierTimeout as exc:
                raise StageError(Stage.VERIFY, f"the safety net could not check the image: {exc} (a page of noise "
                                               "or dense texture); review by hand, or raise verify.timeout_s") from None
        rec.verification = {
            "engine": self.cfg.verify.engine, "checked": True,
            "findings": [{"box": f.box.as_list(), "confidence": f.confidence, "chars": f.n_chars, "view": n}
                         for n, f in findings],
        }
        if findings:
            raise StageError(Stage.VERIFY, f"{len(findings)} text region(s) still readable after redaction; "
                                           "review by hand (boxes in the record)")

    # -- one file ---------------------------------------------------------------------------------------------
    def process(self, src: Path, rel: Path, out_root: Path, quarantine: Path,
                before_write: Callable[[Path], None] | None = None) -> ImageRecord:
        """The file's record; its output under ``out_root``, or its copy in ``quarantine``. ``before_write`` is
        told the output's path, relative to ``out_root``, just before it is written: a caller whose process may
        die there keeps note of it (``worker_pool``)."""
        self._before_write = before_write
        try:
            st = src.stat()
            if stat.S_ISREG(st.st_mode):  # opening a named pipe would wait for a writer, for ever
                with open(src, "rb"):
                    pass
        except OSError as exc:  # nothing to redact, nor to copy to quarantine
            return ImageRecord(input=rel.as_posix(), input_size=0, input_mtime_ns=0, decision=Decision.SKIPPED,
                               reason=f"the file cannot be read ({exc.strerror}): a broken link, or no permission "
                                      "to read it; mend it and run again")
        if not stat.S_ISREG(st.st_mode):
            return ImageRecord(input=rel.as_posix(), input_size=0, input_mtime_ns=0, decision=Decision.SKIPPED,
                               reason="not a regular file (a named pipe, socket or device): nothing to read")
        rec = ImageRecord(input=rel.as_posix(), input_size=st.st_size, input_mtime_ns=st.st_mtime_ns)
        t0 = self._t_stage = time.perf_counter()
        try:
            self._process(src, rel, out_root, rec)
        except StageError as exc:
            rec.stage, rec.reason, rec.decision = exc.stage, exc.reason, exc.decision
        except (ReadError, PixelDataError) as exc:
            rec.reason, rec.decision = str(exc), Decision.QUARANTINED
        except Exception as exc:  # a crash: the message may quote header values, so only its type and place
            _raise_if_no_room(exc, out_root)
            where = traceback.extract_tb(exc.__traceback__)[-1]
            rec.reason = f"internal error {type(exc).__name__} at {Path(where.filename).name}:{where.lineno}; please report"
            rec.decision = Decision.QUARANTINED
        self._lap(rec)  # the last stage, whichever way it ended
        if rec.decision is Decision.QUARANTINED:
            rec.reason = rec.reason or f"stopped at {rec.stage.value} without a result; please report"
            try:
                to_quarantine(src, rel, quarantine, rec)
            except OSError as exc:
                _raise_if_no_room(exc, quarantine)
                raise
        rec.seconds = time.perf_counter() - t0
        return rec

    def _lap(self, rec: ImageRecord) -> None:
        """Add the time since the last lap to the stage now recorded."""
        now = time.perf_counter()
        rec.timings[rec.stage.value] = round(rec.timings.get(rec.stage.value, 0.0) + now - self._t_stage, 4)
        self._t_stage = now

    def _enter(self, rec: ImageRecord, stage: Stage) -> None:
        self._lap(rec)
        rec.stage = stage

    def _process(self, src: Path, rel: Path, out_root: Path, rec: ImageRecord) -> None:
        rec.stage = Stage.READ
        if src.name.upper() in SKIP_NAMES:
            raise StageError(Stage.READ, MEDIA_DIRECTORY_SKIPPED, Decision.SKIPPED)
        ds, px = self.read(src, rec)
        signature = self.known.values(ds)  # before the header stage replaces what a rule may match on
        if ds is not None:
            if is_media_directory(ds):
                raise StageError(Stage.READ, MEDIA_DIRECTORY_SKIPPED, Decision.SKIPPED)
            rec.laterality = {k: str(ds.get(k, "") or "") for k in ("ImageLaterality", "Laterality")}
            self._enter(rec, Stage.HEADER)
            rec.header_actions = self.header(ds).as_records()
            if px is None:
                if self.cfg.input.non_image is NonImagePolicy.SKIP:
                    raise StageError(Stage.READ, "DICOM object without pixel data; set input.non_image=header_only "
                                             "to de-identify its header", Decision.SKIPPED)
                if "EncapsulatedDocument" in ds:  # a PDF or CDA report: names and dates inside it, out of reach
                    raise StageError(Stage.HEADER, "an encapsulated document (a PDF or CDA report) may hold "
                                     "identifiers the header profile cannot remove; it is not written")
                self._enter(rec, Stage.WRITE)
                self._write_dicom(ds, None, out_root, rel, rec)
                rec.decision = Decision.WRITTEN
                return
        assert px is not None
        rec.frames, (rec.rows, rec.columns) = int(px.frames.shape[0]), px.shape
        self._enter(rec, Stage.DETECT)
        red = self.detect_retain_redact(px, rec.modality, self.known.boxes(signature, *px.shape))
        rec.boxes, rec.unused_bits_cleared = red.boxes, px.unused_bits_cleared
        rec.pixels_modified = red.changed_pixels > 0 or px.unused_bits_cleared > 0
        rec.laterality["kept"] = sorted({b.text for b in red.kept})
        tags = [rec.laterality.get(k, "") for k in ("ImageLaterality", "Laterality")]
        rec.laterality["mismatch"] = laterality_mismatch(tags, rec.laterality["kept"])
        self._enter(rec, Stage.VERIFY)
        self.verify(px, red.kept, rec)
        self._enter(rec, Stage.WRITE)
        if ds is not None:
            self._write_dicom(ds, px, out_root, rel, rec)
        else:
            dst = self.names.image(rel)
            self._announce(dst)
            write_image_atomic(px.frames[0], out_root / dst)
            rec.output = dst.as_posix()
        rec.decision = Decision.WRITTEN

    def _write_dicom(self, ds: Dataset, px: PixelFrames | None, out_root: Path, rel: Path, rec: ImageRecord) -> None:
        if px is not None:
            ts = str(ds.file_meta.TransferSyntaxUID)
            if rec.pixels_modified or ts in ("1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"):
                store_pixels(ds, px)  # big-endian and deflated inputs are rewritten too (losslessly)
            self.header.stamp_methods(ds, pixels_cleaned=self.verifier is not None)
        dst = self.names.dicom(rel, ds)
        self._announce(dst)
        write_dicom_atomic(ds, out_root / dst)
        rec.output = dst.as_posix()

    def _announce(self, dst: Path) -> None:
        if self._before_write is not None:
            self._before_write(dst)


class OutputUnwritable(RuntimeError):
    """OUTPUT or the quarantine folder takes no more (disk full, quota, read-only): the run stops, since every
    file after would fail alike; the file was not at fault and is done again on the next run."""


_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
_NO_RIGHT = {errno.EACCES, errno.EPERM}


def _raise_if_no_room(exc: BaseException | None, folder: Path) -> None:
    """OutputUnwritable if ``exc``, or an error it was raised from (pydicom re-raises a write's error with the tag
    it was writing, and no errno), is a full or read-only disk, or a folder under ``folder`` this user may not
    write to (an OUTPUT made by another user): every file after would fail alike."""
    while exc is not None:
        if isinstance(exc, OSError) and (exc.errno in _NO_ROOM or (exc.errno in _NO_RIGHT and _under(exc, folder))):
            raise OutputUnwritable(f"cannot write under {folder}: {exc.strerror}. Make room (or make it writable) "
                                   "and run again: finished files are skipped") from None
        exc = exc.__cause__ or exc.__context__


def _under(exc: OSError, folder: Path) -> bool:
    return bool(exc.filename) and Path(os.fsdecode(exc.filename)).resolve().is_relative_to(folder.resolve())


def to_quarantine(src: Path, rel: Path, quarantine: Path, rec: ImageRecord) -> None:
    """The input copied untouched to the quarantine folder, its record (with the reason) beside it."""
    rec.output = ""
    rec.pixels_modified = False
    quarantine.mkdir(mode=0o700, parents=True, exist_ok=True)  # it holds originals: made open to this user alone
    copy_atomic(src, quarantine / rel)
    write_bytes_atomic(quarantine / beside(rel, ".reason.json"), rec.to_json().encode())


def refused_untouched(src: Path, rel: Path, quarantine: Path, reason: str, stage: Stage = Stage.WRITE) -> ImageRecord:
    """The record of an input refused before it was read, or whose process died with it in work, copied untouched
    to quarantine (refused at WRITE: tried again by the next run)."""
    st = src.stat()
    rec = ImageRecord(input=rel.as_posix(), input_size=st.st_size, input_mtime_ns=st.st_mtime_ns,
                      decision=Decision.QUARANTINED, stage=stage, reason=reason)
    to_quarantine(src, rel, quarantine, rec)
    return rec
