"""A new site: the shipped detector on a site's own house style, before and after fine-tuning on 20 of its images.

    python benchmarks/bench_site.py [--sites 3] [--epochs 20] [--out benchmarks/results/site.json]

The paper (Khosravi et al.) fine-tuned its detector on 20 images of an external site and reported the figures on
those same images. Here each site's 20 training images, the 10 images the fine-tuning picks its best epoch on, and
the 40 images the figures are measured on are different patients' radiographs (the Hannover images of
``data/real_markers.jsonl``: its train split for the first two sets, its validation split for the third; the real
markers already in them stay labelled).

A site is one modality's house style, drawn once from the site's seed, as a hospital's images carry it: an overlay
block of three lines (name, ID, date and time) in one corner, in one font (Debian's WenQuanYi Micro Hei, Garuda or
Lohit when installed: fonts the detector never saw; else DejaVu), one size, one grey level and one opacity; a
vendor's pictogram in a tile at one place; and the site's lead markers (L or R, in its font, bare, on a tile or in
a ring, near the top edge). The names, IDs, dates and sides vary image by image; positions move a little.

Fine-tuned as ``radiograph-deid train --site-labels`` does (``train.fine_tune``), which exports the weights only
when they redact the 10 validation images better than the shipped ones (``train.pipeline_score``). Scored as
``radiograph-deid evaluate`` scores (``evaluate.evaluate``, the shipped defaults but for the weights):
de-identification accuracy, false boxes, retention, AUPRC and mAP50 with the shipped weights, with the fine-tuned
ones, and with those in use after the run (the fine-tuned where exported, else the shipped). Needs the train extra
(``bash scripts/setup.sh --train``) and ../shared/data (the labelled backgrounds); about 8 minutes per site on
2 CPU cores.

The other way to adapt to a site, known regions proposed from the same 20 labelled images
(``radiograph-deid regions --any-size``: where text lies in the same place on half of them or more; the images are
PNGs, so the rule matches every image), is scored too, with the shipped weights (``regions``; the rules written
beside the site's images, ``regions.yaml``), and so are the regions proposed from what the shipped pipeline
filled on those 20 images, no label used (``regions --records``: ``regions_found``, ``regions_found.yaml``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from radiograph_deid.boxes import iou
from radiograph_deid.config import load_config
from radiograph_deid.enums import BoxClass
from radiograph_deid.evaluate import evaluate, labelled_items
from radiograph_deid.folder_run import run
from radiograph_deid.labels import LabelledBox, LabelledImage, read_labels, write_labels
from radiograph_deid.marker_synth import SYSTEM_FONT_DIR, _render_ttf, _tight, font_files
from radiograph_deid.pipeline import MarkerDecider
from radiograph_deid.region_proposals import RECORDS_EXTENT, propose_rules, records_as_labels, rules_yaml, run_records
from radiograph_deid.train import SHIPPED_ONNX, SHIPPED_PT, TrainPlan, build_site_dataset, fine_tune

from data_paths import SHARED_DATA  # beside this script

LABELS = Path(__file__).resolve().parents[1] / "data" / "real_markers.jsonl"
NEW_FONTS = ("wqy/wqy-microhei.ttc", "tlwg/Garuda.ttf", "tlwg/Garuda-Bold.ttf", "lohit-devanagari/Lohit-Devanagari.ttf")
NAMES = ("NOWAK^ANNA", "OKAFOR^JOHN", "ROSSI^MARIA", "TANAKA^YUKI", "DUBOIS^PIERRE", "LARSEN^SVEN", "SILVA^ELENA")


@dataclass(frozen=True)
class HouseStyle:
    """What one site's modality burns into every image; fractions are of the image's long side."""

    font: str
    text_height: float
    corner: str  # "tl", "tr", "bl" or "br"
    grey: float  # 0-1 display level of the overlay's ink
    opacity: float
    icon_at: tuple[float, float]  # the pictogram's centre, as fractions of width and height
    marker_style: str  # "bare", "tile" or "ring"
    marker_height: float
    long_side: int  # the site's plate in pixels (the shared radiographs are 640 px: upsampled to it)


def house_style(seed: int) -> HouseStyle:
    rng = np.random.default_rng(seed)
    fonts = [str(SYSTEM_FONT_DIR / f) for f in NEW_FONTS if (SYSTEM_FONT_DIR / f).is_file()] or \
        [str(f) for f in font_files()]
    return HouseStyle(str(fonts[int(rng.integers(len(fonts)))]), float(rng.uniform(0.006, 0.011)),
                      str(rng.choice(["tl", "tr", "bl", "br"])), float(rng.choice([0.92, 0.75, 0.1])),
                      float(rng.uniform(0.55, 0.9)), (float(rng.uniform(0.6, 0.95)), float(rng.uniform(0.85, 0.95))),
                      str(rng.choice(["bare", "tile", "ring"])), float(rng.uniform(0.02, 0.035)),
                      int(rng.integers(2000, 3001)))


def _text(text: str, height: int, font: str) -> np.ndarray:
    """``text`` as an alpha mask cut to its ink, capitals about ``height`` px tall, in ``font``: as the training
    data's text is drawn (``marker_synth``), but in the site's one font."""
    return _tight(_render_ttf(text, height, Path(font)))


def _paste(img: np.ndarray, alpha: np.ndarray, x: int, y: int, grey: float, opacity: float) -> tuple[int, ...]:
    h, w = alpha.shape
    region = img[y : y + h, x : x + w]
    a = alpha[: region.shape[0], : region.shape[1]] * opacity
    region[:] = region * (1 - a) + grey * a
    return x, y, x + region.shape[1], y + region.shape[0]


def _icon(side: int) -> np.ndarray:
    """A vendor's pictogram: a tile with a tube and a detector drawn dark on it."""
    tile = np.ones((side, side), np.float32)
    s = side / 10
    cv2.circle(tile, (int(3 * s), int(3 * s)), int(1.3 * s), 0.0, -1)
    cv2.rectangle(tile, (int(2 * s), int(7 * s)), (int(8 * s), int(8 * s)), 0.0, -1)
    cv2.line(tile, (int(3 * s), int(4.5 * s)), (int(5 * s), int(6.5 * s)), 0.0, max(1, int(s // 2)))
    return tile


def _marker(side: str, height: int, style: HouseStyle) -> np.ndarray:
    glyph = _text(side, height, style.font)
    if style.marker_style == "bare":
        return glyph
    pad = max(2, height // 4)
    h, w = glyph.shape
    if style.marker_style == "ring":
        d = int(np.hypot(h, w)) + 2 * pad
        canvas = np.zeros((d, d), np.float32)
        canvas[(d - h) // 2 : (d - h) // 2 + h, (d - w) // 2 : (d - w) // 2 + w] = glyph
        cv2.circle(canvas, (d // 2, d // 2), d // 2 - 1, 1.0, max(1, d // 18), cv2.LINE_AA)
        return canvas
    tile = np.full((h + 2 * pad, w + 2 * pad), 0.6, np.float32)
    tile[pad : pad + h, pad : pad + w] = np.maximum(tile[pad : pad + h, pad : pad + w], glyph)
    return tile


def burn_site(gray: np.ndarray, style: HouseStyle, rng: np.random.Generator) -> tuple[np.ndarray, list[LabelledBox]]:
    """The image with the site's overlay, pictogram and lead marker burned in, and their labels."""
    img = gray.astype(np.float32) / 255.0
    H, W = img.shape
    long_side = max(H, W)
    th = max(8, int(style.text_height * long_side))
    lines = [str(NAMES[int(rng.integers(len(NAMES)))]), f"ID {int(rng.integers(10**6, 10**8)):08d}",
             f"{int(rng.integers(1, 29)):02d}.{int(rng.integers(1, 13)):02d}.{int(rng.integers(2000, 2027))} "
             f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}"]
    masks = [_text(t, th, style.font) for t in lines]
    margin = int(0.02 * long_side + rng.integers(0, max(1, th)))
    block_h = sum(m.shape[0] for m in masks) + th * (len(masks) - 1) // 2
    y = margin if style.corner[0] == "t" else H - margin - block_h
    boxes = []
    for text, m in zip(lines, masks):
        x = margin if style.corner[1] == "l" else W - margin - m.shape[1]
        boxes.append(LabelledBox(_paste(img, m, x, y, style.grey, style.opacity), BoxClass.OTHER_MARKER, text))
        y += m.shape[0] + th // 2
    side = max(12, int(0.012 * long_side))
    icon = _icon(side)
    ix = int(style.icon_at[0] * W + rng.integers(-side, side + 1)) - side // 2
    iy = int(style.icon_at[1] * H + rng.integers(-side, side + 1)) - side // 2
    boxes.append(LabelledBox(_paste(img, icon, ix, iy, 0.9, 1.0), BoxClass.OTHER_MARKER, "icon"))
    letter = str(rng.choice(["L", "R"]))
    marker = _marker(letter, int(style.marker_height * long_side), style)
    mx = int(rng.uniform(0.1, 0.9) * (W - marker.shape[1]))
    my = int(rng.uniform(0.03, 0.08) * H)
    boxes.append(LabelledBox(_paste(img, marker, mx, my, 0.95, 1.0), BoxClass.LATERALITY, letter))
    noisy = img + rng.normal(0, 0.01, img.shape).astype(np.float32)
    return (np.clip(noisy, 0, 1) * 255).astype(np.uint8), boxes


def _clear_of(boxes: tuple[LabelledBox, ...], new: list[LabelledBox]) -> bool:
    """Whether no burned box overlaps a real marker already in the image (each label must stay readable alone)."""
    return all(iou(b.xyxy, r.xyxy) == 0 for b in new for r in boxes)


def site_images(out: Path, name: str, style: HouseStyle, sources: list[LabelledImage], rng: np.random.Generator
                ) -> list[LabelledImage]:
    images = []
    for k, src in enumerate(sources):
        gray = cv2.imread(str(SHARED_DATA / src.file), cv2.IMREAD_GRAYSCALE)
        s = style.long_side / max(gray.shape)
        gray = cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
        real = tuple(replace(b, xyxy=tuple(int(round(v * s)) for v in b.xyxy)) for b in src.boxes)
        for _ in range(5):
            burned, boxes = burn_site(gray, style, rng)
            if _clear_of(real, boxes):
                break
        else:
            continue
        file = f"{name}_{k:03d}.png"
        cv2.imwrite(str(out / file), burned)
        images.append(LabelledImage(file, burned.shape[1], burned.shape[0], real + tuple(boxes)))
    return images


def score(weights: str, images: list[LabelledImage], root: Path, rules: Path | None = None) -> dict:
    overrides = ([f"detector.weights={weights}"] if weights else []) + ([f"detector.known_regions={rules}"] if rules
                                                                         else [])
    metrics, _ = evaluate(MarkerDecider(load_config(None, overrides)), labelled_items(images, root))
    return {k: v for k, v in asdict(metrics).items() if k not in ("seconds_per_image",)}


def regions(train: list[LabelledImage], root: Path, found: bool = False) -> tuple[Path, list[dict]]:
    """The known regions proposed from the site's training images (as ``radiograph-deid regions --any-size``),
    from their labels, or with ``found`` from what the shipped pipeline filled on them (``--records``), written
    to ``root``, and what each rests on."""
    if found:
        inp = root / "train_only"
        inp.mkdir(exist_ok=True)
        for im in train:
            if not (inp / im.file).exists():
                (inp / im.file).symlink_to((root / im.file).resolve())
        out = root / "train_run"
        run(inp, out, load_config(None, [f"header.key_file={root / 'bench.key'}"]), progress=False)
        train = records_as_labels(run_records(out))
    rules = propose_rules(train, any_size=True, extent_share=RECORDS_EXTENT if found else None)
    path = root / ("regions_found.yaml" if found else "regions.yaml")
    path.write_text(rules_yaml(rules, f"{len(train)} images of the site"))
    return path, [{"region": [r.region.x0, r.region.y0, r.region.x1, r.region.y1], "images": r.images,
                   "of": rule.images, "laterality_inside": r.laterality} for rule in rules for r in rule.regions]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=3)
    ap.add_argument("--train", type=int, default=20)
    ap.add_argument("--tune-val", type=int, default=10)
    ap.add_argument("--test", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--work", type=Path, default=Path("runs/bench_site"))
    ap.add_argument("--out", type=Path, help="the report (default: results/site.json, with --shipped-only "
                    "results/site-shipped.json)")
    ap.add_argument("--shipped-only", action="store_true",
                    help="score the shipped weights on each site's test images, no fine-tuning (a few minutes per site)")
    args = ap.parse_args()
    if args.out is None:
        args.out = Path(__file__).parent / "results" / ("site-shipped.json" if args.shipped_only else "site.json")
    if not LABELS.is_file() or not (SHARED_DATA / "hannover").is_dir():
        raise SystemExit(f"bench_site needs the labelled backgrounds: {LABELS} and {SHARED_DATA / 'hannover'}")
    missing = [f for f in NEW_FONTS if not (SYSTEM_FONT_DIR / f).is_file()]
    if missing:
        print(f"bench_site: warning: {', '.join(missing)} not under {SYSTEM_FONT_DIR}: the sites are drawn in other "
              "fonts, so the figures cannot be compared with the README's (apt-get install fonts-wqy-microhei "
              "fonts-tlwg-garuda-ttf fonts-lohit-deva)", file=sys.stderr)
    labelled = [im for im in read_labels(LABELS) if im.file.startswith("hannover/")]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(labelled))
    pool = {s: [labelled[i] for i in order if labelled[i].split == s] for s in ("train", "val")}
    results = []
    for site in range(args.sites):
        style = house_style(1000 + site)
        root = args.work / f"site{site}"
        root.mkdir(parents=True, exist_ok=True)
        site_rng = np.random.default_rng(site)
        train_src = pool["train"][site * 7 % 20 :][: args.train + args.tune_val]
        sets = {"train": site_images(root, "train", style, train_src[: args.train], site_rng),
                "tune": site_images(root, "tune", style, train_src[args.train :], site_rng),
                "test": site_images(root, "test", style, pool["val"][: args.test], site_rng)}
        for split, images in sets.items():
            write_labels(root / f"{split}.jsonl", images)
        before = score("", sets["test"], root)
        rules, proposed = regions(sets["train"], root)
        found_rules, found = regions(sets["train"], root, found=True)
        head = {"site": site, "style": {**asdict(style), "font": Path(style.font).name},
                "images": {k: len(v) for k, v in sets.items()}, "regions_proposed": proposed,
                "regions": score("", sets["test"], root, rules), "regions_found_proposed": found,
                "regions_found": score("", sets["test"], root, found_rules)}
        if args.shipped_only:
            results.append({**head, "shipped": before})
            print(json.dumps(results[-1]), flush=True)
            continue
        data = build_site_dataset(root / "dataset", sets["train"], sets["tune"], root)
        t0 = time.perf_counter()
        tuned = fine_tune(data, TrainPlan(out=root / "run", epochs=args.epochs, init=str(SHIPPED_PT)), sets["tune"],
                          root, load_config(None, []), progress=False, start_onnx=SHIPPED_ONNX)
        seconds = time.perf_counter() - t0
        after = score(str(tuned.onnx), sets["test"], root)
        results.append({**head, "train_seconds": round(seconds, 1),
                        "validation_redaction": {"start": asdict(tuned.start_score),
                                                 "fine_tuned": asdict(tuned.best_score)},
                        "exported": tuned.improved, "before": before, "fine_tuned": after,
                        "in_use": after if tuned.improved else before})
        print(json.dumps(results[-1]), flush=True)
    report = {"epochs": args.epochs, "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
              "sites": results}
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
