"""Where each output goes under OUTPUT: the input's own relative path, or a path that names no input.

Sites name folders and files after their patients ("DOE^JOHN_1234567/CHEST PA.dcm"); a de-identified image in a
folder of that name is not de-identified. With ``output.names: pseudonymous`` a DICOM output is named from its
de-identified header, ``<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` (the
pseudonym and the remapped UIDs, so a patient's studies stay together), and an image by a keyed digest of its
input path, ``images/<digest>.png``; both are the same on every run with the same key.
"""
from __future__ import annotations

import re
from pathlib import Path

from pydicom.dataset import Dataset

from .enums import OutputNames
from .fileio import beside
from .pseudonym import Pseudonymizer

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def image_output(rel: Path) -> Path:
    """Where an image's output goes: its own path for a PNG or TIFF; any other's (JPEG, BMP, JPEG 2000) is a PNG
    named after the whole input name ("x.jpg" -> "x.jpg.png"): never re-encoded lossily, and never the path of
    another input's output (written "x.png", a JPEG replaced the PNG "x.png" beside it)."""
    return rel if rel.suffix.lower() in (".png", ".tif", ".tiff") else beside(rel, ".png")


class OutputNamer:
    """The relative output path of a DICOM file (after its header is de-identified) or of an image."""

    def __init__(self, names: OutputNames, pseudonymizer: Pseudonymizer) -> None:
        self.names = OutputNames(names)
        self._ps = pseudonymizer

    def dicom(self, rel: Path, ds: Dataset) -> Path:
        if self.names is OutputNames.SAME:
            return rel
        parts = [_component(ds.get(kw)) for kw in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID")]
        sop = _component(ds.get("SOPInstanceUID"), self._ps.name(rel.as_posix()))
        return Path(*parts, f"{sop}.dcm")

    def image(self, rel: Path) -> Path:
        own = image_output(rel)
        if self.names is OutputNames.SAME:
            return own
        return Path("images", self._ps.name(rel.as_posix()) + own.suffix.lower())


def _component(value: object, missing: str = "unknown") -> str:
    """A de-identified value as one safe path component (a pseudonym, a UID)."""
    text = _UNSAFE.sub("_", str(value or "")).strip("._")
    return text or missing
