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


def image_to_data(gray: np.ndarray, config: str) -> dict[str, list[Any]]:
    """Tesseract's words with boxes and confidences (pytesseract's DICT output) for an 8-bit grey image."""
    import pytesseract

    return _with_file(gray, pytesseract.image_to_data, config, output_type=pytesseract.Output.DICT)  # type: ignore[no-any-return]


def image_to_string(gray: np.ndarray, config: str) -> str:
    """Tesseract's text for an 8-bit grey image."""
    import pytesseract

    return _with_file(gray, pytesseract.image_to_string, config)  # type: ignore[no-any-return]
