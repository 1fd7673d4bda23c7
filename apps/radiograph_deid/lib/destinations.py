"""Where de-identified results may also be stored: a folder or a second DICOMweb server, never the source."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional

import pydicom

from radiograph_deid.fileio import copy_atomic, is_dicom, write_bytes_atomic


class Destination:
    def store(self, path: Path) -> str:
        raise NotImplementedError


class FolderDestination(Destination):
    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def store(self, path: Path) -> str:
        """Stored under a name that is unique and holds no PHI: a DICOM's (remapped) SOP Instance UID; an image's
        content digest (by its own name, two images called x.png from two requests were one file)."""
        if is_dicom(path):
            dst = self.folder / f"{pydicom.dcmread(str(path), stop_before_pixels=True).SOPInstanceUID}.dcm"
            copy_atomic(path, dst)
        else:  # read once: hashed and written from the same bytes
            data = path.read_bytes()
            dst = self.folder / f"{hashlib.sha256(data).hexdigest()[:32]}{path.suffix.lower()}"
            write_bytes_atomic(dst, data)
        return str(dst)


class DICOMwebDestination(Destination):
    def __init__(self, url: str) -> None:
        from dicomweb_client import DICOMwebClient

        self.url = url.rstrip("/")
        self.client = DICOMwebClient(url=self.url)

    def store(self, path: Path) -> str:
        if not is_dicom(path):
            raise ValueError("only DICOM results can be stored to a DICOMweb destination")
        ds = pydicom.dcmread(str(path))
        self.client.store_instances([ds])
        return f"{self.url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def _same_place(a: str, b: str) -> bool:
    if a.startswith(("http://", "https://")) or b.startswith(("http://", "https://")):
        return a.rstrip("/") == b.rstrip("/")
    ra, rb = Path(a).resolve(), Path(b).resolve()
    return ra == rb or ra in rb.parents or rb in ra.parents


def build_destination(target: str, studies: str) -> Optional[Destination]:
    """None when no destination is configured; refuses one that is (or contains, or lies in) the source."""
    if not target:
        return None
    if _same_place(target, studies):
        raise ValueError(f"destination {target} is the studies source (or inside it): de-identified results are "
                         "never stored over or among the originals; give another folder or DICOMweb server")
    if target.startswith(("http://", "https://")):
        return DICOMwebDestination(target)
    return FolderDestination(os.path.expanduser(target))
