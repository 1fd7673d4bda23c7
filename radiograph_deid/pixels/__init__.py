"""Pixel handling in the stored-value domain: decode, display for detectors, fill, and lossless re-encode."""
from .decode import NoPixelData, PixelDataError, PixelFrames, UnsupportedPixelData, decode_dataset, frames_from_array
from .display import to_display
from .fill import black_value, fill_boxes

__all__ = [
    "NoPixelData",
    "PixelDataError",
    "PixelFrames",
    "UnsupportedPixelData",
    "decode_dataset",
    "frames_from_array",
    "to_display",
    "black_value",
    "fill_boxes",
]
