"""Where the benchmarks find the project's shared radiographs: ``$RADIOGRAPH_DEID_SHARED_DATA`` when set, else
``../shared/data`` beside the clone, if present.

Benchmarks use them when they are there and fall back to generated images; tests never do. A second checkout
(a ``git worktree`` of older code, timed beside this one) has no ``../shared`` beside it: point the variable at the
data, or its figures are measured on other images."""
import os
from pathlib import Path

SHARED_DATA = Path(os.environ.get("RADIOGRAPH_DEID_SHARED_DATA")
                   or Path(__file__).resolve().parents[1].parent / "shared" / "data")
HANNOVER_PNG = SHARED_DATA / "hannover" / "png"
