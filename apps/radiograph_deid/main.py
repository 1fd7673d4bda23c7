"""radiograph-deid as a MONAI Label app: marker boxes to review, de-identified images back, and annotation rounds
that fine-tune the marker detector on a site's own corrected boxes.

    monailabel start_server --app apps/radiograph_deid --studies <folder | http://orthanc:8042/dicom-web>
        [--conf workspace DIR] [--conf destination <folder | DICOMweb URL>] [--conf modalities CR,DX]
        [--conf config my.yaml] [--conf detector.score_threshold 0.3] [--conf device cpu|0]

Every decision is made by the radiograph_deid library (the same code as ``radiograph-deid redact``); this file
only wires it into MONAI Label and turns client mistakes into 4xx answers.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Dict

from dicomweb_client import DICOMwebClient
from lib.datastores import RadiographDICOMwebDatastore, RadiographLocalDatastore
from lib.destinations import build_destination
from lib.errors import not_found
from lib.tasks import LeastConfident, MarkersInfer, MarkersTrainer, RedactInfer, UncertaintyCache, UncertaintyScoring
from monailabel.config import settings
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.exception import MONAILabelException
from monailabel.tasks.activelearning.random import Random

import radiograph_deid
from radiograph_deid.config import load_config
from radiograph_deid.model_store import ModelStore
from radiograph_deid.workflows import Served, default_device

log = logging.getLogger(__name__)
APP_KEYS = {"workspace", "destination", "modalities", "config", "device", "auto_scoring"}


class RadiographDeidApp(MONAILabelApp):
    def __init__(self, app_dir: str, studies: str, conf: Dict[str, str]) -> None:
        workspace = Path(conf.get("workspace") or os.path.join(app_dir, "workspace")).expanduser()
        overrides = [f"{k}={v}" for k, v in conf.items() if "." in k and k not in APP_KEYS]
        self.cfg = load_config(conf.get("config") or None, overrides)
        self.store = ModelStore(workspace / "models")
        self.quarantine = workspace / "quarantine"
        self.outgoing = workspace / "outgoing"  # answers waiting to be sent
        self.device = default_device() if conf.get("device", "auto") == "auto" else conf["device"]
        self.modalities = (conf.get("modalities") or "CR,DX").split(",")
        self.destination = build_destination(conf.get("destination", ""), studies)
        self.served = Served(self.cfg, self.store)
        self.uncertainty = UncertaintyCache(self.served)
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="radiograph-deid",
                         description="Find, review and redact burned-in markers; keep laterality; fine-tune by rounds",
                         version=radiograph_deid.__version__, labels={"laterality": 1, "text": 2})
        # The least-confident strategy scores on demand (cached per model version); re-scoring every image
        # after each request is only worth it on a GPU server: --conf auto_scoring true.
        self._auto_update_scoring = conf.get("auto_scoring", "false").lower() == "true"

    # -- datastores: boxes as labels, and no dcmqi download (nothing here makes DICOM SEG) -------------------------
    def init_datastore(self) -> Datastore:
        if self.studies.startswith(("http://", "https://")):
            return self.init_remote_datastore()
        return RadiographLocalDatastore(self.studies, read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY)

    def init_remote_datastore(self) -> Datastore:
        self.studies = self.studies.rstrip("/")
        client = DICOMwebClient(url=self.studies)
        cache = settings.MONAI_LABEL_DICOMWEB_CACHE_PATH or str(self.store.root.parent / "dicomweb-cache")
        return RadiographDICOMwebDatastore(client, self.modalities, cache)

    # -- tasks -----------------------------------------------------------------------------------------------------
    def init_infers(self) -> Dict[str, Any]:
        return {"markers": MarkersInfer(self.served),
                "redact": RedactInfer(self.served, self.quarantine, self.destination, self.outgoing)}

    def init_trainers(self) -> Dict[str, Any]:
        return {"markers": MarkersTrainer(self.served, self.store, self.cfg, self.device)}

    def init_strategies(self) -> Dict[str, Any]:
        return {"least_confident": LeastConfident(self.uncertainty), "random": Random()}

    def init_scoring_methods(self) -> Dict[str, Any]:
        return {"uncertainty": UncertaintyScoring(self.uncertainty)}

    # -- unknown names are the client's mistake: 404 with the names that exist ---------------------------------
    def _known(self, kind: str, name: Any, table: Dict[str, Any]) -> None:
        if name not in table:
            raise not_found(f"no {kind} '{name}'; this server has: {', '.join(sorted(table))}")

    def infer(self, request: Dict[str, Any], datastore: Any = None) -> Dict[str, Any]:
        self._known("model", request.get("model"), self._infers)
        try:
            return super().infer(request, datastore)
        except MONAILabelException as exc:
            raise not_found(exc.msg) from exc

    def next_sample(self, request: Dict[str, Any]) -> Dict[str, Any]:
        self._known("strategy", request.get("strategy") or "random", self._strategies)
        return super().next_sample(request)

    def scoring(self, request: Dict[str, Any], datastore: Any = None) -> Dict[str, Any]:
        self._known("scoring method", request.get("method"), self._scoring_methods)
        return super().scoring(request, datastore)

    def train(self, request: Dict[str, Any]) -> Dict[str, Any]:
        self._known("trainer", request.get("model"), self._trainers)
        return super().train(request)

    def bundle_path(self, model: Any) -> None:
        """MONAI Label asks this before queueing any task: refuse an unknown trainer before a process starts."""
        if model is not None:
            self._known("model", model, {**self._trainers, **self._infers})
        return None
