"""Decode DICOM pixel data into stored values, refusing what cannot be handled safely."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixel_data_handlers.util import apply_color_lut, convert_color_space
from pydicom.uid import UID

from ..enums import Photometric


class PixelDataError(Exception):
    """Pixel data that cannot be decoded or processed; the file goes to quarantine with this reason."""


class UnsupportedPixelData(PixelDataError):
    """A pixel format or transfer syntax this tool does not handle."""


class NoPixelData(Exception):
    """A DICOM object without pixel data (SR, PR, KO...)."""


# Syntaxes whose decoded pixels are the stored values of a lossy codec: never re-encoded lossily again.
LOSSY_SYNTAXES = {
    pydicom.uid.JPEGBaseline8Bit,
    pydicom.uid.JPEGExtended12Bit,
    pydicom.uid.JPEG2000,
    pydicom.uid.JPEGLSNearLossless,
    "1.2.840.10008.1.2.4.203",  # HTJ2K (lossy or lossless)
}
_UNCOMPRESSED = {
    pydicom.uid.ImplicitVRLittleEndian,
    pydicom.uid.ExplicitVRLittleEndian,
    pydicom.uid.ExplicitVRBigEndian,
    pydicom.uid.DeflatedExplicitVRLittleEndian,
}
SUPPORTED_SYNTAXES = _UNCOMPRESSED | {
    pydicom.uid.RLELossless,
    pydicom.uid.JPEGBaseline8Bit,
    pydicom.uid.JPEGExtended12Bit,
    pydicom.uid.JPEGLosslessP14,
    pydicom.uid.JPEGLosslessSV1,
    pydicom.uid.JPEGLSLossless,
    pydicom.uid.JPEGLSNearLossless,
    pydicom.uid.JPEG2000Lossless,
    pydicom.uid.JPEG2000,
}


@dataclass
class PixelFrames:
    """Frames of stored values with what is needed to show and fill them.

    ``frames`` is (F, H, W) for monochrome and palette images, (F, H, W, 3) RGB for colour.
    """

    frames: np.ndarray
    photometric: Photometric
    bits_stored: int
    signed: bool
    inverse_display: bool = False  # MONOCHROME1, or MONOCHROME2 with Presentation LUT Shape INVERSE
    palette_rgb: np.ndarray | None = None  # (N, 3) uint8 for PALETTE COLOR
    unused_bits_cleared: int = 0  # samples whose bits above BitsStored held something (``hold_to_bits_stored``)

    @property
    def is_color(self) -> bool:
        return self.frames.ndim == 4

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])


def _transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    ts = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if ts is None:
        return pydicom.uid.ImplicitVRLittleEndian if ds.is_implicit_VR else pydicom.uid.ExplicitVRLittleEndian
    return UID(ts)


def check_decodable(ds: Dataset, max_pixels_per_frame: int, max_frames: int) -> None:
    """Raise before decoding anything that is absent, unsupported or too large."""
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise UnsupportedPixelData("float pixel data is not supported (radiographs are integer)")
        if "Rows" in ds or "Columns" in ds:  # an image whose pixel data is gone: truncated, not "no pixels"
            raise PixelDataError("pixel data is missing although the header describes an image; "
                                 "the file is probably truncated")
        raise NoPixelData("no pixel data")
    ts = _transfer_syntax(ds)
    if ts not in SUPPORTED_SYNTAXES:
        name = ts.name if ts.is_transfer_syntax else "unknown"
        raise UnsupportedPixelData(f"unsupported transfer syntax {ts} ({name}); convert it to an uncompressed "
                                   "or lossless syntax (e.g. dcmconv +te) and rerun")
    for kw in ("Rows", "Columns", "BitsAllocated", "BitsStored", "SamplesPerPixel", "PhotometricInterpretation"):
        if ds.get(kw) in (None, ""):
            raise PixelDataError(f"required pixel attribute {kw} is missing")
    if ds.BitsAllocated not in (8, 16):
        raise UnsupportedPixelData(f"BitsAllocated={ds.BitsAllocated} is not supported (8 or 16 expected)")
    try:
        photometric = Photometric(str(ds.PhotometricInterpretation).strip())
    except ValueError:
        raise UnsupportedPixelData(f"photometric interpretation {ds.PhotometricInterpretation!r} is not supported")
    if photometric in (Photometric.MONOCHROME1, Photometric.MONOCHROME2, Photometric.PALETTE_COLOR):
        if int(ds.SamplesPerPixel) != 1:
            raise PixelDataError(f"{photometric.value} with SamplesPerPixel={ds.SamplesPerPixel}")
    elif int(ds.SamplesPerPixel) != 3:
        raise PixelDataError(f"{photometric.value} with SamplesPerPixel={ds.SamplesPerPixel}")
    rows, cols = int(ds.Rows), int(ds.Columns)
    if rows < 1 or cols < 1:
        raise PixelDataError(f"empty image ({rows}x{cols})")
    if rows * cols > max_pixels_per_frame:
        raise UnsupportedPixelData(f"frame of {rows}x{cols} pixels exceeds input.max_pixels_per_frame="
                                   f"{max_pixels_per_frame}; raise it if this machine has the memory")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > max_frames:
        raise UnsupportedPixelData(f"{frames} frames exceed input.max_frames={max_frames}")


def decode_dataset(ds: Dataset, max_pixels_per_frame: int = 80_000_000, max_frames: int = 2000) -> PixelFrames:
    """Stored values of every frame; colour converted to RGB (the only colour space written back)."""
    check_decodable(ds, max_pixels_per_frame, max_frames)
    photometric = Photometric(str(ds.PhotometricInterpretation).strip())
    try:
        arr = ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        raise UnsupportedPixelData(f"no decoder could read this pixel data: {exc}") from exc
    except Exception as exc:  # truncated or corrupt codestreams raise many types
        raise PixelDataError(f"pixel data could not be decoded ({type(exc).__name__}: {exc})") from exc
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    color = int(ds.SamplesPerPixel) == 3
    if n_frames == 1:
        arr = arr[None]
    expected = (n_frames, int(ds.Rows), int(ds.Columns)) + ((3,) if color else ())
    if arr.shape != expected:
        raise PixelDataError(f"decoded pixel array has shape {arr.shape}, expected {expected}")
    if color:
        if photometric in (Photometric.YBR_FULL, Photometric.YBR_FULL_422):
            arr = convert_color_space(arr, "YBR_FULL", "RGB", per_frame=True)
        # YBR_ICT/YBR_RCT come back from the JPEG 2000 decoder already as RGB.
        photometric = Photometric.RGB
    palette = None
    if photometric is Photometric.PALETTE_COLOR:
        try:
            lut = apply_color_lut(np.arange(2 ** int(ds.BitsStored), dtype=np.uint16)
                                  if int(ds.BitsStored) <= 16 else np.arange(65536), ds)
        except Exception as exc:
            raise PixelDataError(f"palette colour lookup table is unusable: {exc}") from exc
        palette = _to_uint8(np.asarray(lut))
    inverse = photometric is Photometric.MONOCHROME1
    if str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE":
        inverse = not inverse
    arr, cleared = hold_to_bits_stored(arr, int(ds.BitsStored))
    return PixelFrames(
        frames=np.ascontiguousarray(arr),
        photometric=photometric,
        bits_stored=int(ds.BitsStored),
        signed=int(ds.get("PixelRepresentation", 0)) == 1,
        inverse_display=inverse,
        palette_rgb=palette,
        unused_bits_cleared=cleared,
    )


def hold_to_bits_stored(values: np.ndarray, bits_stored: int) -> tuple[np.ndarray, int]:
    """Stored values with the bits above BitsStored cleared (sign-extended where the values are signed: pydicom
    gives a signed type as the data says, even against the header), and how many samples held anything there.

    Those bits are not the image: older systems kept overlays in them (retired "overlays in pixel data": a name
    or an ID drawn in bit 15 of 12-bit CR), which outlive the removal of the 60xx group, and a viewer that does
    not mask them shows them. pydicom 2 returns them as they are, and leaves signed values unextended.
    """
    bits = values.dtype.itemsize * 8
    if not 0 < bits_stored < bits or values.dtype.kind not in "iu":
        return values, 0
    raw = values.view(values.dtype.str.replace("i", "u"))  # the same bytes, in their own byte order
    mask = (1 << bits_stored) - 1
    if values.dtype.kind == "u":  # one pass where, as nearly always, nothing is there
        over = raw > mask
        return (values, 0) if not over.any() else (values & values.dtype.type(mask), int(np.count_nonzero(over)))
    low = raw & mask
    upper = raw >> bits_stored
    ones = (1 << (bits - bits_stored)) - 1
    negative = (low >> (bits_stored - 1)) == 1
    stray = (upper != 0) & ~(negative & (upper == ones))  # a sign extension above a negative value is not stray
    signed = low.astype(np.int32) - (negative.astype(np.int32) << bits_stored)
    return signed.astype(values.dtype), int(np.count_nonzero(stray))


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.reshape(-1, 3).astype(np.float64)
    top = 255.0 if rgb.max() <= 255 else 65535.0
    return np.clip(np.round(rgb / top * 255.0), 0, 255).astype(np.uint8)


def frames_from_array(image: np.ndarray) -> PixelFrames:
    """Wrap a decoded PNG/JPEG/TIFF array (H, W) or (H, W, 3) RGB, 8 or 16 bit."""
    if image.dtype not in (np.uint8, np.uint16):
        raise UnsupportedPixelData(f"image sample type {image.dtype} is not supported (8 or 16 bit expected)")
    color = image.ndim == 3
    return PixelFrames(
        frames=np.ascontiguousarray(image[None]),
        photometric=Photometric.RGB if color else Photometric.MONOCHROME2,
        bits_stored=8 * image.dtype.itemsize,
        signed=False,
    )
