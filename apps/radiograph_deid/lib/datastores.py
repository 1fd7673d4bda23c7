"""Datastores whose labels are marker boxes (JSON), not segmentations.

* a local folder of radiographs (MONAI Label's LocalDatastore): DICOM and every image type ``redact`` reads
  (``input.image_extensions``), extensions in either case, and DICOM files named with no extension ("IM000001",
  or a SOP Instance UID), known by their first bytes as ``redact`` knows them;
* Orthanc or any DICOMweb server: series of the configured modalities (CR, DX by default, not MONAI Label's CT),
  fetched into a local cache; box labels are kept in that cache, because MONAI Label would turn a final label
  into a DICOM SEG, which boxes are not. Nothing is ever written back to the PACS from here.

Both check a label before saving it: JSON boxes inside the image, else a 422 saying what is wrong.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from monailabel.datastore.dicom import DICOMWebDatastore
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.datastore import DefaultLabelTag
from monailabel.interfaces.exception import ImageNotFoundException
from pydicom.dataset import Dataset

from radiograph_deid.config import InputConfig
from radiograph_deid.fileio import DICOM_EXTENSIONS, ReadError, is_dicom, read_view
from radiograph_deid.labels import LabelError
from radiograph_deid.pipeline import SKIP_NAMES
from radiograph_deid.pixels import PixelDataError
from radiograph_deid.workflows import parse_box_label

from .errors import not_found, unprocessable

log = logging.getLogger(__name__)
IMAGE_EXTENSIONS = [f"*{ext}" for ext in (*sorted(DICOM_EXTENSIONS), *InputConfig().image_extensions)]


def check_box_label(label_filename: str, image_uri: str, image_id: str) -> None:
    """Raise a 422 unless the file is a box label that fits the image it is saved for."""
    try:
        boxes = parse_box_label(Path(label_filename).read_bytes(), f"label for image {image_id}")
    except LabelError as exc:
        raise unprocessable(str(exc)) from exc
    if not boxes:
        return  # "no markers on this image" is a valid, useful label
    try:
        view, _ = read_view(Path(image_uri))
    except (ReadError, PixelDataError, OSError) as exc:
        raise unprocessable(f"image {image_id} cannot be read to check the label against it: {exc}") from exc
    h, w = view.shape[:2]
    for b in boxes:
        if b.xyxy[2] > w or b.xyxy[3] > h:
            raise unprocessable(f"label for image {image_id}: box {list(b.xyxy)} lies outside the {w}x{h} image; "
                                "was it drawn on another image?")


def _named_without_extension(name: str) -> bool:
    """No extension of letters: "IM000001", "I.0001" or a UID ("1.2.840.113619.2.55.3"), as PACS exports name
    DICOM files. (MONAI Label would take ".2.840.113619.2.55.3" for a UID's extension and "1" for its id.)"""
    return not name.startswith(".") and all(s[1:].isdigit() for s in Path(name).suffixes)


class RadiographLocalDatastore(LocalDatastore):
    """MONAI Label's folder datastore, listing what ``redact`` reads: its extensions in either case ("IM1.DCM"),
    DICOM files with no extension (MONAI Label matches names only, case-sensitively), and in subfolders, as
    exports nest them (``patient/study/IM000001``; the image's id is its path in the folder, MONAI Label's own
    datastore sees the top level only). Hidden folders and MONAI Label's ``labels`` are not searched."""

    def __init__(self, folder: str, read_only: bool = False, auto_reload: bool = True) -> None:
        self._suffixes = tuple(sorted((p.lstrip("*").lower() for p in IMAGE_EXTENSIONS), key=len, reverse=True))
        super().__init__(folder, extensions=IMAGE_EXTENSIONS, auto_reload=auto_reload, read_only=read_only)

    def _list_files(self, path: str, patterns: Sequence[str]) -> Dict[str, str]:
        """``patterns`` are MONAI Label's, always IMAGE_EXTENSIONS: matched here as ``_suffixes``, in either case."""
        nested = os.path.realpath(path) == os.path.realpath(self._datastore.image_path())  # labels stay flat
        labels = os.path.realpath(self._datastore.label_path(None))
        found: Dict[str, str] = {}
        for folder, subfolders, names in os.walk(path):
            subfolders[:] = sorted(d for d in subfolders if nested and not d.startswith(".")
                                   and os.path.realpath(os.path.join(folder, d)) != labels)
            inside = Path(os.path.relpath(folder, path))
            for name in names:
                if name.lower().endswith(self._suffixes) or self._bare_dicom(os.path.join(folder, name)):
                    rel = (inside / name).as_posix()
                    found[rel] = rel
        return found

    @staticmethod
    def _bare_dicom(path: str) -> bool:
        name = os.path.basename(path)
        return (_named_without_extension(name) and name.upper() not in SKIP_NAMES and os.path.isfile(path)
                and is_dicom(Path(path)))

    def _to_id(self, file: str) -> Tuple[str, str]:
        low = file.lower()
        for suffix in self._suffixes:
            if low.endswith(suffix) and len(file) > len(suffix):
                return file[:-len(suffix)], file[-len(suffix):]
        if _named_without_extension(file):
            return file, ""
        return super()._to_id(file)  # a label's temporary file: its own extension

    def datalist(self, full_path: bool = True) -> List[Dict[str, Any]]:
        """MONAI Label's image-label pairs, each with its image's id: its path in the folder, where the file names
        alone repeat (every export's IM000001)."""
        items = super().datalist(full_path)
        return [{**item, "id": i} for item, i in zip(items, self._datastore.filter_by_tag(DefaultLabelTag.FINAL))]

    def get_image_uri(self, image_id: str) -> str:
        uri = super().get_image_uri(image_id)
        if not uri or not os.path.exists(uri):
            raise not_found(f"no image '{image_id}' in the datastore")
        return uri

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: Dict[str, Any]) -> str:
        check_box_label(label_filename, self.get_image_uri(image_id), image_id)
        folder = os.path.dirname(image_id)  # an image in a subfolder: its label in the same subfolder of labels/
        if folder:
            os.makedirs(os.path.join(self._datastore.label_path(label_tag), folder), exist_ok=True)
        try:
            return super().save_label(image_id, label_filename, label_tag, label_info)
        except ImageNotFoundException as exc:
            raise not_found(f"no image '{image_id}' in the datastore") from exc


class RadiographDICOMwebDatastore(DICOMWebDatastore):
    """Series of ``modalities`` on a DICOMweb server; one radiograph per series (the first instance is used)."""

    def __init__(self, client: Any, modalities: Sequence[str], cache_path: Optional[str] = None) -> None:
        self._modalities = [m.strip().upper() for m in modalities if m.strip()]
        super().__init__(client, {"Modality": self._modalities[0]}, cache_path, fetch_by_frame=False,
                         convert_to_nifti=False)
        self._extensions = ["*.dcm"]

    def list_images(self) -> List[str]:
        series: list[str] = []
        for modality in self._modalities:
            for found in self._client.search_for_series(search_filters={"Modality": modality}):
                uid = str(Dataset.from_json(found)["SeriesInstanceUID"].value)
                if uid not in series:
                    series.append(uid)
        return series

    def get_image_uri(self, image_id: str) -> str:
        """The series fetched once into the cache and registered there as ``<SeriesInstanceUID>.dcm``."""
        obj = self._datastore.objects.get(image_id)
        if obj is not None:
            path = os.path.join(self._datastore.image_path(), self._filename(image_id, obj.image.ext))
            if os.path.exists(path):
                return path
        if image_id not in self.list_images():
            raise not_found(f"no {'/'.join(self._modalities)} series '{image_id}' on {self._client.base_url}")
        folder = os.path.join(self._datastore.image_path(), ".series", image_id)
        if not os.path.isdir(folder) or not os.listdir(folder):
            self._fetch_series(image_id, folder)
        files = sorted(Path(folder).glob("*.dcm")) or sorted(p for p in Path(folder).iterdir() if p.is_file())
        if not files:
            raise not_found(f"series '{image_id}' has no instances")
        LocalDatastore.add_image(self, image_id, str(files[0]), {"series": image_id, "instances": len(files)})
        return os.path.join(self._datastore.image_path(), self._filename(image_id, ".dcm"))

    def _fetch_series(self, series_uid: str, folder: str) -> None:
        """Every instance as stored (transfer syntax '*'): the PACS is never asked to transcode, which Orthanc
        refuses for JPEG 2000 and which could be lossy."""
        found = self._client.search_for_series(search_filters={"SeriesInstanceUID": series_uid})
        if not found:
            raise not_found(f"no series '{series_uid}'")
        study_uid = str(Dataset.from_json(found[0])["StudyInstanceUID"].value)
        tmp = folder + ".partial"
        os.makedirs(tmp, exist_ok=True)
        for ds in self._client.retrieve_series(study_uid, series_uid, media_types=(("application/dicom", "*"),)):
            ds.save_as(os.path.join(tmp, f"{ds.SOPInstanceUID}.dcm"), write_like_original=False)
        shutil.rmtree(folder, ignore_errors=True)  # an empty leftover of an interrupted fetch
        os.replace(tmp, folder)

    def get_labeled_images(self, label_tag: Optional[str] = None, labels: Optional[List[str]] = None) -> List[str]:
        listed = set(self.list_images())
        return [i for i in LocalDatastore.get_labeled_images(self, label_tag, labels) if i in listed]

    def get_unlabeled_images(self, label_tag: Optional[str] = None, labels: Optional[List[str]] = None) -> List[str]:
        labelled = set(LocalDatastore.get_labeled_images(self, label_tag, labels))
        return [i for i in self.list_images() if i not in labelled]

    def get_label_uri(self, label_id: str, label_tag: str, image_id: str = "") -> str:
        return LocalDatastore.get_label_uri(self, label_id, label_tag)

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: Dict[str, Any],
                   label_id: str = "") -> str:
        check_box_label(label_filename, self.get_image_uri(image_id), image_id)
        return LocalDatastore.save_label(self, image_id, label_filename, label_tag, label_info)

    def datalist(self, full_path: bool = True) -> List[Dict[str, Any]]:
        return LocalDatastore.datalist(self, full_path)

    def status(self) -> Dict[str, Any]:
        labelled = self.get_labeled_images()
        return {"total": len(self.list_images()), "completed": len(labelled), "modalities": self._modalities}
