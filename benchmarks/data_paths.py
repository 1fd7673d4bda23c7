"""Where the benchmarks find the project's shared radiographs (``../shared/data`` beside the clone), if present.

Benchmarks use them when they are there and fall back to generated images; tests never do."""
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HANNOVER_PNG = SHARED_DATA / "hannover" / "png"
