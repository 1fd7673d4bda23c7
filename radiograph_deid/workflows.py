"""What a lab server or a bundle does with single images, shared by the CLI, the MONAI bundle and the MONAI Label
app so that each is a thin layer: find the markers of one image (boxes a person can correct), redact one file
(fail-closed, exactly as ``redact`` does for a folder), and a fine-tuning round on corrected boxes.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import threading
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any, Sequence

import cv2

from .active_learning import UncertaintyScorer
from .boxes import Box
from .config import Config
from .enums import BoxAction, Decision
from .fileio import ReadError, read_view
from .known_regions import KnownRegions, from_rule, header_values
from .labels import LabelledBox, LabelledImage, LabelError, parse_boxes
from .markups import PixelGeometry, roi_markups
from .model_store import ModelStore, ModelVersion
from .pipeline import MarkerDecider, Redactor, unkept_on_known
from .pixels import PixelDataError
from .records import ImageRecord
from .region_proposals import KEYWORDS, propose_rules, write_rules
from .worker_pool import IsolatedRedactor

log = logging.getLogger(__name__)


@dataclass
class Markers:
    """The boxes of one image in the label format (``xyxy``, ``cls`` laterality|text) plus what was decided."""

    width: int
    height: int
    boxes: list[dict[str, Any]]
    uncertainty: float
    model: str
    geometry: PixelGeometry = field(default_factory=PixelGeometry)

    def to_json(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "boxes": self.boxes,
                "uncertainty": round(self.uncertainty, 4), "model": self.model}

    def markups(self) -> dict[str, Any]:
        """The boxes as a 3D Slicer markups ROI document in LPS millimetres."""
        return roi_markups(self.boxes, self.geometry)


class MarkerFinder:
    """Detect -> retain on one file's first frame, for review: nothing is written. The site's known regions
    (``detector.known_regions``) that match the file are listed too, as ``redact`` fills them (a marker kept on
    one filled with it), so the reviewer sees every fill; their source names the rule."""

    def __init__(self, cfg: Config, model: ModelVersion | None = None, decider: MarkerDecider | None = None,
                 known: KnownRegions | None = None) -> None:
        self.cfg = cfg
        self.model = model.name if model else "configured"
        self.decider = decider or MarkerDecider(cfg)
        self.known = known if known is not None else KnownRegions.configured(cfg.detector.known_regions)
        self.scorer = UncertaintyScorer(cfg.detector)

    def __call__(self, path: Path) -> Markers:
        view, ds = read_view(path, self.cfg.input.max_pixels_per_frame, self.cfg.input.max_frames)
        h, w = view.shape[:2]
        known = self.known.boxes(self.known.values(ds), h, w)
        _, decided = self.decider.decide(view, modality=str(ds.get("Modality", "") or "") if ds is not None else "")
        boxes = [_review_box(b, BoxAction.REDACTED) for b in known]
        boxes += [_review_box(d.box, d.action) for d in unkept_on_known(decided, known)]
        return Markers(w, h, boxes, self.scorer(view), self.model, PixelGeometry.from_dataset(ds))

    def uncertainty(self, path: Path) -> float:
        view, _ = read_view(path, self.cfg.input.max_pixels_per_frame, self.cfg.input.max_frames)
        return self.scorer(view)


def _review_box(box: Box, action: BoxAction) -> dict[str, Any]:
    """One box of the review in the label format (``cls`` laterality for a kept marker, else text)."""
    kept = action is BoxAction.KEPT_LATERALITY
    out = {"xyxy": box.as_list(), "cls": "laterality" if kept else "text", "score": round(float(box.score), 4),
           "action": action.value, "source": box.source, "detector_class": box.label.value}
    if kept:
        out["glyph"] = box.text
    return out


class IsolatedMarkerFinder:
    """``MarkerFinder`` in the process of a server's ``IsolatedRedactor`` (it shares that process's models): a
    file that crashes a decoder or stalls it raises ``ProcessEnded`` and the server goes on."""

    def __init__(self, redactor: IsolatedRedactor, model: ModelVersion | None = None) -> None:
        self.redactor = redactor
        self.model = model.name if model else "configured"

    def __call__(self, path: Path) -> Markers:
        return replace(self.redactor.call(_markers_of, path), model=self.model)

    def uncertainty(self, path: Path) -> float:
        return self.redactor.call(_uncertainty_of, path)


@cache
def _finder(redactor: Redactor) -> MarkerFinder:
    """In a redactor's process: the review's finder, on the redactor's models, built once."""
    return MarkerFinder(redactor.cfg, decider=redactor.markers, known=redactor.known)


def _markers_of(redactor: Redactor, path: Path) -> Markers:
    return _finder(redactor)(path)


def _uncertainty_of(redactor: Redactor, path: Path) -> float:
    return _finder(redactor).uncertainty(path)


class RedactionRefused(Exception):
    """The file did not pass every stage; it was quarantined (never returned) and the record says why."""

    def __init__(self, record: ImageRecord) -> None:
        super().__init__(f"{record.decision.value} at {record.stage.value}: {record.reason}")
        self.record = record


def redact_file(src: Path, out_dir: Path, quarantine: Path, redactor: Redactor | IsolatedRedactor
                ) -> tuple[Path, ImageRecord]:
    """De-identify one file into ``out_dir`` (same name; PNG for a JPEG input) and return it with its record."""
    rec = redactor.process(src, Path(src.name), out_dir, quarantine)
    if rec.decision is not Decision.WRITTEN:
        raise RedactionRefused(rec)
    return out_dir / rec.output, rec


# -- fine-tuning rounds -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SiteImage:
    """One corrected image of a site: its file and its boxes (``group`` keeps a patient's images on one side)."""

    key: str
    path: Path
    boxes: tuple[LabelledBox, ...]
    group: str = ""


class NotEnoughLabels(ValueError):
    """Too few labelled images for a round with a separate validation set."""


def split_site_images(images: Sequence[SiteImage], val_fraction: float = 0.25) -> tuple[list[SiteImage], list[SiteImage]]:
    """Validation images are never training images: a stable hash order of patients (``group``), at least one
    each side; when every image is one patient's, images are split instead (still never the same image)."""
    if len(images) < 2:
        raise NotEnoughLabels(f"a training round needs at least 2 labelled images (one to validate on); "
                              f"{len(images)} labelled so far")
    key = (lambda im: im.group or im.key) if len({im.group or im.key for im in images}) > 1 else (lambda im: im.key)
    groups = sorted({key(im) for im in images}, key=lambda g: hashlib.sha256(g.encode()).hexdigest())
    if len(groups) < 2:
        raise NotEnoughLabels("the labelled images are all the same image; label another image to validate on")
    n_val = min(len(groups) - 1, max(1, round(val_fraction * len(groups))))
    val_groups = set(groups[:n_val])
    return [im for im in images if key(im) not in val_groups], [im for im in images if key(im) in val_groups]


def _as_png(images: Sequence[SiteImage], folder: Path, prefix: str, cfg: Config) -> list[LabelledImage]:
    """Each image's display view as a PNG (what annotators saw and labelled), so DICOM of any kind trains alike."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, im in enumerate(images):
        view, _ = read_view(im.path, cfg.input.max_pixels_per_frame, cfg.input.max_frames)
        name = f"{prefix}_{i:05d}.png"
        cv2.imwrite(str(folder / name), view if view.ndim == 2 else cv2.cvtColor(view, cv2.COLOR_RGB2GRAY))
        out.append(LabelledImage(name, view.shape[1], view.shape[0], im.boxes))
    return out


def _last_metrics(run: Path) -> dict[str, float]:
    try:
        with open(run / "results.csv", newline="") as fh:
            row = list(csv.DictReader(fh))[-1]
    except (OSError, IndexError):
        return {}
    return {k.strip(): round(float(v), 4) for k, v in row.items() if k and "metrics/" in k}


class RoundNotBetter(RuntimeError):
    """A fine-tuning round whose weights scored no better than the served weights on its validation images."""


def finetune_round(images: Sequence[SiteImage], store: ModelStore, work: Path, cfg: Config, epochs: int = 10,
                   device: str = "cpu", seed: int = 0, val_fraction: float = 0.25) -> ModelVersion:
    """Fine-tune the served detector on corrected images and publish the result when it scores better than the
    served weights on the round's validation images; otherwise (``RoundNotBetter``), and on any failure, the served
    version is left as it was (the exception says why)."""
    from .train import TrainPlan, build_site_dataset, fine_tune

    train, val = split_site_images(images, val_fraction)
    start = store.current()
    val_png = _as_png(val, work / "images", "val", cfg)
    data = build_site_dataset(work / "dataset", _as_png(train, work / "images", "train", cfg), val_png,
                              work / "images", seed=seed)
    plan = TrainPlan(out=work / "run", epochs=epochs, batch=8, device=device, seed=seed, init=str(start.pt))
    tuned = fine_tune(data, plan, val_png, work / "images", cfg, progress=False, start_onnx=start.onnx)
    if not tuned.improved:
        raise RoundNotBetter(f"on the round's {len(val)} validation image(s), redaction with its weights: "
                             f"{tuned.best_score}; with the served weights ({start.name}): {tuned.start_score}. "
                             "Not published, the served version stays; label more images and train again")
    info = {"started_from": start.name, "train_images": [im.key for im in train],
            "val_images": [im.key for im in val], "epochs": epochs, "device": device, "seed": seed,
            "val_metrics": _last_metrics(plan.out), "val_redaction": {"started_from": asdict(tuned.start_score),
                                                                      "published": asdict(tuned.best_score)}}
    return store.publish(tuned.best, tuned.onnx, info)


def propose_round_regions(images: Sequence[SiteImage], dest: Path, cfg: Config) -> dict[str, Any] | None:
    """Known regions proposed from a round's corrected images (``region_proposals``: where text lies in the same
    place on half of one device's images or more), written to ``dest`` for a person to read, and what they rest
    on; None where there is no such place. Never applied here: a rules file takes effect only once configured
    (``detector.known_regions``). An image that cannot be read is left out (the round itself refuses it); an
    existing ``dest`` is not replaced (``region_proposals.write_rules``)."""
    labelled, values = [], {}
    for im in images:
        try:
            view, ds = read_view(im.path, cfg.input.max_pixels_per_frame, cfg.input.max_frames)
        except (ReadError, PixelDataError):
            continue
        labelled.append(LabelledImage(im.key, view.shape[1], view.shape[0], im.boxes))
        values[im.key] = {} if ds is None else header_values(ds, KEYWORDS)
    rules = propose_rules(labelled, values)
    if not rules:
        return None
    write_rules(rules, dest, f"{len(labelled)} corrected images of a training round")
    return {"file": str(dest), "rules": [{"name": r.name, "images": r.images, "regions": len(r.regions),
                                          "laterality_inside": r.laterality} for r in rules]}


def parse_box_label(data: bytes | str, where: str) -> tuple[LabelledBox, ...]:
    """A saved label: JSON with ``boxes`` ([{"xyxy", "cls"}]), as ``markers`` returns it; raises LabelError. The
    review's known regions (their ``source`` a known-region rule's) are left out: a rule's rectangle, a banner or
    a corner, is where a device writes, not a marker's box for the detector to learn."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LabelError(f"{where}: not JSON ({exc.__class__.__name__}); send {{\"boxes\": [...]}}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("boxes"), list):
        raise LabelError(f"{where}: a label is a JSON object with a 'boxes' list")
    return parse_boxes([b for b in doc["boxes"] if not _from_known_region(b)], where)


def _from_known_region(box: object) -> bool:
    return isinstance(box, dict) and from_rule(str(box.get("source", "")))


class Served:
    """The marker finder and redactor for the store's current version, rebuilt when a round publishes another.

    A server holds one of these; every request calls :meth:`get`, so weights published by a training process
    are picked up on the next request without a restart (the hot swap), and a request in flight keeps the
    models it started with. The redactor works in a process of its own (``IsolatedRedactor``), and the marker
    finder there too: a file that crashes a decoder or stalls it is refused, and the server goes on.
    """

    def __init__(self, cfg: Config, store: ModelStore) -> None:
        self.cfg, self.store = cfg, store
        self.lock = threading.RLock()  # one image at a time per model set: the redactor times its stages
        self._built: tuple[ModelVersion, IsolatedMarkerFinder, IsolatedRedactor] | None = None

    def get(self) -> tuple[ModelVersion, IsolatedMarkerFinder, IsolatedRedactor]:
        version = self.store.current()
        with self.lock:
            if self._built is None or self._built[0].name != version.name:
                if self._built is not None:
                    self._built[2].close()  # a request still holding it starts its process again
                cfg = replace(self.cfg, detector=replace(self.cfg.detector, weights=str(version.onnx)))
                redactor = IsolatedRedactor(cfg, self.store.root.parent / "in-work")
                self._built = (version, IsolatedMarkerFinder(redactor, version), redactor)
                log.info("serving marker detector version %s", version.name)
            return self._built


def default_device() -> str:
    """Training device: the first GPU when torch sees one, else the CPU."""
    try:
        import torch
    except ImportError:
        return "cpu"
    return "0" if torch.cuda.is_available() else "cpu"


def site_images_from_labels(labels: str | Path, root: str | Path) -> list[SiteImage]:
    """A label JSONL (``radiograph_deid.labels`` format) as a round's images; paths relative to ``root``."""
    from .labels import read_labels

    return [SiteImage(im.file, Path(root) / im.file, im.boxes, im.patient) for im in read_labels(labels)]
