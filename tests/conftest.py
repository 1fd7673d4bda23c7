"""Real DICOM from the pip data packages (pydicom-data, deid-data) and generated cases. No ../shared."""
from __future__ import annotations

import hashlib
import os
from importlib.metadata import distribution
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

os.environ.setdefault("OMP_THREAD_LIMIT", "1")


def pydicom_data(name: str) -> Path:
    path = Path(str(distribution("pydicom-data").locate_file(f"data_store/data/{name}")))
    if not path.is_file():
        pytest.skip(f"pydicom-data lacks {name}")
    return path


def deid_data(rel: str) -> Path:
    import deid_data as pkg

    return Path(pkg.__file__).parent / "data" / rel


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def key_overrides(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return [f"header.key_file={tmp_path_factory.mktemp('key') / 'secret.key'}"]


def labelled_synthetic(folder: Path, prefix: str, rows: int, cols: int, seeds: Sequence[int],
                       rng: np.random.Generator) -> list:
    """Markers synthesized on phantoms (one per seed), written to ``folder`` as 8-bit PNGs named ``prefix`` + index,
    with their labels (``LabelledImage``; set split or patient with ``dataclasses.replace``)."""
    import cv2

    from radiograph_deid.labels import LabelledBox, LabelledImage
    from radiograph_deid.marker_synth import synthesize
    from radiograph_deid.synthetic import phantom

    images = []
    for i, seed in enumerate(seeds):
        img, placed = synthesize(phantom(rows, cols, seed), rng)
        cv2.imwrite(str(folder / f"{prefix}{i}.png"), (img * 255).astype(np.uint8))
        images.append(LabelledImage(f"{prefix}{i}.png", cols, rows,
                                    tuple(LabelledBox(p.xyxy, p.cls, p.text) for p in placed)))
    return images


CRASH_HOOK = """
import multiprocessing, os, re
from radiograph_deid import pipeline
process = pipeline.Redactor.process
def dies_on_bomb(self, src, *args, **kwargs):
    if src.name == "bomb.dcm":
        os._exit(70)  # as a decoder's segmentation fault kills the process: no exception, no cleanup
    if src.name == "doom.dcm":  # as the out-of-memory killer takes the run itself, or the machine goes down
        os.kill(os.getppid() if multiprocessing.parent_process() else os.getpid(), 9)
        os._exit(70)
    if src.name == "hang.dcm":
        re.match("(a+)+$", "a" * 64 + "!")  # as a decoder caught in a loop in C, which holds the interpreter
    record = process(self, src, *args, **kwargs)
    if src.name == "late.dcm":  # killed after writing its output, before its record reaches the run
        os._exit(70)
    return record
pipeline.Redactor.process = dies_on_bomb
"""


def crash_hook(tmp_path: Path) -> Path:
    """A folder holding a sitecustomize (CRASH_HOOK): on PYTHONPATH, it is loaded into a process and into each
    worker it spawns, and kills or stalls the one that takes bomb.dcm, doom.dcm or hang.dcm (late.dcm: once it is
    written)."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(CRASH_HOOK)
    return hook


def in_colour_alone(scale: float, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A real CR chest (pydicom-data RG1) as an RGB export, "DOE, JANE 12.03.1961" written over a lung in cyan of
    each pixel's own brightness: (the RGB view, its luminance without the line, the line's ink). The line is there
    in colour alone: the luminance is the same, pixel for pixel, with it or without it."""
    import cv2
    from PIL import Image, ImageDraw, ImageFont

    from radiograph_deid.fileio import read_view
    from radiograph_deid.pixels.display import to_gray

    gray, _ = read_view(pydicom_data("RG1_UNCR.dcm"))
    gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    font, text = ImageFont.load_default(size=size), "DOE, JANE 12.03.1961"
    x0, y0, x1, y1 = font.getbbox(text)
    h, w = gray.shape
    x, y = next((x, y) for y in range(h // 5, 4 * h // 5, 4) for x in range(w // 10, w - x1 - w // 10, 4)
                if 60 <= gray[y + y0 - 2 : y + y1 + 2, x + x0 - 2 : x + x1 + 2].min()
                and gray[y + y0 - 2 : y + y1 + 2, x + x0 - 2 : x + x1 + 2].max() <= 170)  # a lung, not a rib
    page = Image.new("L", (w, h), 0)
    ImageDraw.Draw(page).text((x, y), text, fill=255, font=font)
    ink = np.asarray(page) > 127
    rgb = np.dstack([gray] * 3)
    lum = to_gray(rgb)
    k = np.arange(256)
    cyan = np.array([k[(k * 0.587 + k * 0.114).astype(np.uint8) >= v][0] for v in range(179)], np.uint8)
    rgb[ink] = np.stack([np.zeros(int(ink.sum()), np.uint8), cyan[lum[ink]], cyan[lum[ink]]], axis=1)
    assert np.array_equal(to_gray(rgb), lum)
    return rgb, lum, ink
