"""The paper's metrics on a labelled set: detector AP, de-identification accuracy, false boxes, retention.

Each image goes through the same detect -> retain decisions as ``redact`` (``Redactor.decide``) on its display
view at original resolution, and the decisions are scored against hand or synthetic labels:

* detector: AUPRC (class-agnostic average precision at IoU 0.5) and mAP50 (mean over the two classes), of the
  detectors' boxes (a known region filled is no detection; it counts in the figures below);
* de-identification accuracy: images whose every non-laterality marker is filled (>= ``cover`` of its box),
  over all images (the paper's definition: a laterality marker left as it was is a retention matter);
* false-positive rate: filled or kept boxes that overlap no labelled marker, over all such boxes;
* retention accuracy: labelled laterality markers kept (most of the kept glyph's pixels inside the label, the
  side it names right, the glyph still there after every fill), over all labelled laterality markers;
* kept naming the wrong side: kept markers on a laterality label whose reading names the other side (a ringed
  LEFT kept as "D", right in French): the record, and the header cross-check, would state the wrong side;
* the image area filled black (mean share per image), and of it the area outside every labelled marker: the
  diagnostic pixels a fill margin, a false box or a line followed too far costs;
* with a verifier (``evaluate --verify``), what the safety net makes of it: images that would be written with a
  marker left (not de-identified and not quarantined), and de-identified images it would quarantine.

A laterality label whose word is not in the configured vocabulary (the synthetic set also holds other sites'
words: D/I, DX/SX, LT/RT, ...) is scored as a marker to remove, as ``redact`` treats it; with retention off,
every laterality label is.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import cv2
import numpy as np

from .boxes import Box, iou
from .enums import BoxAction, BoxClass
from .known_regions import KnownRegions
from .labels import LabelledBox, LabelledImage
from .retention import normalized_token, side_of


@dataclass
class ImageScore:
    file: str
    deidentified: bool
    false_boxes: int
    boxes: int
    laterality_total: int
    laterality_kept: int
    missed: list[str] = field(default_factory=list)  # labels of markers left readable (no PHI: label text only)
    seconds: float = 0.0
    quarantined: bool | None = None  # the verifier's verdict on the redacted view (None: not run)
    filled_share: float = 0.0  # of the image's pixels, filled black
    excess_share: float = 0.0  # of the image's pixels, filled outside every labelled marker
    wrong_side: int = 0  # kept markers on a laterality label, read as the other side
    left_labels: list[int] = field(default_factory=list)  # indices of the labels left readable ...
    unkept_labels: list[int] = field(default_factory=list)  # ... and of the laterality labels not kept
    false_box_xyxy: list[list[int]] = field(default_factory=list)  # the false boxes (no label under them)


@dataclass
class Metrics:
    images: int
    deid_accuracy: float
    false_positive_rate: float
    retention_accuracy: float
    auprc: float
    map50: float
    ap50: dict[str, float]
    boxes: int
    false_boxes: int
    laterality_markers: int
    laterality_kept: int
    seconds_per_image: float
    written_with_marker: int | None = None  # not de-identified, and the safety net let it through
    quarantined_clean: int | None = None  # de-identified, yet the safety net quarantined it
    filled_share: float = 0.0  # mean over images: share of the image filled black ...
    excess_share: float = 0.0  # ... and of it, outside every labelled marker (margins, false boxes, overruns)
    wrong_side: int = 0  # kept markers read as the other side than their label's

    def table(self) -> str:
        rows = [("images", f"{self.images}"), ("de-identification accuracy", f"{self.deid_accuracy:.1%}"),
                ("false-positive rate (false boxes / boxes)", f"{self.false_positive_rate:.1%} ({self.false_boxes}/{self.boxes})"),
                ("retention accuracy (kept / laterality)", f"{self.retention_accuracy:.1%} ({self.laterality_kept}/{self.laterality_markers})"),
                ("kept naming the wrong side", f"{self.wrong_side}"),
                ("detector AUPRC (class-agnostic, IoU 0.5)", f"{self.auprc:.3f}"),
                ("detector mAP50", f"{self.map50:.3f} " + " ".join(f"{k}={v:.3f}" for k, v in self.ap50.items())),
                ("image area filled (mean; outside labels)", f"{self.filled_share:.2%}; {self.excess_share:.2%}"),
                ("seconds per image (detect + retain)", f"{self.seconds_per_image:.3f}")]
        if self.written_with_marker is not None:
            missed = round(self.images * (1 - self.deid_accuracy))
            rows += [("after the safety net: written with a marker left", f"{self.written_with_marker}/{missed} "
                      "images not de-identified"),
                     ("after the safety net: quarantined though clean", f"{self.quarantined_clean}/{self.images - missed}"
                      " de-identified images")]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _overlap(a: Sequence[int], b: Sequence[int]) -> float:
    """Fraction of box ``a`` covered by box ``b``."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy / max(1, (a[2] - a[0]) * (a[3] - a[1]))


def average_precision(scored: Sequence[tuple[float, bool]], n_positive: int) -> float:
    """All-point interpolated AP from (score, is_true_positive) pairs."""
    if n_positive == 0:
        return float("nan")
    order = sorted(scored, key=lambda s: -s[0])
    tp = np.cumsum([t for _, t in order], dtype=float)
    fp = np.cumsum([not t for _, t in order], dtype=float)
    recall = np.concatenate([[0.0], tp / n_positive])
    precision = np.concatenate([[1.0], tp / np.maximum(tp + fp, 1)])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(recall) * precision[1:]))


def _match(preds: Sequence[tuple[Sequence[int], float]], truth: Sequence[Sequence[int]], thr: float = 0.5) -> list[tuple[float, bool]]:
    used: set[int] = set()
    out = []
    for xyxy, score in sorted(preds, key=lambda p: -p[1]):
        best, j = 0.0, -1
        for k, t in enumerate(truth):
            if k not in used and iou(xyxy, t) > best:
                best, j = iou(xyxy, t), k
        hit = best >= thr
        if hit:
            used.add(j)
        out.append((score, hit))
    return out


def score_image(file: str, shape: tuple[int, int], labels: Sequence[LabelledBox], decided: Sequence,  # type: ignore[type-arg]
                cover: float = 0.85, vocabulary: Sequence[str] | None = None) -> ImageScore:
    """Score one image's decisions (``pipeline.Decided``) against its labels; ``vocabulary``: the laterality
    words retention keeps (None: every laterality label is one to keep)."""
    filled = filled_mask(shape, decided)
    lat_total, wrong, left, unkept = 0, 0, [], []
    for i, lab in enumerate(labels):
        x0, y0, x1, y1 = lab.xyxy
        frac = float(filled[y0:y1, x0:x1].mean()) if (y1 > y0 and x1 > x0) else 1.0
        if lab.cls is BoxClass.LATERALITY and _in_vocabulary(lab.text, vocabulary):
            lat_total += 1
            kept = [d for d in decided if d.action is BoxAction.KEPT_LATERALITY and _kept_in(d, lab.xyxy) > 0.5
                    and _survives(d, filled)]
            if not any(_reads_as(d.box.text, lab.text) for d in kept):
                unkept.append(i)
            wrong += sum(_other_side(d.box.text, lab.text) for d in kept)
        elif frac < cover:
            left.append(i)
    false = [d.box.as_list() for d in decided if all(_overlap(d.box.as_list(), lab.xyxy) < 0.1
                                                     and _overlap(lab.xyxy, d.box.as_list()) < 0.1 for lab in labels)]
    marked = np.zeros(shape, bool)
    for lab in labels:
        marked[lab.xyxy[1] : lab.xyxy[3], lab.xyxy[0] : lab.xyxy[2]] = True
    return ImageScore(file, not left, len(false), len(decided), lat_total, lat_total - len(unkept),
                      ["text"] * len(left), filled_share=float(filled.mean()),
                      excess_share=float((filled & ~marked).mean()), wrong_side=wrong, left_labels=left,
                      unkept_labels=unkept, false_box_xyxy=false)


def _kept_in(kept, xyxy: Sequence[int]) -> float:  # type: ignore[no-untyped-def]
    """Share of the kept glyph's pixels inside the label box (of the kept box, when no glyph mask): a marker
    kept in a box much larger than its label (a tile, a line read around it) keeps the label's glyph all the
    same."""
    if kept.keep is None or not kept.keep.any():
        return _overlap(kept.box.as_list(), xyxy)
    ys, xs = np.nonzero(kept.keep)
    xs, ys = xs + kept.fill.x0, ys + kept.fill.y0
    inside = (xs >= xyxy[0]) & (xs < xyxy[2]) & (ys >= xyxy[1]) & (ys < xyxy[3])
    return float(inside.mean())


def _survives(kept, filled: np.ndarray, share: float = 0.9) -> bool:  # type: ignore[no-untyped-def]
    """Whether the kept glyph is still there once every box is filled: a neighbouring box's fill can cover it."""
    if kept.keep is None or not kept.keep.any():
        return True
    region = filled[kept.fill.y0 : kept.fill.y1, kept.fill.x0 : kept.fill.x1]
    return float((~region[kept.keep]).mean()) >= share


def _reads_as(kept: str, label: str) -> bool:
    """Whether a marker kept reading ``kept`` is the labelled one: it names the label's side (a circled LEFT kept
    as "D", right in French and Spanish, is not retained; a Spanish I kept as "L" is), else it is the label's
    letter; anything is for an unread label."""
    label = label.strip().upper()
    if side_of(label):
        return side_of(kept) == side_of(label)
    return not label or len(label) > 1 or kept == label


def _other_side(kept: str, label: str) -> bool:
    """Whether a marker kept reading ``kept`` names a side, and not the side its label names."""
    named, labelled = side_of(kept), side_of(label.strip())
    return bool(named and labelled) and named != labelled


def _in_vocabulary(text: str, vocabulary: Sequence[str] | None) -> bool:
    word = normalized_token(text)
    return vocabulary is None or not word or word in {normalized_token(v) for v in vocabulary}


def summarise(scores: Sequence[ImageScore], detections: Sequence[tuple[Sequence[LabelledBox], list[tuple[Box, float]]]]) -> Metrics:
    agnostic: list[tuple[float, bool]] = []
    per_class: dict[str, list[tuple[float, bool]]] = {c.value: [] for c in BoxClass}
    n_all, n_cls = 0, {c.value: 0 for c in BoxClass}
    for labels, preds in detections:
        truth = [lab.xyxy for lab in labels]
        n_all += len(truth)
        agnostic += _match([(b.as_list(), s) for b, s in preds], truth)
        for c in BoxClass:
            t = [lab.xyxy for lab in labels if lab.cls is c]
            n_cls[c.value] += len(t)
            per_class[c.value] += _match([(b.as_list(), s) for b, s in preds if b.label is c], t)
    ap50 = {k: average_precision(v, n_cls[k]) for k, v in per_class.items()}
    valid = [v for v in ap50.values() if not np.isnan(v)]
    boxes = sum(s.boxes for s in scores)
    false = sum(s.false_boxes for s in scores)
    lat = sum(s.laterality_total for s in scores)
    kept = sum(s.laterality_kept for s in scores)
    verified = bool(scores) and all(s.quarantined is not None for s in scores)
    return Metrics(len(scores), float(np.mean([s.deidentified for s in scores])) if scores else float("nan"),
                   false / boxes if boxes else 0.0, kept / lat if lat else float("nan"),
                   average_precision(agnostic, n_all), float(np.mean(valid)) if valid else float("nan"), ap50,
                   boxes, false, lat, kept, float(np.mean([s.seconds for s in scores])) if scores else 0.0,
                   sum(not s.deidentified and not s.quarantined for s in scores) if verified else None,
                   sum(s.deidentified and bool(s.quarantined) for s in scores) if verified else None,
                   float(np.mean([s.filled_share for s in scores])) if scores else 0.0,
                   float(np.mean([s.excess_share for s in scores])) if scores else 0.0,
                   sum(s.wrong_side for s in scores))


def filled_mask(shape: tuple[int, int], decided: Sequence) -> np.ndarray:  # type: ignore[type-arg]
    """Where ``redact`` fills: each decided box's fill but for its kept glyph."""
    filled = np.zeros(shape, bool)
    for d in decided:
        region = filled[d.fill.y0 : d.fill.y1, d.fill.x0 : d.fill.x1]
        region |= True if d.keep is None else ~d.keep
    return filled


def redacted_view(view: np.ndarray, decided: Sequence) -> np.ndarray:  # type: ignore[type-arg]
    """The display view as ``redact`` leaves it: filled black where ``filled_mask`` says."""
    out = view.copy()
    out[filled_mask(view.shape[:2], decided)] = 0
    return out


def evaluate(redactor, items: Iterable[tuple[str, np.ndarray, Sequence[LabelledBox]]],  # type: ignore[no-untyped-def]
             verifier=None, values: Mapping[str, Mapping[str, str]] | None = None,
             known: KnownRegions | None = None, misses: Path | None = None) -> tuple[Metrics, list[ImageScore]]:
    """Run ``redactor.decide`` on each (name, display view, labels), fill the known regions (``known``, else the
    configured ones) that match it as ``redact`` does (``values``: each name's header values, for rules that
    match on them), and score it against the redactor's laterality vocabulary; with a ``verifier``
    (``verify.build_verifier``), also its verdict on the result; with ``misses``, each label left readable, each
    laterality label not kept and each false box written there as a before/after crop (``write_misses``)."""
    import time

    from .known_regions import from_rule
    from .pipeline import with_known

    retention = redactor.cfg.retention
    vocabulary = tuple(retention.vocabulary) if retention.enabled else ()
    known = known if known is not None else KnownRegions.configured(redactor.cfg.detector.known_regions)
    scores, detections = [], []
    for name, view, labels in items:
        t = time.perf_counter()
        _, decided = redactor.decide(view)
        decided = with_known(decided, known.boxes((values or {}).get(name, {}), *view.shape[:2]))
        preds = [(d.box, d.box.score) for d in decided if not from_rule(d.box.source)]  # the detectors' own boxes
        score = score_image(name, view.shape[:2], labels, decided, vocabulary=vocabulary)
        score.seconds = time.perf_counter() - t
        redacted = redacted_view(view, decided) if verifier is not None or misses is not None else None
        if verifier is not None:
            kept = [d.box for d in decided if d.action is BoxAction.KEPT_LATERALITY]
            score.quarantined = bool(verifier(redacted, kept))
        if misses is not None:
            write_misses(misses, name, view, redacted, labels, score)
        scores.append(score)
        detections.append((labels, preds))
    return summarise(scores, detections), scores


def write_misses(folder: Path, name: str, view: np.ndarray, redacted: np.ndarray, labels: Sequence[LabelledBox],
                 score: ImageScore) -> list[Path]:
    """Each label the image's score lists as left readable (``-left``) or as a laterality marker not kept
    (``-unkept``), and each false box (``-false``, numbered in the image), as a PNG under ``folder``: the image
    around the label or box before and after the fills (``redacted``: ``redacted_view``), side by side, it
    outlined in red. What a site looks at before it trusts the figures: the crops show the text left, so they
    belong where the images are."""
    stem = name.replace("/", "__").replace("\\", "__")
    crops = [(f"{i}-{kind}", labels[i].xyxy) for kind, indices in (("left", score.left_labels),
                                                                  ("unkept", score.unkept_labels)) for i in indices]
    crops += [(f"{k}-false", xyxy) for k, xyxy in enumerate(score.false_box_xyxy)]
    if crops:
        folder.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, xyxy in crops:
        path = folder / f"{stem}-{suffix}.png"
        cv2.imwrite(str(path), before_after(view, redacted, xyxy))
        written.append(path)
    return written


def before_after(view: np.ndarray, redacted: np.ndarray, xyxy: Sequence[int], least: int = 240) -> np.ndarray:
    """The two views around ``xyxy`` (a margin of the label's longer side, at least 30 px), side by side, the label
    outlined in red on both, enlarged to ``least`` px high where smaller (BGR, for ``cv2.imwrite``)."""
    x0, y0, x1, y1 = (int(v) for v in xyxy)
    m = max(30, x1 - x0, y1 - y0)
    h, w = view.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)
    panels = []
    for v in (view, redacted):
        crop = np.ascontiguousarray(v[cy0:cy1, cx0:cx1])
        crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR) if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)
        scale = max(1, int(np.ceil(least / max(1, crop.shape[0]))))
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        cv2.rectangle(crop, ((x0 - cx0) * scale, (y0 - cy0) * scale), ((x1 - cx0) * scale - 1, (y1 - cy0) * scale - 1),
                      (0, 0, 255), 1)
        panels.append(crop)
    gap = np.full((panels[0].shape[0], 6, 3), 255, np.uint8)
    return np.concatenate([panels[0], gap, panels[1]], axis=1)


def labelled_items(images: Sequence[LabelledImage], root: Path) -> Iterator[tuple[str, np.ndarray, Sequence[LabelledBox]]]:
    """Each labelled image's first-frame display view, read and windowed exactly as ``redact`` does."""
    from .fileio import ReadError, read_frames
    from .pixels import to_display

    for im in images:
        if not (root / im.file).is_file():
            raise FileNotFoundError(f"labelled image not found: {root / im.file} (is --data-root right?)")
        try:
            view = to_display(read_frames(root / im.file), 0)
        except ReadError as exc:
            raise FileNotFoundError(f"labelled image not readable: {root / im.file}: {exc}") from exc
        yield im.file, view, im.boxes


def synthetic_items(backgrounds: Sequence, n: int, seed: int) -> Iterator[tuple[str, np.ndarray, Sequence[LabelledBox]]]:  # type: ignore[type-arg]
    """The held-out synthetic split: ``n`` images on validation backgrounds, at full resolution."""
    from .marker_dataset import Background, _load, degrade, synthesize

    rng = np.random.default_rng(seed)
    for i in range(n):
        bg = backgrounds[int(rng.integers(len(backgrounds)))] if backgrounds and rng.random() > 0.1 else Background("")
        img, real = _load(bg, rng)
        img, placed = synthesize(img, rng, real)
        full = (degrade(img, rng) * 255).astype(np.uint8)
        yield f"synthetic-{seed}-{i:05d}", full, [LabelledBox(p.xyxy, p.cls, p.text) for p in placed]


def write_report(path: Path, metrics: Metrics, scores: Sequence[ImageScore]) -> None:
    path.write_text(json.dumps({"metrics": asdict(metrics), "images": [asdict(s) for s in scores]}, indent=1))
