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
