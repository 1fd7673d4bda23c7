"""Decoding every supported syntax and photometric to stored values, and filling so the box shows black."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from radiograph_deid.boxes import Box
from radiograph_deid.enums import Photometric
from radiograph_deid.pixels import PixelDataError, UnsupportedPixelData, black_value, decode_dataset, fill_boxes, to_display
from radiograph_deid.synthetic import compress, make_dataset, sample_radiograph

from .conftest import deid_data, in_colour_alone, pydicom_data


@pytest.mark.parametrize("compressed, reference", [
    ("RG1_J2KR.dcm", "RG1_UNCR.dcm"),  # CR chest, MONOCHROME1, JPEG 2000 lossless
    ("RG3_J2KR.dcm", "RG3_UNCR.dcm"),  # CR tibia with an R marker
    ("US1_J2KR.dcm", "US1_UNCR.dcm"),  # YBR_RCT colour
    ("OBXXXX1A_rle.dcm", "OBXXXX1A.dcm"),  # RLE, palette colour
    ("OBXXXX1A_expb_2frame.dcm", "OBXXXX1A_2frame.dcm"),  # big endian, multi-frame
])
def test_lossless_syntaxes_decode_to_the_same_stored_values(compressed: str, reference: str) -> None:
    a = decode_dataset(pydicom.dcmread(pydicom_data(compressed)))
    b = decode_dataset(pydicom.dcmread(pydicom_data(reference)))
    assert a.photometric == b.photometric
    np.testing.assert_array_equal(a.frames, b.frames)


def test_monochrome1_cr_fills_with_the_maximum_and_displays_black() -> None:
    px = decode_dataset(pydicom.dcmread(pydicom_data("RG1_UNCR.dcm")))
    assert px.photometric is Photometric.MONOCHROME1 and px.inverse_display
    assert black_value(px) == 2**px.bits_stored - 1
    fill_boxes(px, [Box(100, 100, 300, 200)])
    view = to_display(px)
    assert view[100:200, 100:300].max() == 0


def test_8_bit_images_are_shown_to_the_detectors_as_they_are(tmp_path: Path) -> None:
    """An 8-bit export is already a display image: the detectors see its values unstretched (the percentile window
    lowered real validation de-identification from 92 % to 85 %), and ``evaluate`` reads it as ``redact`` does."""
    from radiograph_deid.evaluate import labelled_items
    from radiograph_deid.fileio import read_frames
    from radiograph_deid.labels import LabelledImage
    from radiograph_deid.pixels import frames_from_array

    img = (np.linspace(30, 200, 64 * 80).reshape(64, 80)).astype(np.uint8)
    np.testing.assert_array_equal(to_display(frames_from_array(img)), img)
    cv2.imwrite(str(tmp_path / "x.png"), img)
    ((_, view, _),) = labelled_items([LabelledImage("x.png", 80, 64, ())], tmp_path)
    np.testing.assert_array_equal(view, to_display(read_frames(tmp_path / "x.png")))
    np.testing.assert_array_equal(view, img)
    deep = frames_from_array(img.astype(np.uint16) * 16)
    assert to_display(deep).min() == 0 and to_display(deep).max() == 255  # deeper values are windowed


@pytest.mark.parametrize("signed", [False, True])
def test_the_display_window_of_16_bit_values_is_the_same_by_table(signed: bool) -> None:
    """16-bit frames are windowed through a 65536-entry table (5x faster): every value must map as computed."""
    from radiograph_deid.pixels.display import _scaled, _window

    stored = decode_dataset(pydicom.dcmread(pydicom_data("RG1_UNCR.dcm"))).frames[0]
    values = (stored.astype(np.int32) - 2048).astype(np.int16) if signed else stored.astype(np.uint16)
    sample = values[:: max(1, values.shape[0] // 512), :: max(1, values.shape[1] // 512)]
    lo, hi = np.percentile(sample, (0.1, 99.9))
    np.testing.assert_array_equal(_window(values), _scaled(values, float(lo), float(hi)))
    assert len(np.unique(_window(values))) > 200


@pytest.mark.parametrize("signed", [False, True])
def test_monochrome2_fills_with_the_minimum(signed: bool) -> None:
    ds, _ = sample_radiograph(128, 128, bits=12, signed=signed)
    px = decode_dataset(ds)
    assert black_value(px) == (-2048 if signed else 0)
    fill_boxes(px, [Box(0, 0, 10, 10)])
    assert (px.frames[0, :10, :10] == black_value(px)).all()


def test_bits_above_bits_stored_are_cleared_and_counted() -> None:
    """An overlay kept in the unused high bits (a name drawn in bit 15 of 12-bit CR) outlived the removal of the
    60xx group: pydicom 2 returns those bits as they are. They are cleared now and counted; a signed value is
    sign-extended, and a proper sign extension is not counted."""
    raw = np.array([[0x0123, 0x8123, 0x0FFF, 0x4000]], np.uint16)
    px = decode_dataset(make_dataset(raw, bits_stored=12))
    assert px.frames[0].tolist() == [[0x0123, 0x0123, 0x0FFF, 0]] and px.unused_bits_cleared == 2
    # -5 sign-extended, -5 not extended, +5 with bit 15 set, +5
    raw = np.array([[0xFFFB, 0x0FFB, 0x8005, 0x0005]], np.uint16).view(np.int16)
    px = decode_dataset(make_dataset(raw, bits_stored=12, signed=True))
    assert px.frames[0].tolist() == [[-5, -5, 5, 5]] and px.unused_bits_cleared == 1
    ds, _ = sample_radiograph(64, 64, bits=16)
    assert decode_dataset(ds).unused_bits_cleared == 0
    little, big = (decode_dataset(pydicom.dcmread(pydicom_data(f"emri_small{s}.dcm"))) for s in ("", "_big_endian"))
    assert big.unused_bits_cleared == 0, "big-endian values were read in the wrong byte order"
    np.testing.assert_array_equal(big.frames, little.frames)


def test_ybr_jpeg_baseline_is_converted_to_rgb() -> None:
    ds = pydicom.dcmread(deid_data("humans/ctbrain1.dcm"))
    px = decode_dataset(ds)
    assert px.photometric is Photometric.RGB and px.frames.shape[-1] == 3
    assert black_value(px) == (0, 0, 0)


def test_colour_that_luminance_hides_is_shown_black_or_white_and_the_rest_as_it_is() -> None:
    """The grey view the luminance detectors and the safety net see of a colour image: a cyan line as bright as the
    lung under it shows black or white, far from its ground; a viewer's teal "SIEMENS" on an ultrasound's black
    margin, plain in luminance already, and an echo with a Doppler map and a colour bar (broad colour, whose thin
    fringes are no lettering) are their luminance as they are."""
    from radiograph_deid.fileio import read_view
    from radiograph_deid.pixels.display import detector_gray, to_gray

    rgb, lum, ink = in_colour_alone(0.5, 22)
    gray = detector_gray(rgb)
    assert np.isin(gray[ink], (0, 255)).all() and np.abs(gray[ink].astype(int) - lum[ink]).mean() > 80
    assert np.array_equal(gray[~ink], lum[~ink])
    view, _ = read_view(deid_data("ultrasounds/RGB_IMAGE.dcm"))
    rgb = view[55:85, 900:].astype(int)
    assert ((rgb.max(axis=2) - rgb.min(axis=2)) >= 64).sum() > 600  # the word's teal letters
    assert np.array_equal(detector_gray(view)[55:85, 900:], to_gray(view)[55:85, 900:])
    echo, _ = read_view(deid_data("ultrasounds/ultrasound-multiframe.dcm"), 10**8, 100)
    assert np.array_equal(detector_gray(echo), to_gray(echo))
    grey = lum.copy()
    assert detector_gray(grey) is grey


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_photograph_is_read_upright_as_its_exif_orientation_says(tmp_path: Path, orientation: int) -> None:
    """A phone stores a photograph of a screen sideways with an EXIF Orientation that turns it upright; the image
    is read as Pillow's exif_transpose shows it (the output PNG has no EXIF, and was seen sideways)."""
    from PIL import Image, ImageOps

    from radiograph_deid.fileio import read_image

    pattern = np.add.outer(np.arange(60), 2 * np.arange(90)).astype(np.uint8)
    pattern[5:20, 60:85] = 255  # a block in one corner: no turn or flip maps the pattern onto itself
    path = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pattern).save(path, quality=100, exif=exif)
    with Image.open(path) as im:
        seen = np.asarray(ImageOps.exif_transpose(im))
    read = read_image(path)
    assert read.shape == seen.shape
    assert np.abs(read.astype(int) - seen.astype(int)).max() <= 3


def test_keep_mask_leaves_glyph_pixels() -> None:
    ds, _ = sample_radiograph(64, 64)
    px = decode_dataset(ds)
    before = px.frames.copy()
    keep = np.zeros((10, 10), bool)
    keep[4:6, 4:6] = True
    changed = fill_boxes(px, [Box(20, 20, 30, 30)], [keep])
    assert changed == 96
    np.testing.assert_array_equal(px.frames[0, 24:26, 24:26], before[0, 24:26, 24:26])


@pytest.mark.parametrize("syntax", [pydicom.uid.JPEGLSLossless, pydicom.uid.JPEGLosslessSV1, pydicom.uid.RLELossless])
def test_generated_lossless_syntaxes_round_trip(syntax: str) -> None:
    ds, _ = sample_radiograph(96, 96, photometric="MONOCHROME1", modality="CR")
    ref = decode_dataset(ds).frames.copy()
    np.testing.assert_array_equal(decode_dataset(compress(ds, syntax)).frames, ref)


def test_refusals_say_why() -> None:
    ds, _ = sample_radiograph(64, 64)
    with pytest.raises(UnsupportedPixelData, match="max_pixels_per_frame"):
        decode_dataset(ds, max_pixels_per_frame=100)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 video
    with pytest.raises(UnsupportedPixelData, match="unsupported transfer syntax"):
        decode_dataset(ds)
    short = pydicom.dcmread(pydicom_data("emri_small_jpeg_2k_lossless_too_short.dcm"))
    with pytest.raises(PixelDataError):
        decode_dataset(short)
    seg = pydicom.dcmread(pydicom_data("liver.dcm"))
    with pytest.raises(UnsupportedPixelData, match="BitsAllocated=1"):
        decode_dataset(seg)


def test_glyph_mask_keeps_the_letter_even_when_it_fills_its_box() -> None:
    """Regression: a tight box around a white L once kept the grey ground and filled the letter."""
    from radiograph_deid.retention import glyph_mask

    view = np.full((60, 60), 90, np.uint8)
    view[20:40, 20:24] = 250  # the stem
    view[36:40, 20:34] = 250  # the foot
    box = Box(20, 20, 34, 40)  # exactly the letter's extent, as a detector may return it
    mask = glyph_mask(view, box)
    assert mask is not None and mask.shape == (20, 14)
    letter = view[20:40, 20:34] == 250
    assert mask[letter].all()  # every pixel of the letter kept
    assert not mask[2:12, 8:14].any()  # the ground away from the letter is not
