"""Reading inputs and writing outputs: atomic, never touching the input, never lossy."""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError

from .pixels.decode import LOSSY_SYNTAXES, PixelFrames, UnsupportedPixelData, decode_dataset, frames_from_array

_UMASK = os.umask(0)
os.umask(_UMASK)
DICOM_EXTENSIONS = {".dcm", ".dicom", ".dic", ".ima"}


class ReadError(Exception):
    """An input that is not a readable DICOM or image file."""


def _is_regular(path: Path) -> bool:
    """A regular file (through links): not a named pipe, socket or device, whose opening can wait for ever."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _head(path: Path, n: int) -> bytes | None:
    """A file's first ``n`` bytes, or None where it cannot be read."""
    if not _is_regular(path):
        return None
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return None


def is_dicom(path: Path) -> bool:
    """DICOM by content (the DICM magic after the 128-byte preamble), by extension, or as a bare dataset."""
    head = _head(path, 132)
    if head is None:
        return False
    return head[128:132] == b"DICM" or path.suffix.lower() in DICOM_EXTENSIONS or _bare_dataset(head)


def _bare_dataset(head: bytes) -> bool:
    """A dataset stored with no preamble and no File Meta, as older systems export it, often with no extension
    ("IM000001"): it begins with an attribute of group 0008 (identifying the image), in little-endian order."""
    return len(head) >= 8 and head[:2] == b"\x08\x00" and int.from_bytes(head[2:4], "little") < 0x1000


# An archive's first bytes, by kind: a site sends studies zipped, and what is inside is never searched
_ARCHIVES = ((b"PK\x03\x04", "ZIP"), (b"\x1f\x8b", "gzip"), (b"7z\xbc\xaf\x27\x1c", "7-Zip"), (b"Rar!", "RAR"),
             (b"BZh", "bzip2"), (b"\xfd7zXZ", "xz"))


def archive_kind(path: Path) -> str:
    """The kind of archive the file is ("ZIP", "tar", ...), or "" for none."""
    head = _head(path, 262) or b""
    if head[257:262] == b"ustar":
        return "tar"
    return next((kind for magic, kind in _ARCHIVES if head.startswith(magic)), "")


def read_dicom(path: Path) -> FileDataset:
    try:
        ds = pydicom.dcmread(str(path), force=True)  # only what is_dicom took for DICOM comes here
        ds.get("PixelData")  # touch the element so truncation in the header surfaces here
        _ = ds.get("SOPClassUID"), ds.get("Rows")
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ReadError(f"not a readable DICOM file ({type(exc).__name__}); the file may be corrupt or truncated") from exc
    if "SOPClassUID" not in ds and "PixelData" not in ds and not is_media_directory(ds):
        raise ReadError("no DICOM attributes could be read; the file is corrupt or not DICOM")
    _complete_meta(ds)
    return ds


def is_media_directory(ds: FileDataset) -> bool:
    """A DICOMDIR: the index of a CD or export, whose SOP class is given in its File Meta only."""
    media = pydicom.uid.MediaStorageDirectoryStorage
    return (ds.file_meta.get("MediaStorageSOPClassUID") == media or ds.get("SOPClassUID") == media
            or "DirectoryRecordSequence" in ds)


def _complete_meta(ds: FileDataset) -> None:
    """A dataset stored without its File Meta Information (no preamble, no "DICM": how older systems export) is
    read in the encoding pydicom finds; the meta is completed from that encoding and the dataset's own SOP UIDs,
    so its pixels decode and its output is a DICOM Part 10 file (it was quarantined as undecodable)."""
    meta = ds.file_meta
    if "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = (pydicom.uid.ImplicitVRLittleEndian if ds.is_implicit_VR else
                                  pydicom.uid.ExplicitVRLittleEndian if ds.is_little_endian else
                                  pydicom.uid.ExplicitVRBigEndian)
    for meta_kw, kw in (("MediaStorageSOPClassUID", "SOPClassUID"), ("MediaStorageSOPInstanceUID", "SOPInstanceUID")):
        if meta_kw not in meta and kw in ds:
            setattr(meta, meta_kw, ds[kw].value)


def read_image(path: Path, max_pixels: int = 80_000_000) -> np.ndarray:
    """PNG/JPEG/TIFF/BMP/JPEG 2000 as (H, W) or (H, W, 3) RGB, 8 or 16 bit, turned upright as its EXIF
    Orientation says. A TIFF of several pages is refused: its output would hold the first page alone, and the
    pages after it would be lost without a word. So is an image of more than ``max_pixels``, before its pixels
    are decoded (a PNG of a few kilobytes can hold billions of pixels), as a DICOM frame is."""
    data = np.fromfile(str(path), dtype=np.uint8)
    head = _image_header(data)
    size = head.size
    if size is not None and (size == (0, 0) or size[0] * size[1] > max_pixels):
        shown = f"{size[0]}x{size[1]}" if size != (0, 0) else "more than 179 million"
        raise UnsupportedPixelData(f"image of {shown} pixels exceeds input.max_pixels_per_frame={max_pixels}; "
                                   "raise it if this machine has the memory")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise ReadError("not a readable image file; it may be corrupt or truncated")
    pages = head.pages if head.pages is not None else _decoded_pages(data)
    if pages > 1:
        raise UnsupportedPixelData(f"a TIFF of {pages} pages (images); only single-page images are redacted. "
                                   "Split it into one file per page (for example with tiffsplit) and run again")
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3 and np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2]):
        img = np.ascontiguousarray(img[..., 0])  # grey stored as RGB
    if img.dtype not in (np.uint8, np.uint16):
        raise UnsupportedPixelData(f"image sample type {img.dtype} is not supported (8 or 16 bit expected)")
    return upright(img, head.orientation)


# EXIF Orientation (1-8): how the stored pixels are turned and flipped to be seen upright
_UPRIGHT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, either byte order


def upright(img: np.ndarray, orientation: int) -> np.ndarray:
    """The image as a viewer shows it under its EXIF ``orientation`` (1 or unknown: as stored)."""
    turn = _UPRIGHT.get(orientation)
    return img if turn is None else np.ascontiguousarray(turn(img))


@dataclass(frozen=True)
class _ImageHeader:
    """What an image file's headers tell before any pixel is decoded."""

    size: tuple[int, int] | None = None  # (width, height); None: Pillow cannot tell; (0, 0): over its own limit
    pages: int | None = 1  # None: a TIFF Pillow cannot count (an exotic compression)
    orientation: int = 1  # EXIF Orientation


def _image_header(data: np.ndarray) -> _ImageHeader:
    """Size, pages and EXIF Orientation of an image file's bytes, in one pass of Pillow over its headers.

    The size is refused over twice Pillow's own limit (179 million pixels: a decompression bomb) and then not
    told. Only a TIFF has pages. Only a JPEG's or a TIFF's orientation is read: a PNG's EXIF may follow its
    pixels, read only by decoding them all. A phone's photograph of a screen is stored sideways with a tag that
    turns it upright; the output (a PNG, with no EXIF: it may hold a place and a time) would be seen sideways,
    and its text would run up the image."""
    import warnings
    from io import BytesIO

    from PIL import Image

    tiff = data[:4].tobytes() in _TIFF_MAGIC
    jpeg = data[:2].tobytes() == b"\xff\xd8"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(BytesIO(data.tobytes())) as im:
                size = (int(im.size[0]), int(im.size[1]))
                try:
                    return _ImageHeader(size, int(getattr(im, "n_frames", 1)) if tiff else 1,
                                        int(im.getexif().get(0x0112, 1)) if tiff or jpeg else 1)
                except Exception:  # its pages or tags unreadable: the pixels as stored
                    return _ImageHeader(size, None if tiff else 1)
    except Image.DecompressionBombError:
        return _ImageHeader((0, 0))
    except Exception:  # nothing Pillow understands
        return _ImageHeader(None, None if tiff else 1)


def _decoded_pages(data: np.ndarray) -> int:
    """A TIFF's pages as OpenCV decodes them (where Pillow cannot count them); 1 if none decodes: the first
    page was."""
    ok, pages = cv2.imdecodemulti(data, cv2.IMREAD_UNCHANGED)
    return len(pages) if ok else 1


def read_frames(path: Path) -> PixelFrames:
    """The pixels of a DICOM file or a PNG/JPEG/TIFF, decoded as ``redact`` decodes them (for ``evaluate`` and
    contact sheets, which must see what the product sees)."""
    return decode_dataset(read_dicom(path)) if is_dicom(path) else frames_from_array(read_image(path))


NAME_MAX = 255  # bytes in one file name, on the file systems a site writes to (ext4, XFS, NTFS, APFS)


def beside(rel: Path, suffix: str) -> Path:
    """The path of a file kept beside ``rel`` and named after it (``x.dcm`` -> ``x.dcm.json``). A name that the
    suffix would make too long for the file system keeps its beginning and ends in a digest of the whole name:
    one such input had stopped the run when its record could not be written."""
    name = rel.name + suffix
    raw = rel.name.encode("utf-8", "surrogateescape")
    if len(raw) + len(suffix.encode()) <= NAME_MAX:
        return rel.with_name(name)
    digest = hashlib.sha256(raw).hexdigest()[:16]
    head = raw[: NAME_MAX - len(suffix.encode()) - len(digest) - 1].decode("utf-8", "ignore")
    return rel.with_name(f"{head}~{digest}{suffix}")


PARTIAL = ".tmp-"  # the name of a file being written starts so


def _atomic(dst: Path, write, mode: int = 0o666) -> None:  # type: ignore[no-untyped-def]
    """Write through a temporary file in the destination folder, fsync, then rename over ``dst``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=PARTIAL, suffix=dst.suffix, dir=dst.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def case_blind(folder: Path) -> bool:
    """Whether the file system under ``folder`` (which must exist) takes "a" and "A" for one name: macOS by
    default, Windows and the SMB shares a hospital may write to."""
    fd, probe = tempfile.mkstemp(prefix=".case-probe-", dir=folder)
    os.close(fd)
    try:
        return Path(probe).with_name(Path(probe).name.swapcase()).exists()
    finally:
        Path(probe).unlink(missing_ok=True)


def remove_partial_writes(folder: Path) -> int:
    """Remove the temporary files a run killed while writing (power cut, SIGKILL) left under ``folder``; how many.
    Call it only while no run writes there."""
    removed = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            if name.startswith(PARTIAL):
                Path(dirpath, name).unlink(missing_ok=True)
                removed += 1
    return removed


def write_bytes_atomic(dst: Path, data: bytes) -> None:
    _atomic(dst, lambda p: p.write_bytes(data))


def copy_atomic(src: Path, dst: Path) -> None:
    """An untouched copy (an original, PHI and all), readable by no more people than ``src`` is."""
    _atomic(dst, lambda p: shutil.copyfile(src, p), 0o666 & src.stat().st_mode)


def store_pixels(ds: Dataset, px: PixelFrames) -> None:
    """Put (modified) stored values back as uncompressed Explicit VR Little Endian: lossless, never re-encoded
    lossily. Colour goes back as RGB, interleaved."""
    lossy_source = str(ds.file_meta.TransferSyntaxUID) in LOSSY_SYNTAXES
    arr = px.frames if int(ds.get("NumberOfFrames", 1) or 1) > 1 else px.frames[0]
    kind = "i" if px.signed else "u"
    little_endian = np.dtype(f"<{kind}{int(ds.BitsAllocated) // 8}")
    ds.PixelData = np.ascontiguousarray(arr).astype(little_endian).tobytes()
    ds["PixelData"].VR = "OW" if int(ds.BitsAllocated) > 8 else "OB"
    ds["PixelData"].is_undefined_length = False
    if px.is_color:
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.is_little_endian, ds.is_implicit_VR = True, False
    if lossy_source:
        ds.LossyImageCompression = "01"


def write_dicom_atomic(ds: Dataset, dst: Path) -> None:
    _atomic(dst, lambda p: ds.save_as(str(p), write_like_original=False))


def write_image_atomic(img: np.ndarray, dst: Path) -> None:
    """Lossless only: PNG or TIFF (a JPEG input is written as PNG, never re-encoded as JPEG)."""
    ext = dst.suffix.lower()
    if ext not in (".png", ".tif", ".tiff"):
        raise ValueError(f"refusing to write {ext}: only lossless PNG/TIFF output is written")
    out = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    ok, buf = cv2.imencode(ext, out)
    if not ok:
        raise OSError(f"could not encode {ext}")
    write_bytes_atomic(dst, buf.tobytes())


def read_view(path: Path, max_pixels_per_frame: int = 80_000_000, max_frames: int = 2000
              ) -> tuple[np.ndarray, Dataset | None]:
    """The first frame of a DICOM or image file as a person sees it (uint8, bright is bright), with the dataset.

    What annotators label and the detector sees; raises ReadError or PixelDataError for what cannot be shown.
    """
    from .pixels import decode_dataset, frames_from_array, to_display

    if is_dicom(path):
        ds = read_dicom(path)
        return to_display(decode_dataset(ds, max_pixels_per_frame, max_frames), 0), ds
    return to_display(frames_from_array(read_image(path, max_pixels_per_frame)), 0), None
