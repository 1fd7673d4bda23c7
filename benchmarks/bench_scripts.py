"""Text in scripts the detector never saw: share of lines the default pipeline fills, per script and size.

    python benchmarks/bench_scripts.py [--out benchmarks/results/scripts.json]

The detector was trained on Latin text only. Names, wards and dates in Cyrillic, Greek, Arabic, Hebrew,
Armenian and Georgian (DejaVu Sans; Arabic unshaped unless Pillow has libraqm), and Latin for comparison, are
burned into 2000-px chest phantoms at 16, 24 and 36 px, bright or dark; a line counts as removed when the
pipeline's fill (``MarkerDecider`` with the shipped defaults, as ``redact`` runs it) covers >= 85% of its box.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np

from radiograph_deid.config import load_config
from radiograph_deid.evaluate import filled_mask
from radiograph_deid.marker_synth import font_files
from radiograph_deid.pipeline import MarkerDecider
from radiograph_deid.synthetic import phantom

SCRIPTS = {
    "latin": ("MÜLLER, ANNA", "Station 7B 12.03.1985", "MRN 00482913"),
    "cyrillic": ("ИВАНОВ И.И.", "Петрова Анна 12.03.1985", "ПАЛАТА 7"),
    "greek": ("ΠΑΠΑΔΟΠΟΥΛΟΣ Γ.", "Γεώργιος 45 ετών", "ΘΑΛΑΜΟΣ 3"),
    "arabic": ("محمد أحمد", "مستشفى الملك فهد", "غرفة ٧"),
    "hebrew": ("כהן דוד", "בית חולים הדסה", "מחלקה 4"),
    "armenian": ("ՊԵՏՐՈՍՅԱՆ Ա.", "Հիվանդանոց 3", "Երևան"),
    "georgian": ("ბერიძე ნინო", "საავადმყოფო 2", "თბილისი"),
}


def _font(size: int):  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    path = next((p for p in font_files() if p.name == "DejaVuSans.ttf"), None)
    if path is None:
        raise SystemExit("DejaVuSans.ttf not found (install matplotlib or fonts-dejavu)")
    return ImageFont.truetype(str(path), size)


def _page(lines: tuple[str, ...], size: int, seed: int, dark: bool) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    img = Image.fromarray((phantom(2000, 1700, seed) * 255).astype(np.uint8))
    draw, font = ImageDraw.Draw(img), _font(size)
    boxes = []
    for k, text in enumerate(lines):
        x, y = int(rng.integers(40, 900)), 80 + k * 600 + int(rng.integers(0, 300))
        draw.text((x, y), text, fill=20 if dark else 235, font=font)
        boxes.append(draw.textbbox((x, y), text, font=font))
    return np.asarray(img), boxes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "scripts.json")
    args = parser.parse_args()
    decider = MarkerDecider(load_config())
    result: dict[str, dict[str, float]] = {}
    for name, lines in SCRIPTS.items():
        for size in (16, 24, 36):
            removed = total = 0
            for seed, dark in ((1, False), (2, True)):
                view, boxes = _page(lines, size, seed, dark)
                filled = filled_mask(view.shape, decider.decide(view)[1])
                removed += sum(filled[y0:y1, x0:x1].mean() >= 0.85 for x0, y0, x1, y1 in boxes)
                total += len(boxes)
            result.setdefault(name, {})[f"{size}px"] = round(removed / total, 3)
        print(name, result[name], flush=True)
    report = {"removed_share": result, "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
