"""Merge hand-labelled JSONL parts into one label file with patient ids and the patient-level split.

    python scripts/merge_labels.py OUT.jsonl PART.jsonl [PART.jsonl ...] [--data-root ../shared/data]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from radiograph_deid.labels import LabelledImage, hannover_patients, patient_split, read_labels, write_labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("parts", type=Path, nargs="+")
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    patients = hannover_patients(args.data_root / "hannover" / "data.csv")
    merged: dict[str, LabelledImage] = {}
    for part in args.parts:
        for im in read_labels(part):
            patient = patients.get(Path(im.file).stem, "") or f"{Path(im.file).parts[0]}:{Path(im.file).stem}"
            split = patient_split(patient) if im.file.startswith("hannover/") else "val"  # other sources: validation only
            merged[im.file] = LabelledImage(im.file, im.width, im.height, im.boxes, patient, split, im.extra)
    write_labels(args.out, sorted(merged.values(), key=lambda im: im.file))
    n_val = sum(im.split == "val" for im in merged.values())
    print(f"{len(merged)} images ({n_val} val), {sum(len(im.boxes) for im in merged.values())} boxes -> {args.out}")


if __name__ == "__main__":
    main()
