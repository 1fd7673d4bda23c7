"""Train, fine-tune and export the marker detector (ultralytics YOLO, from a model ``.yaml``; nothing downloaded).

ultralytics and torch are the ``train`` extra; redaction itself runs the exported ONNX with onnxruntime.
The shipped weights live in ``radiograph_deid/models/`` (``marker_detector.pt`` to fine-tune from,
``marker_detector.onnx`` exported from it for inference): the one copy the CLI, the bundle and the app load.
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .boxes import Box, iou
from .detector import tiled_side
from .fileio import ReadError, read_view
from .labels import LabelledImage, hannover_patients, patient_split, read_labels
from .marker_dataset import (Background, backgrounds_from_labels, crop_around, detector_view, make_split_dirs,
                             sample_any, training_crops, write_data_yaml, write_tile, write_yolo_dataset)
from .marker_synth import Placed
from .pixels import PixelDataError
from .pixels.display import to_gray

if TYPE_CHECKING:
    from .config import Config
    from .detector import MarkerDetector

log = logging.getLogger(__name__)
MODELS_DIR = Path(__file__).parent / "models"
MODEL_YAML = MODELS_DIR / "marker_detector.yaml"
SHIPPED_PT = MODELS_DIR / "marker_detector.pt"
SHIPPED_ONNX = MODELS_DIR / "marker_detector.onnx"


class TrainingUnavailable(RuntimeError):
    """The ``train`` extra (ultralytics, torch) is not installed."""


def _yolo():  # type: ignore[no-untyped-def]
    os.environ.setdefault("YOLO_OFFLINE", "1")  # never reach for hub weights or fonts
    os.environ.setdefault("YOLO_VERBOSE", "False")
    try:
        from ultralytics import YOLO
        from ultralytics.utils import SETTINGS
    except ImportError as exc:
        raise TrainingUnavailable("training needs the train extra: pip install -e '.[train]'") from exc
    # No experiment tracker writes anywhere (MLflow and TensorBoard come with MONAI Label); set in this process
    # only, so the user's ultralytics settings file is left as it was.
    for key in ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb"):
        dict.__setitem__(SETTINGS, key, False)
    return YOLO


@dataclass(frozen=True)
class TrainPlan:
    """What one training run does; every field is recorded in the run folder for the model card."""

    out: Path
    epochs: int = 30
    imgsz: int = 512  # crops of the 1024-px detector view: same pixel scale as inference
    batch: int = 8  # small batches: many more optimizer steps per CPU-hour, which is what a CPU run lacks
    device: str = "cpu"
    seed: int = 0
    workers: int = 2
    patience: int = 50
    init: str = ""  # a .pt to start from (fine-tuning); empty: from MODEL_YAML


def label_splits(labels_path: Path, data_root: Path, val_fraction: float = 0.3) -> tuple[list[LabelledImage], list[LabelledImage]]:
    """Hand-checked real images split by patient (Hannover's data.csv; other sources count as one patient each)."""
    images = read_labels(labels_path)
    patients = {}
    csv_path = data_root / "hannover" / "data.csv"
    if csv_path.exists():
        patients = hannover_patients(csv_path)
    train, val = [], []
    for im in images:
        patient = im.patient or patients.get(Path(im.file).stem, im.file)
        split = im.split or patient_split(patient, val_fraction)
        (val if split == "val" else train).append(im)
    return train, val


def build_synthetic_dataset(out: Path, labels_path: Path, data_root: Path, n_train: int, n_val: int,
                            seed: int = 0, hard_negatives: int = 0, miner: Path | None = None,
                            hard_positives: int = 0, small_share: float = 0.0) -> Path:
    """Synthetic training data on the train-split real backgrounds (val backgrounds only for validation), plus
    ``hard_negatives`` crops around each false box ``miner`` (ONNX weights) makes on the train-split images and
    ``hard_positives`` crops around each synthetic label it misses (``write_hard_positives``); ``small_share`` of
    the synthetic images drawn small and seen enlarged, as exports and figures are (``marker_dataset._load``)."""
    if not 0.0 <= small_share <= 1.0:
        raise ValueError(f"the share of small synthetic images must be 0-1, not {small_share}")
    train, val = label_splits(labels_path, data_root)
    backgrounds = backgrounds_from_labels(train, data_root)
    detector = _miner(miner) if hard_negatives or hard_positives else None
    data = write_yolo_dataset(out, backgrounds, 0 if hard_positives else n_train, n_val,
                              backgrounds_from_labels(val, data_root), seed=seed, small_share=small_share)
    if detector and hard_positives:
        n = write_hard_positives(out, backgrounds, n_train, detector, copies=hard_positives, seed=seed,
                                 small_share=small_share)
        log.info("hard positives: %d crops around synthetic labels %s misses", n, Path(detector.cfg.weights).name)
    if detector and hard_negatives:
        n = write_hard_negatives(out, train, data_root, detector, copies=hard_negatives, seed=seed)
        log.info("hard negatives: %d crops around false boxes of %s", n, Path(detector.cfg.weights).name)
    return data


def _miner(weights: Path | None) -> "MarkerDetector":
    from .config import DetectorConfig
    from .detector import MarkerDetector

    return MarkerDetector(DetectorConfig(name="marker-yolo", weights=str(weights or SHIPPED_ONNX), threads=2))


def missed_labels(detector: "MarkerDetector", gray: np.ndarray, labels: Sequence[Placed],
                  covered: float = 0.5) -> list[Placed]:
    """The ``labels`` (in ``gray``'s pixels) of which the detector's boxes scored from its ``score_threshold`` cover
    less than ``covered``: the text it would leave to the other detectors, or unfilled."""
    found = []
    for *xyxy, score, _ in detector.search(gray):
        bx0, by0, bx1, by1 = (int(v) for v in xyxy)
        if score >= detector.cfg.score_threshold and bx1 > bx0 and by1 > by0:
            found.append(Box(bx0, by0, bx1, by1))
    missed = []
    for label in labels:
        x0, y0, x1, y1 = label.xyxy
        box = Box(x0, y0, max(x0 + 1, x1), max(y0 + 1, y1))  # a label scaled down to nothing is missed
        mask = np.zeros((box.height, box.width), bool)
        for common in filter(None, (box.common(f) for f in found)):
            mask[common.within(box)] = True
        if mask.mean() < covered:
            missed.append(label)
    return missed


def write_hard_positives(out: Path, backgrounds: Sequence[Background], n: int, detector: "MarkerDetector",
                         copies: int = 3, long_side: int = 1024, crop: int = 512, seed: int = 0,
                         phantom_fraction: float = 0.1, small_share: float = 0.0) -> int:
    """``n`` synthetic training images as ``write_yolo_dataset`` makes them, each also searched by ``detector`` as at
    inference: ``copies`` more crops hold, at random offsets, each label it misses (``missed_labels``), and one
    crop of the view its tiles search (``detector.tiled_side``: 2048 px, or the image's own size) where that label
    is under 10 px high in the 1024-px view and the image is tiled. A fresh
    synthetic set teaches mostly what the detector already finds; these crops spend a CPU run's few epochs on what it
    does not. Each image has a generator of its own (``seed``, index). Returns the extra crops written."""
    from tqdm import tqdm

    make_split_dirs(out, "train")
    written = 0
    for i in tqdm(range(n), desc="synthesizing train, mining misses", unit="img"):
        rng = np.random.default_rng([seed, i])
        view, boxes, full = sample_any(backgrounds, rng, long_side, phantom_fraction, small_share)
        for k, (x0, y0) in enumerate(training_crops(view, boxes, crop, rng)):
            write_tile(out, "train", f"train_{i:06d}_{k}", view, boxes, x0, y0, crop)
        in_full = [p.scaled(max(full.shape) / long_side) for p in boxes]
        missed = missed_labels(detector, full, in_full)
        tiled = tiled_side(full.shape, long_side, detector.cfg.tile_long_side)
        big: tuple[np.ndarray, list[Placed]] | None = None  # the tiles' view and its labels, made once if needed
        for j, p in enumerate(p for p, q in zip(boxes, in_full) if q in missed):
            for k in range(copies):
                corner = crop_around(p.centre, view, crop, rng)
                write_tile(out, "train", f"hardpos_{i:06d}_{j}_{k}", view, boxes, *corner, crop)
                written += 1
            if tiled and p.xyxy[3] - p.xyxy[1] < 10:
                factor = tiled / long_side
                big = big or (detector_view(full, tiled)[0], [q.scaled(factor) for q in boxes])
                corner = crop_around((factor * p.centre[0], factor * p.centre[1]), big[0], crop, rng)
                write_tile(out, "train", f"hardbig_{i:06d}_{j}", *big, *corner, crop)
                written += 1
    return written


def false_boxes(detector: "MarkerDetector", gray: np.ndarray, labels: Sequence[tuple[int, int, int, int]],
                floor: float) -> list[tuple[float, float]]:
    """Centres of the boxes the detector scores from ``floor`` that touch no labelled marker: what it takes for a
    marker on this image (ECG electrodes, lead clips, wire loops), in ``gray``'s pixels."""
    rows = detector.search(gray)
    out = []
    for x0, y0, x1, y1, score, _cls in rows:
        if score >= floor and all(iou((x0, y0, x1, y1), label) == 0 for label in labels):
            out.append(((x0 + x1) / 2, (y0 + y1) / 2))
    return out


def write_hard_negatives(out: Path, images: Sequence[LabelledImage], root: Path, detector: "MarkerDetector",
                         floor: float = 0.25, copies: int = 8, long_side: int = 1024, crop: int = 512,
                         seed: int = 0) -> int:
    """Training crops of the real ``images`` (their hand labels as labels) holding, at random offsets, the boxes
    ``detector`` gets wrong. Synthetic crops are centred on markers, so a false box's look-alike is seen rarely
    and only by chance; this shows the detector its own mistakes. Returns the crops written."""
    make_split_dirs(out, "train")
    rng = np.random.default_rng(seed + 7)
    written = 0
    for i, im in enumerate(images):
        gray, view, scale, boxes = _labelled_view(im, root, long_side)
        centres = false_boxes(detector, gray, [b.xyxy for b in im.boxes], floor)
        for j, (cx, cy) in enumerate(centres):
            for k in range(copies):
                write_tile(out, "train", f"hardneg_{i:05d}_{j}_{k}", view, boxes,
                           *crop_around((cx * scale, cy * scale), view, crop, rng), crop)
                written += 1
    return written


def _labelled_view(im: LabelledImage, root: Path, long_side: int) -> tuple[np.ndarray, np.ndarray, float, list[Placed]]:
    """A hand-labelled image as displayed (grey), its detector view, the view's scale, and its labels in the view."""
    try:
        gray = to_gray(read_view(root / im.file)[0])
    except (ReadError, PixelDataError) as exc:
        raise FileNotFoundError(f"labelled image not readable: {root / im.file} ({exc})") from exc
    view, scale = detector_view(gray, long_side)
    boxes = [Placed(b.xyxy, b.cls, b.text).scaled(scale) for b in im.boxes]
    return gray, view, scale, boxes


def build_site_dataset(out: Path, train: Sequence[LabelledImage], val: Sequence[LabelledImage], root: Path,
                       long_side: int = 1024, crop: int = 512, copies: int = 8, seed: int = 0) -> Path:
    """A site's own labelled images as a YOLO dataset: several random crops of each detector view to train on, and
    each validation view whole in ``crop``-sized tiles. Validation sees the markers at the pixel scale training
    and inference see them: a whole 1024-px view validated at the 512-px training size halves every marker (an
    8-px line at 4 px), so the epoch kept as best was chosen on text too small to find."""
    rng = np.random.default_rng(seed)
    for split, images in (("train", train), ("val", val)):
        make_split_dirs(out, split)
        for i, im in enumerate(images):
            _, view, _, boxes = _labelled_view(im, root, long_side)
            h, w = view.shape
            corners = [(int(rng.integers(0, max(1, w - crop + 1))), int(rng.integers(0, max(1, h - crop + 1))))
                       for _ in range(copies)] if split == "train" else _grid(w, h, crop)
            for k, (x0, y0) in enumerate(corners):
                write_tile(out, split, f"{split}_{i:05d}_{k}", view, boxes, x0, y0, crop)
    return write_data_yaml(out)


def _grid(w: int, h: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners of ``size`` tiles covering a w x h view, the last of each row and column flush with its
    edge (overlapping the one before) so that no tile is cut short."""
    xs = sorted({min(x, max(0, w - size)) for x in range(0, max(1, w - size // 8), size)})
    ys = sorted({min(y, max(0, h - size)) for y in range(0, max(1, h - size // 8), size)})
    return [(x, y) for y in ys for x in xs]


def train_detector(data_yaml: Path, plan: TrainPlan, resume: bool = False, progress: bool = True) -> Path:
    """Train (or resume) and return the best checkpoint. Augmentation keeps pixel scale: markers' size is physics.
    ``progress``: a bar per epoch, closed with the epoch's validation mAP (ultralytics itself is kept quiet)."""
    YOLO = _yolo()
    last = plan.out / "weights" / "last.pt"
    resuming = resume and last.exists()
    model = YOLO(str(last) if resuming else (plan.init or str(MODEL_YAML)))
    _report_epochs(model, progress)
    if resuming:
        model.train(resume=True)
    else:
        model.train(data=str(data_yaml), epochs=plan.epochs, imgsz=plan.imgsz, batch=plan.batch, device=plan.device,
                    seed=plan.seed, deterministic=True, workers=plan.workers, patience=plan.patience,
                    project=str(plan.out.parent.resolve()), name=plan.out.name, exist_ok=True,
                    pretrained=plan.init or False,  # False would rebuild the model from its yaml, dropping the weights
                    amp=plan.device != "cpu", plots=False, verbose=False, hsv_h=0.0, hsv_s=0.0, hsv_v=0.3,
                    degrees=0.0, translate=0.1, scale=0.2, fliplr=0.5, mosaic=1.0, close_mosaic=max(1, plan.epochs // 5),
                    warmup_epochs=min(3.0, max(0.5, plan.epochs / 10)))
    best = plan.out / "weights" / "best.pt"
    return best if best.exists() else last


@dataclass(frozen=True, order=True)
class SiteScore:
    """What the redaction pipeline does with a set of detector weights on a site's labelled validation images, in
    the order it matters: images de-identified, laterality markers kept, boxes that were not false (shares)."""

    deidentified: float
    retained: float
    not_false: float

    def __str__(self) -> str:
        return (f"de-identified {100 * self.deidentified:.1f} %, laterality kept {100 * self.retained:.1f} %, "
                f"false boxes {100 * (1 - self.not_false):.1f} %")


@dataclass(frozen=True)
class FineTuned:
    """A fine-tuning run's best weights (checkpoint and ONNX), scored beside the weights it started from."""

    best: Path
    onnx: Path
    start_score: SiteScore
    best_score: SiteScore

    @property
    def improved(self) -> bool:
        return self.best_score > self.start_score


def pipeline_score(onnx: Path, images: Sequence[LabelledImage], root: Path, cfg: "Config") -> SiteScore:
    """``evaluate``'s figures for the whole redaction stage (``cfg`` with these detector weights) on labelled images:
    the marker detector's own validation mAP does not tell, since the OCR text detector and the tiles find what it
    misses (on a new site's house style a run's validation fitness rose 0.46 -> 0.49 while the images it
    de-identified fell 82 -> 67 %)."""
    from .evaluate import evaluate, labelled_items
    from .pipeline import MarkerDecider

    tuned = replace(cfg, detector=replace(cfg.detector, weights=str(onnx)))
    m, _ = evaluate(MarkerDecider(tuned), labelled_items(images, root))
    kept = 1.0 if np.isnan(m.retention_accuracy) else m.retention_accuracy
    return SiteScore(round(m.deid_accuracy, 4), round(kept, 4), round(1 - m.false_positive_rate, 4))


def fine_tune(data_yaml: Path, plan: TrainPlan, val: Sequence[LabelledImage], root: Path, cfg: "Config",
              progress: bool = True, start_onnx: Path | None = None) -> FineTuned:
    """Fine-tune ``plan.init`` on a site's images; the weights it starts from (``start_onnx``, their ONNX where the
    caller has it, else exported here) and the best it ends with are both run through the redaction stage on the
    site's validation images ``val`` (``pipeline_score``). A few site images can leave the pipeline worse than it
    was (a new site's house style, 20 images, 15 epochs: 82 -> 67 % of its images de-identified,
    ``benchmarks/bench_site.py``); the caller keeps the weights in use unless ``improved``."""
    work = plan.out.parent
    start = pipeline_score(start_onnx or export_onnx(Path(plan.init), work / "start.onnx"), val, root, cfg)
    best = train_detector(data_yaml, plan, progress=progress)
    onnx = export_onnx(best, work / "fine_tuned.onnx")
    return FineTuned(best, onnx, start, pipeline_score(onnx, val, root, cfg))


def _report_epochs(model, enabled: bool) -> None:  # type: ignore[no-untyped-def]
    """A progress bar over each epoch's batches, its last line the epoch's validation mAP50 and mAP50-95: a CPU
    epoch takes minutes, and ultralytics' own output is off (``YOLO_VERBOSE``)."""
    from tqdm import tqdm

    bar: list[tqdm] = []

    def start(trainer) -> None:  # type: ignore[no-untyped-def]
        bar[:] = [tqdm(total=len(trainer.train_loader), desc=f"epoch {trainer.epoch + 1}/{trainer.epochs}",
                       unit="batch", disable=not enabled)]

    def end(trainer) -> None:  # type: ignore[no-untyped-def]
        if not bar:  # the closing validation of the best weights: no epoch of its own
            return
        metrics = trainer.metrics or {}
        bar[0].set_postfix(mAP50=f"{metrics.get('metrics/mAP50(B)', float('nan')):.3f}",
                           mAP50_95=f"{metrics.get('metrics/mAP50-95(B)', float('nan')):.3f}")
        bar.pop().close()

    model.add_callback("on_train_epoch_start", start)
    model.add_callback("on_train_batch_end", lambda trainer: bar[0].update(1))
    model.add_callback("on_fit_epoch_end", end)


def export_onnx(weights: Path, dest: Path, imgsz: int = 1024) -> Path:
    """Export ``weights`` to a static ``imgsz`` ONNX graph (end-to-end: boxes out, no NMS step) at ``dest``. Exported
    from a copy in a temporary folder: ultralytics writes the ONNX beside the checkpoint it reads, which for the
    shipped checkpoint is the shipped ONNX."""
    import tempfile

    YOLO = _yolo()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        source = Path(tmp) / "weights.pt"
        shutil.copyfile(weights, source)
        exported = Path(YOLO(str(source)).export(format="onnx", imgsz=imgsz, simplify=True, dynamic=False, opset=17))
        shutil.copyfile(exported, dest)
    return dest
