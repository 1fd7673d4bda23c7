"""``radiograph-deid check``: is this installation ready to de-identify, offline, on this machine?

Why: a site installs the tool on a machine with no internet and hands it patients' images. What can be missing
there (the Tesseract program the safety net needs, a codec, the weights, a key file that cannot be written) shows
today as quarantined files in a real run. The check says it first, and proves the whole data flow on generated
radiographs (invented names only; nothing of the site's is read or written): the header profile, the burned-in
names and dates filled, the laterality marker kept, the safety net run, compressed pixel data decoded.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__
from .config import Config
from .enums import CheckStatus

PACKAGES = ("pydicom", "numpy", "onnxruntime", "opencv-python-headless", "rapidocr-onnxruntime", "pylibjpeg",
            "python-gdcm", "pytesseract")


@dataclass(frozen=True)
class Check:
    """One thing checked: what, how it went, and what it found (or what to do)."""

    name: str
    status: CheckStatus
    detail: str

    def line(self) -> str:
        return f"{self.status.value:<4}  {self.name:<22} {self.detail}"


def environment(cfg: Config) -> Check:
    """The versions in use (every check takes the configuration; this one needs none of it)."""
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} -")
    return Check("software", CheckStatus.OK, f"radiograph-deid {__version__}, Python {platform.python_version()}; "
                 + ", ".join(found))


def tesseract(cfg: Config) -> Check:
    """The OCR program the safety net (and retention's second opinion) runs, with its English model."""
    needed = (cfg.verify.enabled and cfg.verify.engine == "tesseract") or \
        (cfg.retention.enabled and cfg.retention.tesseract_second_opinion)
    exe = shutil.which("tesseract")
    if exe is None:
        if not needed:
            return Check("tesseract", CheckStatus.OK, "not found, and not used by these settings")
        return Check("tesseract", CheckStatus.FAIL, "not found: the safety net needs it (apt-get install "
                     "tesseract-ocr, or bash scripts/setup.sh); runs stop at once without it")
    try:
        about = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
        langs = subprocess.run([exe, "--list-langs"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("tesseract", CheckStatus.FAIL, f"{exe} does not run: {exc}")
    first = (about.stdout or about.stderr).splitlines()[:1]
    if "eng" not in (langs.stdout + langs.stderr).split():
        return Check("tesseract", CheckStatus.FAIL, f"{exe} has no English model (apt-get install tesseract-ocr-eng)")
    if not cfg.verify.enabled:
        return Check("tesseract", CheckStatus.WARN, f"{first[0] if first else exe}, but the safety net is off "
                     "(verify.enabled=false): no independent check that text is gone")
    return Check("tesseract", CheckStatus.OK, f"{first[0] if first else exe} (eng)")


def weights(cfg: Config) -> Check:
    """The weights a run loads (``folder_run.weights_files``), named by content: the same digests on two machines
    are the same models."""
    from .folder_run import file_digest, weights_files

    found = []
    for what, (path, shipped) in weights_files(cfg).items():
        if not path.is_file():
            return Check("weights", CheckStatus.FAIL, f"the {what} weights {path} are missing: reinstall the package, "
                         "or correct the setting that names them")
        digest = file_digest(path)[:12]
        found.append(f"{what} {'shipped' if shipped else path} sha256 {digest}")
    return Check("weights", CheckStatus.OK, "; ".join(found))


def known_regions(cfg: Config) -> Check:
    """The site's known burned-in regions a run fills (``detector.known_regions``), named by content."""
    from .folder_run import file_digest
    from .known_regions import KnownRegions

    if not cfg.detector.known_regions:
        return Check("known regions", CheckStatus.OK, "none (detector.known_regions: only what is detected is filled)")
    path = Path(cfg.detector.known_regions).expanduser()
    rules = KnownRegions.configured(cfg.detector.known_regions).rules
    return Check("known regions", CheckStatus.OK, f"{len(rules)} rule(s) in {path} sha256 {file_digest(path)[:12]}: "
                 + ", ".join(r.name for r in rules))


def header(cfg: Config) -> Check:
    """What the header stage does under this configuration: the profile and options each output is stamped with
    (for the site's privacy officer, before any file is read)."""
    from .dicom_profile import deid_methods

    codes = deid_methods(cfg.header, pixels_cleaned=True)
    detail = "PS3.15 " + ", ".join(f"{c.meaning} ({c.value_code})" for c in codes)
    if cfg.header.retain_patient_characteristics:
        detail += f"; ages over {cfg.header.age_top_code_years} years written as {cfg.header.age_top_code_years}"
    return Check("header", CheckStatus.OK, detail)


def codecs(cfg: Config) -> Check:
    """The compressed transfer syntaxes the installed pydicom handlers decode; files in the others are
    quarantined with the reason (a warning, not a failure: a site may have none of them). No setting bears on it."""
    import pydicom.config
    from pydicom.uid import UID

    from .pixels.decode import SUPPORTED_SYNTAXES, _UNCOMPRESSED

    handlers = [h for h in pydicom.config.pixel_data_handlers if h.is_available()]
    missing = sorted(UID(ts).name for ts in SUPPORTED_SYNTAXES - _UNCOMPRESSED
                     if not any(h.supports_transfer_syntax(UID(ts)) for h in handlers))
    if missing:
        return Check("codecs", CheckStatus.WARN, "no decoder for " + ", ".join(missing) + ": such files are "
                     "quarantined (pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg python-gdcm)")
    compressed = len(SUPPORTED_SYNTAXES - _UNCOMPRESSED)
    return Check("codecs", CheckStatus.OK, f"every supported compressed syntax decodes ({compressed})")


def key(cfg: Config) -> Check:
    """Where the secret key comes from (``pseudonym.existing_key``, as a run reads it); never created or shown."""
    from .pseudonym import KeyFileError, existing_key

    path = Path(cfg.header.key_file).expanduser()
    try:
        found = existing_key(path)
    except KeyFileError as exc:
        return Check("key", CheckStatus.FAIL, str(exc))
    if os.environ.get("RADIOGRAPH_DEID_KEY"):
        return Check("key", CheckStatus.OK, "from RADIOGRAPH_DEID_KEY")
    if found is None:
        parent = _nearest_existing(path)
        if not os.access(parent, os.W_OK):
            return Check("key", CheckStatus.FAIL, f"{path} is absent and {parent} cannot be written: give --key-file "
                         "or RADIOGRAPH_DEID_KEY")
        return Check("key", CheckStatus.OK, f"{path} is absent: the first run creates it (mode 0600). Keep it: "
                     "pseudonyms and UIDs are reproducible only with it")
    if path.stat().st_mode & 0o077:
        return Check("key", CheckStatus.WARN, f"{path} is readable by others (chmod 600 {path})")
    return Check("key", CheckStatus.OK, f"{path}")


def _nearest_existing(path: Path) -> Path:
    """``path`` or the nearest folder above it that exists (nothing is made)."""
    return next((p for p in [path, *path.parents] if p.exists()), Path("/"))


MIN_FREE = 2**30  # bytes free under OUTPUT below which the check warns: a few hundred radiographs


def output_folder(folder: Path) -> Check:
    """Where a run would write: the nearest folder that exists on the way to ``folder`` (nothing is made), whether
    this user may write there, whether its file system tells letter case apart (an SMB share or macOS volume does
    not: inputs whose names differ only in case are refused), and the room left."""
    where = _nearest_existing(folder)
    if not where.is_dir():
        return Check("output", CheckStatus.FAIL, f"{folder}: {where} is not a folder")
    if not os.access(where, os.W_OK | os.X_OK):
        return Check("output", CheckStatus.FAIL, f"{folder}: this user may not write to {where}")
    from .fileio import case_blind

    try:
        blind = case_blind(where)  # a probe file, made and removed
    except OSError as exc:
        return Check("output", CheckStatus.FAIL, f"{folder}: cannot write in {where} ({exc.strerror})")
    free = shutil.disk_usage(where).free
    notes = [f"{free / 2**30:.1f} GiB free"]
    status = CheckStatus.OK
    if blind:
        status = CheckStatus.WARN
        notes.append("its file system does not tell letter case apart: inputs whose names differ only in case "
                     "are refused")
    if free < MIN_FREE:
        status = CheckStatus.WARN
        notes.append("little room: a full disk stops the run (it resumes once there is room)")
    return Check("output", status, f"{folder}: " + "; ".join(notes))


def end_to_end(cfg: Config) -> Check:
    """The whole data flow on generated radiographs (MONOCHROME1 CR uncompressed, DX in RLE, and in JPEG 2000
    where gdcm encodes it), in a private temporary folder with a throwaway key: every file written, its header
    de-identified, each burned-in line of invented PHI filled, the L kept, the safety net run."""
    from .folder_run import run
    from .pipeline import Redactor

    with tempfile.TemporaryDirectory(prefix="radiograph-deid-check-") as tmp:
        inp, out = Path(tmp, "in"), Path(tmp, "out")
        inp.mkdir()
        ink = _write_samples(inp)
        cfg = replace(cfg, header=replace(cfg.header, key_file=str(Path(tmp, "throwaway.key"))))
        redactor = Redactor(cfg)
        t0 = time.perf_counter()
        summary = run(inp, out, cfg, Path(tmp, "quarantine"), progress=False, redactor=redactor)
        seconds = (time.perf_counter() - t0) / max(1, summary["images"])
        problems = _problems(summary["images_detail"], inp, out, ink, cfg.retention.enabled)
    if problems:
        return Check("end to end", CheckStatus.FAIL, "; ".join(problems))
    marker = "L kept" if cfg.retention.enabled else "L filled (retention off)"
    net = "safety net passed" if cfg.verify.enabled else "safety net OFF"
    return Check("end to end", CheckStatus.OK, f"{summary['images']} generated radiographs de-identified "
                 f"(header, burned-in text filled, {marker}, {net}; {seconds:.1f} s each)")


def _problems(rows: list[dict], inp: Path, out: Path, ink: dict[str, np.ndarray], keep_marker: bool) -> list[str]:
    """Each file not written, then each fault of the outputs (``_faults``), then each L not recorded as kept."""
    problems = [f"{r['input']}: {r['decision']} at {r['stage']}: {r['reason']}" for r in rows
                if r["decision"] != "written"]
    if not problems:
        problems = [p for r in rows for p in _faults(inp / r["input"], out / r["output"], ink, keep_marker)]
    if not problems and keep_marker:
        problems = [f"{r['input']}: the L was not kept as a laterality marker" for r in rows
                    if "L" not in r["laterality_kept"].split()]
    return problems


SIZE = 1024  # the generated radiographs' side: big enough for the default text sizes, quick to redact


def _write_samples(folder: Path) -> dict[str, np.ndarray]:
    """The generated inputs: a phantom with the default invented name, ID, date, position and institution lines
    and an L on a lead marker's tile, as a MONOCHROME1 CR (uncompressed) and as a DX in RLE and in JPEG 2000
    (where gdcm encodes it). Returns each burned-in line's ink, by its text."""
    from pydicom.uid import JPEG2000Lossless, RLELossless

    from .synthetic import burn, compress, default_burns, make_dataset, phantom, to_stored

    burns = default_burns(SIZE, SIZE)
    base = phantom(SIZE, SIZE, seed=1)
    x0, y0, x1, y1 = burns[-1].extent()  # the L
    base[y0 - 12 : y1 + 12, x0 - 12 : x1 + 12] = 0.45  # its tile, as on real plates
    img = burn(base, burns)
    make_dataset(to_stored(img, 12, True), "MONOCHROME1", "CR", 12).save_as(folder / "cr_uncompressed.dcm",
                                                                           write_like_original=False)
    for name, syntax in (("dx_rle.dcm", RLELossless), ("dx_jpeg2000.dcm", JPEG2000Lossless)):
        try:
            ds = compress(make_dataset(to_stored(img, 12, False), "MONOCHROME2", "DX", 12), syntax)
        except ImportError:  # no gdcm to encode JPEG 2000 with: the check goes on without that file
            continue
        ds.save_as(folder / name, write_like_original=False)
    return {b.text: burn(np.zeros((SIZE, SIZE), np.float32), [b]) > 0.5 for b in burns}


def _faults(src: Path, dst: Path, ink: dict[str, np.ndarray], keep_marker: bool) -> list[str]:
    """What is wrong with one output: PHI left in its header, a burned-in line not filled, the L not kept (with
    retention off, ``keep_marker`` False: the L not filled like the rest)."""
    import pydicom

    from .synthetic import FAKE_PHI

    before, after = pydicom.dcmread(src), pydicom.dcmread(dst)
    faults = [f"{src.name}: {tag} left in the header" for tag, value in FAKE_PHI.items()
              if str(after.get(tag, "")).strip() == str(value)]
    if str(after.get("PatientIdentityRemoved", "")) != "YES":
        faults.append(f"{src.name}: PatientIdentityRemoved is not YES")
    changed = before.pixel_array != after.pixel_array
    for text, mask in ink.items():
        share = float(changed[mask].mean())
        if text == "L" and keep_marker and share > 0.1:
            faults.append(f"{src.name}: the laterality marker L was blacked out ({share:.0%} of its ink)")
        elif (text != "L" or not keep_marker) and share < 0.9:
            faults.append(f"{src.name}: the burned-in line '{text}' was not filled ({share:.0%} of its ink)")
    return faults


CHECKS: tuple[tuple[str, Callable[[Config], Check]], ...] = (
    ("software", environment), ("tesseract", tesseract), ("weights", weights), ("known regions", known_regions),
    ("header", header), ("codecs", codecs), ("key", key), ("end to end", end_to_end))


def check(cfg: Config, output: Path | None = None) -> list[Check]:
    """Every check in turn (with ``output``, also the folder a run would write to); one that raises is a failure
    with its reason, and the next still runs."""
    checks = list(CHECKS) + ([("output", lambda _: output_folder(output))] if output is not None else [])
    results = []
    for name, fn in checks:
        try:
            results.append(fn(cfg))
        except Exception as exc:  # a check that cannot run is the finding
            results.append(Check(name, CheckStatus.FAIL, f"{type(exc).__name__}: {exc}"))
    return results
