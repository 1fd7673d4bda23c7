"""Text in scripts the detector never saw: share of lines the default pipeline fills, per script and size.

    python benchmarks/bench_scripts.py [--scripts chinese thai ...] [--out benchmarks/results/scripts.json]

The detector was trained on Latin text only. Names, wards and dates in Cyrillic, Greek, Arabic, Hebrew,
Armenian and Georgian (DejaVu Sans; Arabic unshaped unless Pillow has libraqm), in Chinese, Japanese and Korean
(WenQuanYi Micro Hei: Debian's ``fonts-wqy-microhei``), Thai (Garuda: ``fonts-tlwg-garuda-ttf``) and Hindi
(Lohit Devanagari: ``fonts-lohit-deva``), and Latin for comparison, are burned into 2000-px chest phantoms at 16,
24 and 36 px, bright or dark; a line counts as removed when the pipeline's fill (``MarkerDecider`` with the
shipped defaults, as ``redact`` runs it) covers >= 85% of its box. A script whose font is not installed is
skipped and said so.
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

from data_paths import font_path  # beside this script

DEJAVU = "DejaVuSans.ttf"  # matplotlib's copy or Debian's fonts-dejavu
SCRIPTS = {  # script: (font file name, its Debian package, three lines)
    "latin": (DEJAVU, "fonts-dejavu", ("MÜLLER, ANNA", "Station 7B 12.03.1985", "MRN 00482913")),
    "cyrillic": (DEJAVU, "fonts-dejavu", ("ИВАНОВ И.И.", "Петрова Анна 12.03.1985", "ПАЛАТА 7")),
    "greek": (DEJAVU, "fonts-dejavu", ("ΠΑΠΑΔΟΠΟΥΛΟΣ Γ.", "Γεώργιος 45 ετών", "ΘΑΛΑΜΟΣ 3")),
    "arabic": (DEJAVU, "fonts-dejavu", ("محمد أحمد", "مستشفى الملك فهد", "غرفة ٧")),
    "hebrew": (DEJAVU, "fonts-dejavu", ("כהן דוד", "בית חולים הדסה", "מחלקה 4")),
    "armenian": (DEJAVU, "fonts-dejavu", ("ՊԵՏՐՈՍՅԱՆ Ա.", "Հիվանդանոց 3", "Երևան")),
    "georgian": (DEJAVU, "fonts-dejavu", ("ბერიძე ნინო", "საავადმყოფო 2", "თბილისი")),
    "chinese": ("wqy-microhei.ttc", "fonts-wqy-microhei", ("王小明", "北京协和医院 放射科", "住院号 2023041587")),
    "japanese": ("wqy-microhei.ttc", "fonts-wqy-microhei", ("ヤマダ タロウ", "東京大学病院 放射線科", "患者番号 0045821")),
    "korean": ("wqy-microhei.ttc", "fonts-wqy-microhei", ("김민준", "서울대학교병원 영상의학과", "등록번호 12345678")),
    "thai": ("Garuda.ttf", "fonts-tlwg-garuda-ttf", ("นายสมชาย ใจดี", "โรงพยาบาลศิริราช", "เตียง 12 หอผู้ป่วย")),
    "hindi": ("Lohit-Devanagari.ttf", "fonts-lohit-deva", ("राहुल शर्मा", "अखिल भारतीय आयुर्विज्ञान संस्थान", "वार्ड 7")),
}


def _page(lines: tuple[str, ...], font_file: Path, size: int, seed: int,
          dark: bool) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    img = Image.fromarray((phantom(2000, 1700, seed) * 255).astype(np.uint8))
    draw, font = ImageDraw.Draw(img), ImageFont.truetype(str(font_file), size)
    boxes = []
    for k, text in enumerate(lines):
        x, y = int(rng.integers(40, 900)), 80 + k * 600 + int(rng.integers(0, 300))
        draw.text((x, y), text, fill=20 if dark else 235, font=font)
        boxes.append(draw.textbbox((x, y), text, font=font))
    return np.asarray(img), boxes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "scripts.json")
    parser.add_argument("--scripts", nargs="+", choices=sorted(SCRIPTS), default=list(SCRIPTS),
                        help="only these scripts (default: all)")
    args = parser.parse_args()
    decider = MarkerDecider(load_config())
    result: dict[str, dict[str, float]] = {}
    skipped: dict[str, str] = {}
    for name in args.scripts:
        font_name, package, lines = SCRIPTS[name]
        path = font_path(font_name, font_files())
        if path is None:
            skipped[name] = f"{font_name} not installed (Debian: {package})"
            print(name, "skipped:", skipped[name], flush=True)
            continue
        for size in (16, 24, 36):
            removed = total = 0
            for seed, dark in ((1, False), (2, True)):
                view, boxes = _page(lines, path, size, seed, dark)
                filled = filled_mask(view.shape, decider.decide(view)[1])
                removed += sum(filled[y0:y1, x0:x1].mean() >= 0.85 for x0, y0, x1, y1 in boxes)
                total += len(boxes)
            result.setdefault(name, {})[f"{size}px"] = round(removed / total, 3)
        print(name, result[name], flush=True)
    report = {"removed_share": result, "skipped": skipped, "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
