"""Seconds per image, end to end, for 2000-3000 px DICOM radiographs (not a timed test).

Inputs: real CR/DX from the pip data packages (pydicom-data RG1/RG3, deid-data cat) and, when ../shared/data is
present, real chest radiographs from it upsampled to 2000-3000 px with burned-in fake PHI; otherwise synthetic
phantoms. Each is written as uncompressed 12-bit DICOM. In one process model loading is excluded (a run loads
once).

    python benchmarks/bench_redact.py [--n 24] [--workers 1] [--sizes 2000 3000] [--no-real] [--out benchmarks/results/cpu.json]

``s_per_image_*`` are each file's own time in its process; ``wall_s_per_image`` is the run's wall-clock time per
file, what a folder costs: with more than one worker it includes their model loading.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from importlib.metadata import distribution
from pathlib import Path

import cv2
import numpy as np

from radiograph_deid.config import load_config
from radiograph_deid.folder_run import record_path, run
from radiograph_deid.worker_pool import worker_count
from radiograph_deid.pipeline import Redactor
from radiograph_deid.records import ImageRecord
from radiograph_deid.synthetic import burn, default_burns, make_dataset, phantom, to_stored

from data_paths import HANNOVER_PNG  # beside this script



def backgrounds(n: int, rng: np.random.Generator, sizes: tuple[int, int]):  # type: ignore[no-untyped-def]
    pngs = sorted(HANNOVER_PNG.glob("*.png")) if HANNOVER_PNG.is_dir() else []
    if not pngs:
        print(f"bench_redact: no radiographs in {HANNOVER_PNG}: phantoms stand in, and the figures are not comparable "
              "with runs on them (set RADIOGRAPH_DEID_SHARED_DATA)", file=sys.stderr)
    for i in range(n):
        rows = int(rng.integers(sizes[0], sizes[1] + 1))
        cols = int(rows * rng.uniform(0.85, 1.15))
        if pngs:
            src = cv2.imread(str(pngs[i % len(pngs)]), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
            yield "shared", cv2.resize(src, (cols, rows), interpolation=cv2.INTER_CUBIC)
        else:
            yield "phantom", phantom(rows, cols, seed=i)


def build(folder: Path, n: int, sizes: tuple[int, int] = (2000, 3000), real: bool = True) -> dict[str, str]:
    rng = np.random.default_rng(0)
    kinds = {}
    for i, (kind, img) in enumerate(backgrounds(n, rng, sizes)):
        mono1 = i % 2 == 1
        stored = to_stored(burn(img, default_burns(*img.shape)), 12, mono1)
        ds = make_dataset(stored, "MONOCHROME1" if mono1 else "MONOCHROME2", "CR" if mono1 else "DX", 12)
        ds.save_as(folder / f"{kind}_{i:03d}.dcm", write_like_original=False)
        kinds[f"{kind}_{i:03d}.dcm"] = kind
    if not real:
        return kinds
    data = Path(str(distribution("pydicom-data").locate_file("data_store/data")))
    import deid_data

    for src in (data / "RG1_UNCR.dcm", data / "RG3_UNCR.dcm", Path(deid_data.__file__).parent / "data/animals/cat.dcm"):
        shutil.copy(src, folder / src.name)
        kinds[src.name] = "real"
    return kinds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--sizes", type=int, nargs=2, default=[2000, 3000], metavar=("MIN", "MAX"),
                    help="rows of the upsampled radiographs (a flat-panel DR detector: 4300)")
    ap.add_argument("--no-real", action="store_true", help="leave out the data packages' CR/DX (their own sizes)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cpu.json")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--keep", type=Path, help="copy inputs, outputs and quarantine here for inspection")
    ap.add_argument("--workers", type=int, default=0,
                    help="as redact --workers: files in N processes; 0 (the default, as redact's): one per core")
    args = ap.parse_args()
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    with tempfile.TemporaryDirectory() as tmp:
        inp, out, quar = Path(tmp, "in"), Path(tmp, "out"), Path(tmp, "q")
        inp.mkdir()
        kinds = build(inp, args.n, tuple(args.sizes), real=not args.no_real)
        cfg = load_config(overrides=[f"header.key_file={tmp}/key"] + args.overrides)
        t0 = time.perf_counter()
        workers = worker_count(args.workers, len(kinds))
        redactor = Redactor(cfg) if workers <= 1 else None
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        summary = run(inp, out, cfg, quar, progress=False, redactor=redactor, workers=workers)
        wall = time.perf_counter() - t1  # with --workers: the workers' model loading included
        recs = [ImageRecord.from_json(record_path(Path(summary["records"]), Path(d["input"])).read_text())
                for d in summary["images_detail"]]
        if args.keep:
            shutil.copytree(tmp, args.keep, dirs_exist_ok=True)
    secs = [r.seconds for r in recs]
    stages = {s: round(statistics.mean(r.timings.get(s, 0.0) for r in recs), 4)
              for s in ("read", "header", "detect", "verify", "write")}
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"{platform.system()} {platform.release()}",
        "images": len(recs), "sizes": sorted({f"{r.rows}x{r.columns}" for r in recs})[:5],
        "inputs": sorted(set(kinds.values())),
        "model_load_s": round(load_s, 2),
        "workers": workers,
        "wall_s_per_image": round(wall / len(recs), 3),
        "s_per_image_mean": round(statistics.mean(secs), 3),
        "s_per_image_median": round(statistics.median(secs), 3),
        "s_per_image_p95": round(sorted(secs)[int(0.95 * (len(secs) - 1))], 3),
        "stage_mean_s": stages,
        "decisions": {d: sum(r.decision.value == d for r in recs) for d in ("written", "quarantined")},
        "quarantine_reasons": sorted({r.reason for r in recs if r.reason}),
        "overrides": args.overrides,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
