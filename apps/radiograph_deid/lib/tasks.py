"""The app's tasks: infer ``markers`` and ``redact``, train ``markers``, least-confident next sample, scoring.

Each is a few lines over ``radiograph_deid.workflows``; here only requests are read and answers shaped.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import pydicom
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType
from monailabel.interfaces.tasks.scoring import ScoringMethod
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask

from radiograph_deid.config import Config
from radiograph_deid.enums import Stage
from radiograph_deid.fileio import ReadError, is_dicom
from radiograph_deid.labels import LabelError
from radiograph_deid.model_store import ModelStore
from radiograph_deid.pixels import PixelDataError
from radiograph_deid.worker_pool import NEXT_SERVED, ProcessEnded
from radiograph_deid.workflows import (NotEnoughLabels, RedactionRefused, RoundNotBetter, Served, SiteImage,
                                       finetune_round, parse_box_label, propose_round_regions, redact_file)

from .destinations import Destination
from .errors import bad_request, not_found, unprocessable, unsupported

log = logging.getLogger(__name__)
LABELS = {"laterality": 1, "text": 2}


def _image(request: Dict[str, Any]) -> Path:
    image = request.get("image")
    if not isinstance(image, str) or not os.path.isfile(image):
        raise not_found("no image: give a datastore image id or upload a file")
    return Path(image)


class MarkersInfer(InferTask):
    """Boxes of the burned-in markers with each decision; the file is a Slicer markups ROI document (LPS mm)."""

    def __init__(self, served: Served) -> None:
        super().__init__(InferType.DETECTION, LABELS, 2, "Burned-in markers: boxes (JSON) and Slicer ROI markups")
        self.served = served

    def is_valid(self) -> bool:
        return True

    def __call__(self, request: Dict[str, Any]) -> Tuple[Optional[str], Dict[str, Any]]:
        path = _image(request)
        version, finder, _ = self.served.get()
        try:
            with self.served.lock:
                markers = finder(path)
        except (ReadError, PixelDataError) as exc:
            raise unsupported(f"cannot read the image: {exc}") from exc
        except ProcessEnded as exc:
            raise unsupported(f"cannot read the image: {exc.reason}; {NEXT_SERVED}") from exc
        fd, out = tempfile.mkstemp(suffix=".mrk.json")
        with os.fdopen(fd, "w") as fh:
            json.dump(markers.markups(), fh)
        return out, markers.to_json()


class RedactInfer(InferTask):
    """The de-identified image (DICOM in, DICOM out); a file that fails any stage is refused, never returned.

    Each answer is written to its own folder under ``outgoing`` (the file keeps its name for the client). MONAI
    Label deletes the file once it is sent but not its folder, so emptied folders are removed at the next request
    and whatever a stopped server left there (never sent) when the app starts: nothing piles up in /tmp.
    """

    def __init__(self, served: Served, quarantine: Path, destination: Optional[Destination], outgoing: Path) -> None:
        super().__init__(InferType.OTHERS, LABELS, 2, "De-identify: header profile, burned-in text, verification")
        self.served, self.quarantine, self.destination = served, quarantine, destination
        self.outgoing = outgoing
        shutil.rmtree(outgoing, ignore_errors=True)
        outgoing.mkdir(parents=True, exist_ok=True)

    def is_valid(self) -> bool:
        return True

    def __call__(self, request: Dict[str, Any]) -> Tuple[Optional[str], Dict[str, Any]]:
        path = _image(request)
        _, _, redactor = self.served.get()
        with self.served.lock:  # a folder is swept only when no request is between making it and filling it
            _remove_empty_folders(self.outgoing)
            out_dir = Path(tempfile.mkdtemp(prefix="redacted-", dir=self.outgoing))
            try:
                result, record = redact_file(path, out_dir, self.quarantine, redactor)
            except BaseException as exc:
                shutil.rmtree(out_dir, ignore_errors=True)
                if not isinstance(exc, RedactionRefused):
                    raise
                rec = exc.record
                code = unsupported if rec.stage is Stage.READ else unprocessable
                raise code(f"not de-identified ({rec.decision.value} at {rec.stage.value}): {rec.reason}") from exc
        answer: Dict[str, Any] = {"decision": record.decision.value, "boxes": record.boxes,
                                  "laterality": record.laterality, "seconds": round(record.seconds, 3)}
        try:
            if self.destination is not None and str(request.get("store", "true")).lower() != "false":
                answer["stored"] = self.destination.store(result)
        except BaseException:
            shutil.rmtree(out_dir, ignore_errors=True)  # no answer is sent, so nothing would delete it
            raise
        return str(result), answer  # MONAI Label deletes the file once it is sent


def _remove_empty_folders(root: Path) -> None:
    """Remove each answer's folder that holds no file any more (its answer was sent; with output.names
    pseudonymous the answer lies some folders down)."""
    for folder in root.iterdir():
        if not any(p.is_file() for p in folder.rglob("*")):
            shutil.rmtree(folder, ignore_errors=True)


def _patient_group(path: Path) -> str:
    """A one-way key of the patient, so a patient's images land on one side of the split (no PHI kept)."""
    if not is_dicom(path):
        return ""
    try:
        pid = str(pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["PatientID"]).get("PatientID", ""))
    except Exception:  # an unreadable header only loses the grouping
        return ""
    return hashlib.sha256(pid.encode()).hexdigest()[:16] if pid else ""


class MarkersTrainer(TrainTask):
    """A round: fine-tune the served detector on every saved final label, then publish (hot swap) if it worked."""

    def __init__(self, served: Served, store: ModelStore, cfg: Config, device: str) -> None:
        super().__init__("Fine-tune the marker detector on the boxes saved through PUT /datastore/label")
        self.served, self.store, self.cfg, self.device = served, store, cfg, device
        self._config = {"max_epochs": 10, "val_fraction": 0.25, "seed": 0}

    def stats(self) -> Dict[str, Any]:
        return {"serving": self.store.current().name, "rounds": self.store.history()[-5:]}

    def __call__(self, request: Dict[str, Any], datastore: Datastore) -> Dict[str, Any]:
        images = []
        for item in datastore.datalist():
            image, label = Path(item["image"]), Path(item["label"])
            try:
                boxes = parse_box_label(label.read_bytes(), f"saved label of {image.stem}")
            except LabelError as exc:
                log.warning("skipping a saved label: %s", exc)
                continue
            key = str(item.get("id") or image.stem)  # the id tells apart images of one name in two subfolders
            images.append(SiteImage(key, image, boxes, _patient_group(image)))
        try:
            epochs = int(request.get("max_epochs", self._config["max_epochs"]))
            val_fraction = float(request.get("val_fraction", self._config["val_fraction"]))
            seed = int(request.get("seed", self._config["seed"]))
        except (TypeError, ValueError) as exc:
            raise bad_request(f"max_epochs, val_fraction and seed must be numbers: {exc}") from exc
        work = self.store.root / "rounds" / f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9:09d}"
        # where the labels put text in one place on a device's images: a rules file to read, not applied
        regions = propose_round_regions(images, work / "regions_proposed.yaml", self.cfg)
        try:
            version = finetune_round(images, self.store, work, self.cfg, epochs, self.device, seed, val_fraction)
        except NotEnoughLabels as exc:
            raise unprocessable(str(exc)) from exc
        except RoundNotBetter as exc:  # a round's outcome, not a failure: the served weights stay, and why is said
            log.warning("training round not published: %s", exc)
            return {"published": False, "serving": self.store.current().name, "reason": str(exc),
                    "regions_proposed": regions}
        self.served.get()  # this process serves the new weights at once; a server process on its next request
        return {"published": True, "version": version.name, **version.info, "regions_proposed": regions}


class UncertaintyCache:
    """Per-image uncertainty under the served weights, kept in the datastore's image info."""

    def __init__(self, served: Served) -> None:
        self.served = served

    def score(self, datastore: Datastore, image_id: str) -> Tuple[Optional[float], str]:
        """The image's uncertainty, or None and why where it cannot be read (both kept in its info, so it is not
        read again under the same model, and the image is never handed out): one unreadable image must not stop
        the ranking of the rest."""
        version, finder, _ = self.served.get()
        info = datastore.get_image_info(image_id) or {}
        if info.get("uncertainty_model") == version.name and "uncertainty" in info:
            value = info["uncertainty"]
            return (None if value is None else float(value)), info.get("uncertainty_error", "")
        value: Optional[float] = None
        reason = ""
        try:
            with self.served.lock:
                value = finder.uncertainty(Path(datastore.get_image_uri(image_id)))
        except (ReadError, PixelDataError) as exc:
            reason = str(exc)
        except ProcessEnded as exc:
            reason = exc.reason
        if value is None:
            log.warning("an image could not be scored for uncertainty: %s", reason)
        datastore.update_image_info(image_id, {"uncertainty": value, "uncertainty_model": version.name,
                                               "uncertainty_error": reason})
        return value, reason

    def scores(self, datastore: Datastore, images: Sequence[str]) -> Tuple[Dict[str, float], Dict[str, str]]:
        """(image: uncertainty) for the images that can be read, and (image: why not) for the others."""
        scored, unreadable = {}, {}
        for image in images:
            value, reason = self.score(datastore, image)
            if value is None:
                unreadable[image] = reason
            else:
                scored[image] = value
        return scored, unreadable


class LeastConfident(Strategy):
    """The unlabelled image the detector is least sure about; an image handed out in the last ``hold_s``
    seconds is skipped, so annotators working at once get different images."""

    def __init__(self, cache: UncertaintyCache, hold_s: float = 600.0) -> None:
        super().__init__("Least-confident detections first (uncertainty of the marker detector)")
        self.cache, self.hold_s = cache, hold_s
        self._handed: Dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, request: Dict[str, Any], datastore: Datastore) -> Optional[Dict[str, Any]]:
        with self._lock:
            now = time.time()
            self._handed = {k: t for k, t in self._handed.items() if now - t < self.hold_s}
            images = [i for i in datastore.get_unlabeled_images() if i not in self._handed]
            if not images:
                return None
            scored = sorted(((v, i) for i, v in self.cache.scores(datastore, images)[0].items()), reverse=True)
            if not scored:
                return None
            value, image = scored[0]
            self._handed[image] = now
            return {"id": image, "uncertainty": value}


class UncertaintyScoring(ScoringMethod):
    """Rank every unlabelled image by the detector's uncertainty (stored in each image's info)."""

    def __init__(self, cache: UncertaintyCache) -> None:
        super().__init__("Detector uncertainty of every unlabelled image")
        self.cache = cache

    def __call__(self, request: Dict[str, Any], datastore: Datastore) -> Dict[str, Any]:
        scores, unreadable = self.cache.scores(datastore, datastore.get_unlabeled_images())
        return {"uncertainty": {i: round(v, 4) for i, v in sorted(scores.items(), key=lambda kv: -kv[1])},
                "unreadable": unreadable}


__all__ = ["MarkersInfer", "RedactInfer", "MarkersTrainer", "LeastConfident", "UncertaintyScoring",
           "UncertaintyCache"]
