"""Where the benchmarks find the project's shared radiographs: ``$RADIOGRAPH_DEID_SHARED_DATA`` when set, else
``../shared/data`` beside the clone, if present.

Benchmarks use them when they are there and fall back to generated images; tests never do. A second checkout
(a ``git worktree`` of older code, timed beside this one) has no ``../shared`` beside it: point the variable at the
data, or its figures are measured on other images."""
import os
from pathlib import Path
from typing import Iterable

SHARED_DATA = Path(os.environ.get("RADIOGRAPH_DEID_SHARED_DATA")
                   or Path(__file__).resolve().parents[1].parent / "shared" / "data")
HANNOVER_PNG = SHARED_DATA / "hannover" / "png"
SYSTEM_FONTS = Path("/usr/share/fonts")  # Debian's fonts-* packages (truetype/ and opentype/)


def font_path(name: str, among: Iterable[Path] = ()) -> Path | None:
    """The font file ``name``: the first of ``among`` so named (the training fonts, for a benchmark that draws in
    them where it can), else the system's; None when it is not installed (the benchmark says so and skips it)."""
    found = next((p for p in among if p.name == name), None)
    if found is None and SYSTEM_FONTS.is_dir():
        found = next(SYSTEM_FONTS.rglob(name), None)
    return found
