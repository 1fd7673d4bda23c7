"""Command line: ``radiograph-deid redact INPUT OUTPUT`` (the library's ``pipeline.run`` underneath)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .config import ConfigError, load_config


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="radiograph-deid", description="Make radiographs safe to share.")
    p.add_argument("--version", action="version", version=f"radiograph-deid {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("redact", help="de-identify every DICOM/PNG/JPEG/TIFF under INPUT into OUTPUT",
                       description="De-identify headers and burned-in text. Files that fail any stage are copied "
                       "untouched to the quarantine folder (default: OUTPUT_quarantine) with a reason; "
                       "a rerun resumes and skips finished files.")
    r.add_argument("input", type=Path, help="a folder (searched recursively) or one file")
    r.add_argument("output", type=Path, help="destination folder; the relative tree of INPUT is kept")
    r.add_argument("--config", type=Path, help="YAML configuration (see configs/redact.yaml)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting, e.g. --set header.retain_longitudinal_modified_dates=true")
    r.add_argument("--quarantine", type=Path, help="quarantine folder (outside OUTPUT)")
    r.add_argument("--key-file", help="secret key for pseudonyms and UIDs (created if absent; never written out)")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    r.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # Tesseract's OpenMP only slows it down on small machines
    overrides = list(args.overrides)
    if args.key_file:
        overrides.append(f"header.key_file={args.key_file}")
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"radiograph-deid: configuration error: {exc}", file=sys.stderr)
        return 2
    from .pipeline import run

    try:
        summary = run(args.input, args.output, cfg, args.quarantine, progress=not args.no_progress)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"radiograph-deid: {exc}", file=sys.stderr)
        return 2
    counts = summary["counts"]
    print(json.dumps({"images": summary["images"], **counts, "resumed": summary["resumed"],
                      "summary": str(args.output / cfg.output.records_dir / "summary.json"),
                      "quarantine": summary["quarantine"]}))
    return 1 if counts["quarantined"] else 0


if __name__ == "__main__":
    sys.exit(main())
