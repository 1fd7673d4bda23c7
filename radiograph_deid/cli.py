"""Command line: ``radiograph-deid redact | check | pseudonym | evaluate | regions | train | train-glyphs`` (thin: the library's functions underneath)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .config import ConfigError, load_config


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="radiograph-deid", description="Make radiographs safe to share.")
    p.add_argument("--version", action="version", version=f"radiograph-deid {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("redact", help="de-identify every DICOM/PNG/JPEG/TIFF/BMP/JP2 under INPUT into OUTPUT",
                       description="De-identify headers and burned-in text. Files that fail any stage are copied "
                       "untouched to the quarantine folder (default: OUTPUT_quarantine) with a reason; "
                       "a rerun resumes and skips finished files.")
    r.add_argument("input", type=Path, help="a folder (searched recursively) or one file")
    r.add_argument("output", type=Path, help="destination folder; the relative tree of INPUT is kept")
    _settings(r, CONFIG_HELP, "override one setting, e.g. --set header.retain_longitudinal_modified_dates=true")
    r.add_argument("--quarantine", type=Path, help="quarantine folder (outside OUTPUT)")
    r.add_argument("--key-file", help="secret key for pseudonyms and UIDs (created if absent; never written out)")
    r.add_argument("--workers", type=int, default=0, metavar="N",
                   help="process files in N processes, each with its own models (about 0.5 GiB each); default 0: "
                   "one per CPU core, at most 8 and at most one per four files")
    r.add_argument("--prune", action="store_true",
                   help="remove the outputs, quarantine copies and records of inputs no longer under INPUT (a "
                   "patient who withdrew consent); without it they are listed in the summary as inputs_gone")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    r.add_argument("-v", "--verbose", action="store_true")
    c = sub.add_parser("check", help="is this installation ready? (Tesseract, weights, codecs, key, a run on "
                       "generated radiographs)", description="Checks what a run needs on this machine, offline, and "
                       "de-identifies generated radiographs (invented names only; the key is not created). Exit 0 "
                       "when nothing failed, 1 otherwise.")
    _settings(c, CONFIG_HELP, "override one setting")
    c.add_argument("--output", type=Path, help="also check the folder a run would write to (nothing is made there): "
                   "write access, letter case, room")
    _pseudonym_parser(sub)
    _evaluate_parser(sub)
    _regions_parser(sub)
    _train_parser(sub)
    _train_glyphs_parser(sub)
    return p


def _pseudonym_parser(sub) -> None:  # type: ignore[no-untyped-def]
    s = sub.add_parser("pseudonym", help="what the runs wrote for a patient or a UID (for a data steward: a "
                       "withdrawal, a finding to follow up)",
                       description="What every run with this key writes for a patient: the pseudonymous PatientID "
                       "and PatientName (with output.names: pseudonymous, also the patient's folder under OUTPUT) "
                       "and, with header.retain_longitudinal_modified_dates, the days their dates were shifted; or "
                       "what a UID was remapped to. One JSON object per line; to find whose a pseudonym is, look up "
                       "the candidates (--from) and search the lines. The key is read, never created. The "
                       "identifiers given are printed back: run it where they may be seen.")
    s.add_argument("patient_ids", nargs="*", metavar="PATIENT_ID", help="a PatientID as the input headers hold it")
    s.add_argument("--issuer", default="", help="their IssuerOfPatientID, where the headers have one")
    s.add_argument("--from", dest="from_file", type=Path, metavar="FILE",
                   help="more PatientIDs, one per line ('-': standard input)")
    s.add_argument("--uid", action="append", default=[], metavar="UID",
                   help="a study, series or instance UID of the input headers (repeatable)")
    _settings(s, "the YAML configuration the runs used", "a setting the runs were given")
    s.add_argument("--key-file", help="the key the runs used (default: header.key_file, or RADIOGRAPH_DEID_KEY)")


CONFIG_HELP = "YAML configuration (see configs/redact.yaml)"


def _settings(parser: argparse.ArgumentParser, config_help: str | None = None, set_help: str | None = None) -> None:
    """``--config FILE`` and ``--set SECTION.KEY=VALUE`` (repeatable, into ``overrides``): how every command that
    reads the configuration is given it."""
    parser.add_argument("--config", type=Path, help=config_help)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help=set_help)


def _key_file_override(args: argparse.Namespace) -> list[str]:
    """``--key-file`` as the setting it stands for, where given."""
    return [f"header.key_file={args.key_file}"] if args.key_file else []


LABELS = Path("data/real_markers.jsonl")  # the hand-checked real markers shipped in the repository
DATA_ROOT = Path("../shared/data")  # where their images are (not shipped)


def _labelled_set(parser: argparse.ArgumentParser) -> None:
    """The training commands' hand-labelled set: its label file, and the folder its image paths are under."""
    parser.add_argument("--labels", type=Path, default=LABELS, help="label JSONL; its train split is used")
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT, help="folder the label paths are under")


def _evaluate_parser(sub) -> None:  # type: ignore[no-untyped-def]
    e = sub.add_parser("evaluate", help="the paper's metrics for the configured detector and retention",
                       description="De-identification accuracy, false-positive rate, retention accuracy, AUPRC and "
                       "mAP50 on hand-labelled real images (--labels) and/or held-out synthetic images (--synthetic). "
                       "The known regions configured (detector.known_regions) are filled as redact fills them.")
    e.add_argument("--labels", type=Path, help="label JSONL (e.g. data/real_markers.jsonl)")
    e.add_argument("--data-root", type=Path, default=DATA_ROOT, help="folder the label paths are under")
    e.add_argument("--split", default="val", help="which labelled split to score: val | train | all")
    e.add_argument("--synthetic", type=int, default=0, metavar="N", help="also score N held-out synthetic images")
    e.add_argument("--seed", type=int, default=1000, help="seed of the synthetic held-out stream")
    _settings(e)
    e.add_argument("--report", type=Path, help="write per-image scores and metrics as JSON here")
    e.add_argument("--verify", action="store_true", help="also run the safety net (verify.engine) on each redacted "
                   "image: images it would let through with a marker left, clean images it would quarantine")
    e.add_argument("--misses", type=Path, metavar="DIR", help="write each marker left readable, each laterality "
                   "marker not kept and each false box here, as a before/after crop (they show the text left: keep "
                   "them where the images are)")
    e.add_argument("-v", "--verbose", action="store_true")


def _regions_parser(sub) -> None:  # type: ignore[no-untyped-def]
    g = sub.add_parser("regions", help="propose known burned-in regions from a site's labelled images, or from what "
                       "a run found", description="Where text lies in the same place on one device's images (the same "
                       "header values, else the same image size), by a site's labels or by what a redact run filled, "
                       "propose a rules file for detector.known_regions: each region filled in every image its rule "
                       "matches, whatever the detectors find. Read it before use: each region notes in how many "
                       "images text lay there and how many laterality markers it would have filled.")
    g.add_argument("out", type=Path, help="the rules file to write (YAML; an existing file is not replaced)")
    source = g.add_mutually_exclusive_group(required=True)
    source.add_argument("--labels", type=Path, help="the site's labelled images (label JSONL)")
    source.add_argument("--records", type=Path, metavar="RECORDS_DIR",
                        help="what a redact run found instead: its records folder (OUTPUT/.deid by default); "
                        "needs no labels, and a region spans where its fills lie in a quarter of the images")
    g.add_argument("--data-root", type=Path, default=Path("."), help="folder the label paths are under, or with "
                   "--records the run's INPUT (for the DICOM headers; image files need not be there)")
    g.add_argument("--keywords", nargs="*", default=None, metavar="KEYWORD",
                   help="header keywords that tell one device's images from another's (default: Manufacturer "
                   "ManufacturerModelName)")
    g.add_argument("--min-share", type=float, default=0.5, help="share of a device's images text must lie in")
    g.add_argument("--min-images", type=int, default=3, help="fewest images of a device, and with text in a region")
    g.add_argument("--any-size", action="store_true", help="images without header values (PNG, JPEG, TIFF): match "
                   "every such image, not only the sizes labelled (a folder of one site's exports)")


def _train_parser(sub) -> None:  # type: ignore[no-untyped-def]
    t = sub.add_parser("train", help="train or fine-tune the marker detector (needs the train extra)",
                       description="Synthesize markers on the train-split backgrounds of --labels and train from "
                       "the model yaml; or, with --site-labels, fine-tune the shipped weights on a site's own "
                       "labelled images, validated on --val-labels (never the training images).")
    t.add_argument("out", type=Path, help="run folder (dataset, checkpoints, exported ONNX)")
    _labelled_set(t)
    t.add_argument("--n-train", type=int, default=1200, help="synthetic training images (two 512-px crops each)")
    t.add_argument("--n-val", type=int, default=80)
    t.add_argument("--site-labels", type=Path, help="fine-tune on these labelled images of a site")
    t.add_argument("--val-labels", type=Path, help="the site's validation images (required with --site-labels)")
    t.add_argument("--site-root", type=Path, default=Path("."), help="folder the site label paths are under")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--device", default="cpu", help="cpu, or a CUDA device index such as 0")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--resume", action="store_true", help="continue the run in OUT from its last checkpoint")
    t.add_argument("--export", type=Path, help="also export the best weights to this ONNX path (with --site-labels: "
                   "only if they score better on the validation images than the weights they started from)")
    t.add_argument("--init", type=Path, help="a .pt checkpoint to start from (default: the model yaml; with "
                   "--site-labels: the shipped weights)")
    t.add_argument("--hard-negatives", type=int, default=0, metavar="COPIES",
                   help="add COPIES crops around each false box the shipped detector (or --miner) makes on the "
                   "train-split images of --labels, with their hand labels (0: none)")
    t.add_argument("--hard-positives", type=int, default=0, metavar="COPIES",
                   help="add COPIES crops around each label of the synthetic training images that the shipped "
                   "detector (or --miner) misses (0: none)")
    t.add_argument("--miner", type=Path, help="ONNX weights that mine the hard negatives and positives (default: the "
                   "shipped)")
    t.add_argument("--small-share", type=float, default=0.0, metavar="SHARE",
                   help="draw this share of the synthetic images as small images (500-1000 px: exports, figures), "
                   "which the detector sees enlarged (0: every one at 1500-3200 px, reduced)")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar of each epoch")
    _settings(t, "with --site-labels: the redaction settings the validation images are redacted with, before and "
              "after (see configs/redact.yaml)")


def _train_glyphs_parser(sub) -> None:  # type: ignore[no-untyped-def]
    t = sub.add_parser("train-glyphs", help="train the laterality glyph classifier (needs the train extra)",
                       description="Render L, R and other glyphs in every placement (some cut by the crop's edge), "
                       "add the real markers and background patches of the train split of --labels, train the "
                       "small CNN and export it to ONNX. Use it with --set retention.glyph_weights=OUT.")
    t.add_argument("out", type=Path, help="the ONNX file to write")
    _labelled_set(t)
    t.add_argument("--n-train", type=int, default=40000, help="training glyphs")
    t.add_argument("--n-val", type=int, default=4000, help="held-out rendered glyphs scored at the end")
    t.add_argument("--epochs", type=int, default=8)
    t.add_argument("--seed", type=int, default=0)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "regions":
            return _regions(args)
        if args.command == "train":
            return _train(args)
        if args.command == "train-glyphs":
            return _train_glyphs(args)
        if args.command == "check":
            return _check(args)
        if args.command == "pseudonym":
            return _pseudonym(args)
    except (ConfigError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"radiograph-deid {args.command}: {exc}", file=sys.stderr)
        return 2
    return _redact(args)


def _regions(args: argparse.Namespace) -> int:
    from .known_regions import file_values
    from .labels import read_labels
    from .region_proposals import KEYWORDS, RECORDS_EXTENT, propose_rules, records_as_labels, run_records, write_rules

    images = read_labels(args.labels) if args.labels else records_as_labels(run_records(args.records))
    keywords = KEYWORDS if args.keywords is None else tuple(args.keywords)
    values = {im.file: file_values(args.data_root / im.file, keywords) for im in images}
    rules = propose_rules(images, values, keywords, args.min_share, args.min_images, args.any_size,
                          None if args.labels else RECORDS_EXTENT)
    if not rules:
        print(f"radiograph-deid regions: no region: text lies in no place on {args.min_share:.0%} of a device's "
              f"images (and {args.min_images} or more); nothing written", file=sys.stderr)
        return 1
    found = "labelled images" if args.labels else "images of a redact run, by what it filled"
    try:
        write_rules(rules, args.out, f"{len(images)} {found}")
    except FileExistsError as exc:
        raise ValueError(str(exc)) from None
    for rule in rules:
        print(f"{rule.name}: {rule.images} images, {len(rule.regions)} region(s), laterality markers inside: "
              f"{rule.laterality}")
    print(f"wrote {args.out}; use it with --set detector.known_regions={args.out}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from .enums import CheckStatus
    from .selfcheck import check

    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    results = check(load_config(args.config, args.overrides), args.output)
    for result in results:
        print(result.line(), flush=True)
    return 1 if any(r.status is CheckStatus.FAIL for r in results) else 0


def _pseudonym(args: argparse.Namespace) -> int:
    from .pseudonym import Pseudonymizer, existing_key

    cfg = load_config(args.config, [*args.overrides, *_key_file_override(args)])
    key = existing_key(cfg.header.key_file)
    if key is None:
        raise FileNotFoundError(f"no key at {cfg.header.key_file} and no RADIOGRAPH_DEID_KEY: a pseudonym is the "
                                "key's; pass the key the runs used with --key-file")
    ids = list(args.patient_ids)
    if args.from_file:
        text = sys.stdin.read() if str(args.from_file) == "-" else args.from_file.read_text(encoding="utf-8")
        ids += [line.strip() for line in text.splitlines() if line.strip()]
    if not ids and not args.uid:
        raise ValueError("nothing to look up: give PATIENT_ID, --from FILE or --uid UID")
    ps = Pseudonymizer(key, cfg.header.pseudonym_prefix, cfg.header.max_date_shift_days)
    for pid in ids:
        patient = ps.patient(pid, args.issuer)
        row: dict[str, object] = {"patient_id": pid, "issuer": args.issuer, "pseudonym": patient.patient_id}
        if cfg.header.retain_longitudinal_modified_dates:
            row["date_shift_days"] = patient.date_shift.days
        print(json.dumps(row))
    for uid in args.uid:
        print(json.dumps({"uid": uid, "remapped": ps.uid(uid)}))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, labelled_items, synthetic_items, write_report
    from .known_regions import KnownRegions, file_values
    from .labels import read_labels
    from .marker_dataset import backgrounds_from_labels
    from .pipeline import MarkerDecider
    from .verify import build_verifier

    if not args.labels and not args.synthetic:
        raise ValueError("give --labels FILE and/or --synthetic N")
    cfg = load_config(args.config, args.overrides)
    decider = MarkerDecider(cfg)
    verifier = build_verifier(cfg.verify) if args.verify else None
    images = read_labels(args.labels) if args.labels else []
    chosen = [im for im in images if args.split == "all" or im.split == args.split]
    report = {}
    sets = []
    if chosen:
        sets.append((f"real ({args.split}, {len(chosen)} images)", labelled_items(chosen, args.data_root)))
    if args.synthetic:
        from .marker_synth import font_warning

        warning = font_warning()
        if warning:
            print(f"radiograph-deid evaluate: warning: {warning}", file=sys.stderr)
        bgs = backgrounds_from_labels([im for im in images if im.split == "val" and im.file.startswith("hannover/")],
                                      args.data_root) if images else []
        sets.append((f"synthetic held-out ({args.synthetic} images, seed {args.seed})",
                     synthetic_items(bgs, args.synthetic, args.seed)))
    known = KnownRegions.configured(cfg.detector.known_regions)  # read once: rules and the header values they match
    keywords = known.keywords
    values = {im.file: file_values(args.data_root / im.file, keywords) for im in chosen} if keywords else None
    for title, items in sets:
        metrics, scores = evaluate(decider, items, verifier, values, known, args.misses)
        crops = sum(len(s.left_labels) + len(s.unkept_labels) + len(s.false_box_xyxy) for s in scores)
        where = f"\n{crops} markers left or not kept and false boxes, as crops in {args.misses}" if args.misses else ""
        print(f"== {title}\n{metrics.table()}{where}\n")
        report[title] = (metrics, scores)
    if args.report:
        for i, (title, (metrics, scores)) in enumerate(report.items()):
            path = args.report if i == 0 else args.report.with_name(f"{args.report.stem}-{i}{args.report.suffix}")
            write_report(path, metrics, scores)
    return 0


def _train(args: argparse.Namespace) -> int:
    from .labels import read_labels
    from .train import (SHIPPED_ONNX, SHIPPED_PT, TrainPlan, build_site_dataset, build_synthetic_dataset, fine_tune,
                        train_detector)

    args.out.mkdir(parents=True, exist_ok=True)
    plan = TrainPlan(out=args.out / "run", epochs=args.epochs, batch=args.batch, device=args.device, seed=args.seed,
                     init=str(args.init) if args.init else "")
    if args.site_labels:
        if not args.val_labels:
            raise ValueError("--site-labels needs --val-labels: validate on images that are not the training images")
        train_set, val_set = read_labels(args.site_labels), read_labels(args.val_labels)
        overlap = {im.file for im in train_set} & {im.file for im in val_set}
        if overlap:
            raise ValueError(f"{len(overlap)} image(s) are in both --site-labels and --val-labels")
        data = build_site_dataset(args.out / "dataset", train_set, val_set, args.site_root, seed=args.seed)
        plan = TrainPlan(out=plan.out, epochs=args.epochs, batch=min(args.batch, 8), device=args.device,
                         seed=args.seed, init=str(args.init or SHIPPED_PT))
        tuned = fine_tune(data, plan, val_set, args.site_root, load_config(args.config, args.overrides),
                          progress=not args.no_progress, start_onnx=None if args.init else SHIPPED_ONNX)
        print(f"on the --val-labels images, redaction with the starting weights: {tuned.start_score}; "
              f"with the fine-tuned: {tuned.best_score}")
        if not tuned.improved:
            print(f"radiograph-deid train: the fine-tuned weights ({tuned.best}) redact the validation images no "
                  "better than the weights they started from, so they were not exported: keep using the weights "
                  "you have; label more images of the site (or check their labels) and train again", file=sys.stderr)
            return 1
        print(f"best weights: {tuned.best}")
        if args.export:
            args.export.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tuned.onnx, args.export)
            print(f"exported: {args.export}")
        return 0
    elif not (args.resume and (args.out / "dataset" / "data.yaml").exists()):
        data = build_synthetic_dataset(args.out / "dataset", args.labels, args.data_root, args.n_train, args.n_val,
                                       args.seed, args.hard_negatives, args.miner, args.hard_positives,
                                       args.small_share)
    else:
        data = args.out / "dataset" / "data.yaml"
    return _export(train_detector(data, plan, resume=args.resume, progress=not args.no_progress), args.export)


def _export(best: Path, dest: Path | None) -> int:
    from .train import export_onnx

    print(f"best weights: {best}")
    if dest:
        print(f"exported: {export_onnx(best, dest)}")
    return 0


def _train_glyphs(args: argparse.Namespace) -> int:
    from .glyphs import glyph_material, train_glyph_classifier
    from .labels import read_labels

    train_split = [im for im in read_labels(args.labels) if im.split == "train"]
    if not train_split:
        raise ValueError(f"{args.labels} has no images in the train split")
    real, backgrounds = glyph_material(train_split, args.data_root)
    accuracy = train_glyph_classifier(args.out, args.n_train, args.n_val, args.epochs, args.seed, backgrounds, real)
    print(json.dumps({"out": str(args.out), "real_crops": len(real), "held_out_accuracy": accuracy}))
    return 0


def _redact(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # Tesseract's OpenMP only slows it down on small machines
    overrides = [*args.overrides, *_key_file_override(args)]
    if args.prune:
        overrides.append("output.prune=true")
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"radiograph-deid: configuration error: {exc}", file=sys.stderr)
        return 2
    from .folder_run import run

    try:
        summary = run(args.input, args.output, cfg, args.quarantine, progress=not args.no_progress,
                      workers=args.workers)
    except (ValueError, RuntimeError) as exc:
        print(f"radiograph-deid: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("radiograph-deid: interrupted; nothing unfinished was written to OUTPUT. Run again to resume (finished "
              "files are skipped)", file=sys.stderr)
        return 130
    except OSError as exc:  # OUTPUT or the quarantine cannot be made or written (the inputs' own errors are recorded)
        what = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
        print(f"radiograph-deid: {what}; check the folders given and run again (finished files are skipped)",
              file=sys.stderr)
        return 2
    counts = summary["counts"]
    print(json.dumps({"images": summary["images"], **counts, "resumed": summary["resumed"],
                      "laterality_mismatches": summary["laterality_mismatches"],
                      "inputs_gone": len(summary["inputs_gone"]), "pruned": len(summary["pruned"]),
                      "summary": str(Path(summary["records"]) / "summary.json"),
                      "quarantine": summary["quarantine"]}))
    return 1 if counts["quarantined"] else 0


if __name__ == "__main__":
    sys.exit(main())
