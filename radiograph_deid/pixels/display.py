"""8-bit views of stored values for the detectors; never written anywhere."""
from __future__ import annotations

import cv2
import numpy as np

from ..enums import Photometric
from .decode import PixelFrames


def pixel_noise(gray: np.ndarray, most_rows: int = 256) -> float:
    """Pixel noise of an 8-bit view: the robust standard deviation of its difference from the 3x3 median, on at
    most about ``most_rows`` evenly spaced rows. Strokes, edges and smooth lighting barely move it."""
    sample = gray[:: max(1, gray.shape[0] // most_rows)]
    diff = sample.astype(np.int16) - cv2.medianBlur(sample, 3).astype(np.int16)
    return 1.4826 * float(np.median(np.abs(diff)))


def _window(values: np.ndarray, low_pct: float = 0.1, high_pct: float = 99.9) -> np.ndarray:
    sample = values[:: max(1, values.shape[0] // 512), :: max(1, values.shape[1] // 512)]
    lo, hi = np.percentile(sample, (low_pct, high_pct))
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(values.shape[:2], np.uint8)
    if values.dtype.itemsize == 2 and values.dtype.kind in "iu":  # a table of all 65536 values: 5x faster
        table = _scaled(np.arange(2**16, dtype=np.uint16).view(values.dtype), lo, hi)
        return table[values.view(np.uint16)]
    return _scaled(values, lo, hi)


def _scaled(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    scaled = (values.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def to_display(px: PixelFrames, index: int = 0) -> np.ndarray:
    """The frame as a person would see it: uint8, bright is bright; (H, W) or (H, W, 3) RGB.

    For more than 8 bits a robust percentile window stands in for the VOI LUT, so text burned at the extremes of
    the range shows; 8-bit values are shown as they are.
    """
    frame = px.frames[index]
    if px.photometric is Photometric.PALETTE_COLOR and px.palette_rgb is not None:
        return px.palette_rgb[np.clip(frame, 0, len(px.palette_rgb) - 1)]
    if px.is_color:
        if frame.dtype == np.uint8:
            return frame
        return (frame.astype(np.float32) * (255.0 / (2 ** px.bits_stored - 1))).clip(0, 255).astype(np.uint8)
    # 8-bit values span the display range already (PNG/JPEG exports, 8-bit DICOM): stretching them would show
    # the detector a contrast it was not trained on (measured: real validation de-identification 92.0 % as they
    # are, 85.3 % windowed). Deeper values get the percentile window.
    view = frame if frame.dtype == np.uint8 else _window(frame)
    return 255 - view if px.inverse_display else view


COLOUR_CHROMA = 64  # a pixel's brightest channel over its darkest: a stroke of colour, not tinted grey or JPEG noise
COLOUR_STROKE_PX = 9  # coloured areas an opening this wide leaves are an image's own (a Doppler map, a photograph)
BROAD_COLOUR_SHARE = 0.001  # a view with more of them than this is a colour image: its fragments are no lettering
GROUND_PX = 31  # the window a stroke's ground is measured over
STANDS_OUT = 48  # a stroke this far from its ground in luminance (on average) is seen there already


def detector_gray(view: np.ndarray) -> np.ndarray:
    """The grey view the luminance detectors, retention and the safety net look at: the view's luminance
    (``to_gray``), where in a colour view a thin stroke of colour on grey ground that does not stand out from that
    ground (a viewer's cyan or orange line over a lung as bright as itself) shows black or white, whichever stands
    further from it.

    In luminance alone such a line is not there (measured: an 11-px cyan date on a radiograph neither filled nor
    seen by the safety net). Strokes that stand out already (yellow on a black margin) are left as they are: shown
    white, a photographed screen's overlay cost reads for nothing. Broad colour (a Doppler map, a colour bar, a
    photograph) makes a colour image, whose thin fragments of colour are no lettering (a Doppler map's fringes
    turned white): such views get their luminance as it is. The OCR text detector, an RGB network, sees the colours
    themselves."""
    gray = to_gray(view)
    strokes = _thin_colour(view) if view.ndim == 3 else None
    if strokes is None:
        return gray
    shown = gray.copy()
    shown[strokes] = _shown_values(gray, strokes)
    return shown


def _shown_values(gray: np.ndarray, strokes: np.ndarray) -> np.ndarray:
    """The grey value of each stroke pixel (``gray[strokes]``): as it is where its stroke (8-connected) stands
    ``STANDS_OUT`` from its ground on average, else 0 on bright ground and 255 on dark. The ground is the mean of
    the grey pixels within ``GROUND_PX``, the strokes left out."""
    window = (GROUND_PX, GROUND_PX)
    summed = cv2.blur(np.where(strokes, 0, gray).astype(np.uint8), window)[strokes].astype(np.float32)
    share = cv2.blur(np.where(strokes, 0, 255).astype(np.uint8), window)[strokes].astype(np.float32)
    ground = 255 * summed / np.maximum(share, 1)
    _, labels = cv2.connectedComponents(strokes.view(np.uint8), connectivity=8)
    stroke = labels[strokes]
    pixels = np.maximum(np.bincount(stroke), 1)
    lum = gray[strokes]
    faint = np.bincount(stroke, weights=np.abs(lum - ground)) / pixels < STANDS_OUT
    bright_ground = np.bincount(stroke, weights=ground) / pixels >= 128
    return np.where(faint[stroke], np.where(bright_ground[stroke], 0, 255), lum).astype(np.uint8)


def _thin_colour(view: np.ndarray) -> np.ndarray | None:
    """The mask of a colour view's coloured pixels when they are all thin strokes (none broad over
    ``BROAD_COLOUR_SHARE`` of the view), else None."""
    channels = cv2.split(np.ascontiguousarray(view[..., :3]))
    chroma = cv2.subtract(cv2.max(cv2.max(channels[0], channels[1]), channels[2]),
                          cv2.min(cv2.min(channels[0], channels[1]), channels[2]))
    coloured = chroma >= COLOUR_CHROMA
    if not coloured.any():
        return None
    kernel = np.ones((COLOUR_STROKE_PX, COLOUR_STROKE_PX), np.uint8)
    if cv2.morphologyEx(coloured.view(np.uint8), cv2.MORPH_OPEN, kernel).mean() > BROAD_COLOUR_SHARE:
        return None
    return coloured


def to_gray(view: np.ndarray) -> np.ndarray:
    """Luminance of a display view (a no-op for monochrome); of a whole image, ``detector_gray`` shows colour too."""
    if view.ndim == 2:
        return view
    return (view[..., 0] * 0.299 + view[..., 1] * 0.587 + view[..., 2] * 0.114).astype(np.uint8)
