"""Synthetic radiographs with burned-in text and a header full of fake PHI: the shipped sample, test cases and
benchmark inputs. Every name, ID and date here is invented."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

FAKE_PHI = {
    "PatientName": "DOE^JANE^Q",
    "PatientID": "MRN00482913",
    "PatientBirthDate": "19610412",
    "AccessionNumber": "ACC7731920",
    "InstitutionName": "SAINT EXAMPLE HOSPITAL",
    "ReferringPhysicianName": "HOUSE^GREGORY",
    "OperatorsName": "TECH^ANNA",
    "StudyDate": "20240305",
    "StudyTime": "142233",
    "StudyDescription": "CHEST PA DOE JANE",
}
CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
SC_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"


def phantom(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """A chest-like float image in [0, 1] (bright is dense): body, darker lungs, ribs, spine, noise."""
    rng = np.random.default_rng(seed)
    img = np.zeros((rows, cols), np.float32)
    cv2.ellipse(img, (cols // 2, rows // 2), (int(cols * 0.42), int(rows * 0.47)), 0, 0, 360, 0.75, -1)
    for side in (-1, 1):
        cv2.ellipse(img, (cols // 2 + side * int(cols * 0.18), int(rows * 0.45)),
                    (int(cols * 0.14), int(rows * 0.3)), 0, 0, 360, 0.35, -1)
        for k in range(9):
            y = int(rows * (0.22 + 0.06 * k))
            cv2.ellipse(img, (cols // 2, y), (int(cols * 0.33), int(rows * 0.05)), 0, 180 + 90 * (side > 0),
                        270 + 90 * (side > 0), 0.6, max(2, rows // 150))
    cv2.rectangle(img, (cols // 2 - cols // 40, rows // 8), (cols // 2 + cols // 40, rows * 7 // 8), 0.85, -1)
    img = cv2.GaussianBlur(img, (0, 0), max(1.0, rows / 300))
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    return np.clip(img, 0, 1)


@dataclass(frozen=True)
class Burn:
    """One piece of burned-in text: ``text`` at (x, y) top-left, ``height`` pixels tall, ``value`` in [0, 1]."""

    text: str
    x: int
    y: int
    height: int
    value: float = 1.0
    thickness: int = 0

    def _scale(self) -> tuple[float, int]:
        scale = self.height / 22.0
        return scale, self.thickness or max(1, int(round(self.height / 10)))

    def extent(self) -> tuple[int, int, int, int]:
        """The box (x0, y0, x1, y1) its ink lies in, strokes' width and antialiasing included."""
        scale, thick = self._scale()
        (w, h), base = cv2.getTextSize(self.text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        pad = thick + 1
        return self.x - pad, self.y - pad, self.x + w + pad, self.y + h + base + pad

    def draw(self, img: np.ndarray) -> None:
        scale, thick = self._scale()
        (_, h), _ = cv2.getTextSize(self.text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        cv2.putText(img, self.text, (self.x, self.y + h), cv2.FONT_HERSHEY_SIMPLEX, scale, float(self.value), thick,
                    cv2.LINE_AA)


def burn(img: np.ndarray, burns: list[Burn]) -> np.ndarray:
    out = img.copy()
    for b in burns:
        b.draw(out)
    return out


def default_burns(rows: int, cols: int) -> list[Burn]:
    """PHI text in the corners and an isolated laterality marker, sized for a ``rows`` x ``cols`` image."""
    h = max(10, rows // 45)
    return [
        Burn("DOE, JANE  MRN00482913", cols // 30, rows // 30, h),
        Burn("05/03/2024 14:22", cols // 30, rows // 30 + 2 * h, h),
        Burn("PORTABLE", int(cols * 0.62), rows // 30, h),
        Burn("SAINT EXAMPLE HOSP", int(cols * 0.55), int(rows * 0.93), h),
        Burn("L", int(cols * 0.86), int(rows * 0.18), 2 * h, thickness=max(2, h // 4)),
    ]


def to_stored(img: np.ndarray, bits: int, monochrome1: bool, signed: bool = False) -> np.ndarray:
    top = 2**bits - 1
    v = np.round((1.0 - img if monochrome1 else img) * top)
    if signed:
        return (v - 2 ** (bits - 1)).astype(np.int16 if bits > 8 else np.int8)
    return v.astype(np.uint16 if bits > 8 else np.uint8)


def make_dataset(pixels: np.ndarray, photometric: str = "MONOCHROME2", modality: str = "DX",
                 bits_stored: int | None = None, signed: bool = False, burned_in: str = "NO") -> FileDataset:
    """A valid DICOM file dataset around ``pixels`` ((H, W), (F, H, W) or RGB (H, W, 3)) with fake PHI."""
    color = photometric in ("RGB", "YBR_FULL")
    multi = pixels.ndim == (4 if color else 3)
    sop_class = {"CR": CR_IMAGE_STORAGE, "DX": DX_IMAGE_STORAGE}.get(modality, SC_IMAGE_STORAGE)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid(), generate_uid()
    ds.Modality = modality
    for k, v in FAKE_PHI.items():
        setattr(ds, k, v)
    ds.SeriesDate = ds.ContentDate = FAKE_PHI["StudyDate"]
    ds.PatientSex, ds.ImageLaterality, ds.BodyPartExamined = "F", "L", "CHEST"
    ds.BurnedInAnnotation = burned_in
    ds.add_new(0x00091010, "LO", "PRIVATE CREATOR")
    ds.add_new(0x00091011, "LO", "private identifying note")
    ds.add_new(0x60000010, "US", pixels.shape[-2 if color else -1])  # an overlay group to be removed
    ds.Rows, ds.Columns = pixels.shape[-3 if color else -2], pixels.shape[-2 if color else -1]
    if multi:
        ds.NumberOfFrames = pixels.shape[0]
    ds.SamplesPerPixel = 3 if color else 1
    if color:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds["PixelData"].VR = "OW" if ds.BitsAllocated > 8 else "OB"
    ds.InstanceCreationDate = FAKE_PHI["StudyDate"]
    return ds


def sample_radiograph(rows: int = 1024, cols: int = 1024, photometric: str = "MONOCHROME2", bits: int = 12,
                      modality: str = "DX", seed: int = 0, signed: bool = False,
                      burns: list[Burn] | None = None) -> tuple[FileDataset, list[Burn]]:
    burns = default_burns(rows, cols) if burns is None else burns
    img = burn(phantom(rows, cols, seed), burns)
    stored = to_stored(img, bits, photometric == "MONOCHROME1", signed)
    return make_dataset(stored, photometric, modality, bits, signed), burns


def compress(ds: FileDataset, syntax: str) -> FileDataset:
    """Re-encode losslessly (RLE via pydicom, JPEG 2000 lossless / JPEG-LS via gdcm) for decoder tests."""
    if syntax == pydicom.uid.RLELossless:
        ds.compress(pydicom.uid.RLELossless, encoding_plugin="pydicom")
        return ds
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return _gdcm_transcode(ds, syntax, f"{tmp}/in.dcm", f"{tmp}/out.dcm")


def _gdcm_transcode(ds: FileDataset, syntax: str, tmp_in: str, tmp_out: str) -> FileDataset:
    import gdcm

    ds.save_as(tmp_in, write_like_original=False)
    reader = gdcm.ImageReader()
    reader.SetFileName(tmp_in)
    if not reader.Read():
        raise RuntimeError("gdcm could not read the dataset")
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(syntax)))
    change.SetInput(reader.GetImage())
    if not change.Change():
        raise RuntimeError(f"gdcm could not encode {syntax}")
    writer = gdcm.ImageWriter()
    writer.SetFileName(tmp_out)
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    if not writer.Write():
        raise RuntimeError("gdcm could not write")
    out = pydicom.dcmread(tmp_out)
    out.PixelData  # load before the temporary folder goes
    return out
