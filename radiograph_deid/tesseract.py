"""Tesseract calls that hand the program an uncompressed file.

pytesseract writes an in-memory image as a compressed PNG before every call; for a 1600-px page that encoding
(and Tesseract's decoding of it) took longer than the recognition itself (measured: 0.82 s a page as an array,
0.38 s as a PGM file, same words read). The file lives in a private temporary folder and is removed at once.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def _with_file(gray: np.ndarray, call: Any, config: str, **kwargs: Any) -> Any:
    with tempfile.TemporaryDirectory(prefix="radiograph-deid-tess-") as tmp:
        path = str(Path(tmp, "page.pgm"))
        if not cv2.imwrite(path, np.ascontiguousarray(gray, dtype=np.uint8)):
            raise OSError(f"could not write the temporary page for Tesseract in {tmp}")
        return call(path, config=config, **kwargs)


class TesseractTimeout(RuntimeError):
    """Tesseract did not finish within the time it was given (its process is killed)."""


def image_to_data(gray: np.ndarray, config: str, timeout_s: float = 0) -> dict[str, list[Any]]:
    """Tesseract's words with boxes and confidences (pytesseract's DICT output) for an 8-bit grey image; with
    ``timeout_s`` (0: none), TesseractTimeout when it takes longer."""
    import pytesseract

    try:
        return _with_file(gray, pytesseract.image_to_data, config,  # type: ignore[no-any-return]
                          output_type=pytesseract.Output.DICT, timeout=timeout_s)
    except RuntimeError as exc:
        if "timeout" in str(exc).lower():
            raise TesseractTimeout(f"Tesseract took longer than {timeout_s:g} s") from exc
        raise


def image_to_string(gray: np.ndarray, config: str) -> str:
    """Tesseract's text for an 8-bit grey image."""
    import pytesseract

    return _with_file(gray, pytesseract.image_to_string, config)  # type: ignore[no-any-return]
