"""De-identify a folder: the run around ``pipeline.Redactor``, which handles one file.

What a site meets when it runs the tool on its own trees, again and again: inputs found through links and each
real folder once; a run resumed where it stopped, but only under the settings, weights and version that made its
records; one run at a time per OUTPUT; inputs whose outputs would be one file refused (an image renamed onto
another's name, names differing in case where the file system is blind to it); a full disk stopping the run;
outputs an earlier run wrote and this one does not vouch for removed; outputs of inputs now gone reported; and
a summary of every decision.
"""
from __future__ import annotations

import filecmp
import hashlib
import hmac
import itertools
import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from . import __version__
from .config import Config
from .enums import Decision, OutputNames, Stage
from .fileio import beside, case_blind, is_dicom, remove_partial_writes, write_bytes_atomic
from .output_names import image_output
from .pipeline import Redactor, refused_untouched, to_quarantine
from .pseudonym import load_or_create_key
from .records import ImageRecord, write_summary
from .worker_pool import (CRASHED, CRASHES, announced, clear_mark, output_note, processed, started_path, starts,
                          worker_count)

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a run there goes on unguarded, and says so
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("radiograph_deid")


def iter_inputs(root: Path, avoid: Sequence[Path] = (), hidden_folders: list[Path] | None = None) -> Iterator[Path]:
    """Every file under ``root``, in a stable order, hidden files too (each gets its record); folders reached
    through a link are searched too (a site's tree may link its archive in), each real folder once (a link back up
    would loop), none inside ``avoid`` (OUTPUT and the quarantine, which a link could lead into). Hidden folders
    (.git, .Trash) are not searched; each is appended to ``hidden_folders``."""
    if root.is_file():
        yield root
        return
    seen: set[str] = set()
    walls = [os.path.realpath(a) for a in avoid]
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen or any(os.path.commonpath([real, w]) == w for w in walls):
            dirnames[:] = []
            continue
        seen.add(real)
        if hidden_folders is not None:
            hidden_folders += [Path(dirpath) / d for d in sorted(dirnames) if d.startswith(".")]
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            yield Path(dirpath) / name


def settings_digest(cfg: Config, key: bytes) -> str:
    """What decides a file's output: the tool's version, every setting that changes what is written (not where
    records and quarantine go, nor how many threads, nor the time a file may take), the weights' content and the
    secret key, as an HMAC that reveals neither. A record made under another digest is not resumed: a rerun with
    stricter settings, or with retrained weights, redoes every file."""
    settings = cfg.to_dict()
    names = settings.pop("output")["names"]
    if names != OutputNames.SAME.value:  # where outputs go, under names the earlier records did not give
        settings["output_names"] = names
    del settings["detector"]["threads"], settings["header"]["key_file"], settings["input"]["max_seconds_per_file"]
    if cfg.detector.known_regions:  # the rules file's content, as the weights'
        settings["known_regions_content"] = file_digest(cfg.detector.known_regions)
    text = json.dumps({"version": __version__, "settings": settings, "weights": _weights_digests(cfg)}, sort_keys=True)
    return hmac.new(key, text.encode(), "sha256").hexdigest()[:16]


def weights_files(cfg: Config) -> dict[str, tuple[Path, bool]]:
    """The weights files a run loads, the detector's and the glyph classifier's: (path, whether the shipped one)."""
    from .glyphs import SHIPPED_GLYPH_ONNX
    from .train import SHIPPED_ONNX

    return {what: (Path(setting).expanduser(), False) if setting else (shipped, True)
            for what, setting, shipped in (("detector", cfg.detector.weights, SHIPPED_ONNX),
                                           ("glyphs", cfg.retention.glyph_weights, SHIPPED_GLYPH_ONNX))}


def _weights_digests(cfg: Config) -> list[str]:
    """The content of the weights a run loads: retrained into the same file, they make other outputs."""
    return [file_digest(path) for path, _ in weights_files(cfg).values()]


def file_digest(path: str | Path) -> str:
    """The content of a file a run loads (weights, the known regions' rules): changed in place, it makes other
    outputs."""
    path = Path(path).expanduser()
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def _recorded(record_path: Path) -> ImageRecord | None:
    try:
        return ImageRecord.from_json(record_path.read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _done(rec: ImageRecord | None, src: Path, out_root: Path, settings: str) -> bool:
    """Whether ``src``'s earlier record may stand: made under these settings, of the input as it is now, and its
    output still there."""
    if rec is None or rec.settings != settings:
        return False
    try:
        st = src.stat()
    except OSError:
        return False
    if (rec.input_size, rec.input_mtime_ns) != (st.st_size, st.st_mtime_ns):
        return False
    if rec.decision is Decision.QUARANTINED and rec.stage is Stage.WRITE:
        return False  # refused when writing (its output name taken, the disk full): tried again
    return rec.decision is not Decision.WRITTEN or (out_root / rec.output).is_file()


def check_folders(inp: Path, out: Path, quarantine: Path) -> None:
    inp, out, quarantine = inp.resolve(), out.resolve(), quarantine.resolve()
    if not inp.exists():
        raise FileNotFoundError(f"input {inp} does not exist")
    for a, b in ((inp, out), (inp, quarantine), (out, quarantine)):
        if a == b or a in b.parents or b in a.parents:
            raise ValueError(f"{a} and {b} must not contain one another: input, output and quarantine are kept apart")


def output_clashes(files: Sequence[Path], base: Path, image_extensions: Sequence[str]) -> dict[Path, str]:
    """Images whose output name (``image_output``: "x.jpg" is written "x.jpg.png") is another input's own path
    in the run, with the reason: both would be written there, one over the other. The renamed one is refused."""
    names = {src.relative_to(base) for src in files}
    clashes = {}
    for src in files:
        rel = src.relative_to(base)
        target = image_output(rel)
        if target != rel and target in names and src.suffix.lower() in image_extensions and not is_dicom(src):
            clashes[src] = (f"its output would be written as {target.name}, the name of another input beside it; "
                            "rename one of them and rerun")
    return clashes


CASE_CLASH = "refused-letter-case.txt"  # in the records folder: the pair of inputs a case-blind OUTPUT refused


def check_case_blind(files: Sequence[Path], base: Path, image_extensions: Sequence[str], records_dir: Path,
                     names_hidden: bool = False) -> None:
    """Refuse the run when OUTPUT's file system does not tell letter case apart and two inputs' paths (or an
    image's output name and another's path) differ only in case: their outputs and records would be one file.
    With ``names_hidden`` (pseudonymous names: input paths may name patients, and the log names none) the pair is
    written to a file in the records folder, beside OUTPUT and open to this user alone, not to the message."""
    if not case_blind(records_dir):
        return
    seen: dict[str, Path] = {}
    for src in files:
        rel = src.relative_to(base)
        names = {rel, image_output(rel)} if src.suffix.lower() in image_extensions else {rel}
        for name in names:
            other = seen.setdefault(name.as_posix().casefold(), rel)
            if other != rel:
                pair = f"{rel.as_posix()} and {other.as_posix()}"
                if names_hidden:
                    where = records_dir / CASE_CLASH
                    write_bytes_atomic(where, os.fsencode(pair + "\n"))
                    pair = f"two inputs (named in {where})"
                raise ValueError(f"{pair} differ only in letter case, and the file system of {records_dir.parent} "
                                 "does not tell case apart: one would be written over the other. Rename one of "
                                 "them, or write OUTPUT to a case-sensitive file system")


def run(inp: Path, out: Path, cfg: Config, quarantine: Path | None = None, progress: bool = True,
        redactor: Redactor | None = None, workers: int = 1) -> dict:
    """De-identify everything under ``inp`` into ``out``; returns the run summary.

    Files are done in ``workers`` processes (0 chooses: ``worker_count``), each with its own models and a share
    of the threads, where a file that kills or stalls its process is met (``worker_pool``); with ``redactor``,
    in this process (no time limit holds there).
    """
    quarantine = quarantine or Path(cfg.output.quarantine or f"{out.resolve()}_quarantine")
    check_folders(inp, out, quarantine)
    records_dir = records_folder(out, cfg.output.records_dir, cfg.output.names)
    if not records_dir.resolve().is_relative_to(out.resolve()):
        check_folders(inp, records_dir, quarantine)  # beside OUTPUT: kept apart from INPUT and the quarantine too
        records_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # it names the inputs OUTPUT does not
    check_names_unmixed(out, cfg.output.records_dir, cfg.output.names)
    with sole_run(records_dir, out):
        if cfg.output.prune and inp.is_dir():
            check_prune_input(records_dir, inp)
        return _run(inp, out, cfg, quarantine, records_dir, progress, redactor, workers)


def records_folder(out: Path, records_dir: str, names: OutputNames) -> Path:
    """Where the records and the summary go. They name every input: under OUTPUT where outputs keep the inputs'
    names anyway; beside it (``OUTPUT_deid``) where they are pseudonymous, so that OUTPUT names no input."""
    folder = Path(records_dir).expanduser()
    if folder.is_absolute():
        return folder
    if names is OutputNames.SAME:
        return out / folder
    return Path(f"{out.resolve()}_{folder.as_posix().lstrip('.').replace('/', '_') or 'deid'}")


def check_names_unmixed(out: Path, records_dir: str, names: OutputNames) -> None:
    """Refuse a run whose naming differs from the earlier run's in the same OUTPUT: its outputs would stand beside
    the others under other names, and neither run's records would know the other's."""
    other = OutputNames.SAME if names is OutputNames.PSEUDONYMOUS else OutputNames.PSEUDONYMOUS
    earlier = records_folder(out, records_dir, other)
    if earlier != records_folder(out, records_dir, names) and (earlier / "records").is_dir():
        raise ValueError(f"{out} holds a run with output.names={other.value} (its records are in {earlier}); "
                         f"give another OUTPUT for output.names={names.value}")


@contextmanager
def sole_run(records_dir: Path, out: Path) -> Iterator[None]:
    """Hold OUTPUT for this run (an advisory lock on ``records_dir/run.lock``), or refuse: a second run into the
    same OUTPUT would redo the first's files beside it and write the summary over it."""
    records_dir.mkdir(parents=True, exist_ok=True)
    with open(records_dir / "run.lock", "a+") as fh:
        try:
            if fcntl is None:
                raise OSError(0, "this system has no advisory file locks")
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            raise RuntimeError(f"another run is writing to {out}; wait for it to finish, or give "
                               "another OUTPUT") from None
        except OSError as exc:  # a network share that keeps no locks: the run goes on, unguarded
            log.warning("OUTPUT %s cannot be locked (%s): make sure no other run writes to it", out, exc.strerror)
            locked = False
        try:
            yield
        finally:
            if locked:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _run(inp: Path, out: Path, cfg: Config, quarantine: Path, records_dir: Path, progress: bool,
         redactor: Redactor | None, workers: int) -> dict:
    from tqdm import tqdm

    base = inp if inp.is_dir() else inp.parent
    hidden: list[Path] = []
    files = list(iter_inputs(inp, avoid=(out, quarantine, records_dir), hidden_folders=hidden))
    for folder in (out, quarantine):
        if remove_partial_writes(folder):
            log.warning("removed the partly written files an interrupted run left in %s", folder)
    same_names = cfg.output.names is OutputNames.SAME
    clashes = output_clashes(files, base, cfg.input.image_extensions) if same_names else {}
    check_case_blind([f for f in files if f not in clashes], base, cfg.input.image_extensions, records_dir,
                     names_hidden=not same_names)
    settings = settings_digest(cfg, load_or_create_key(cfg.header.key_file))  # the key made before any worker reads it
    who = _namer(files, base, same_names)
    plan = _plan(files, base, out, quarantine, records_dir, cfg.output.resume, settings, clashes, who)
    workers = worker_count(workers, len(plan.pending))
    bar = tqdm(total=len(plan.suspects) + len(plan.pending), desc="redact", unit="img", disable=not progress)
    order = [src for src in files if src in plan.done]  # resumed first, then as they are written
    if plan.suspects:
        log.warning("%d file(s) were in work when a run died: they are done first, one at a time", len(plan.suspects))
    finished = itertools.chain(processed(plan.suspects, out, quarantine, records_dir, cfg, None, 1, alone=True),
                               processed(plan.pending, out, quarantine, records_dir, cfg, redactor, workers))
    for src, rel, rec_path, rec in finished:
        rec.settings = settings
        write_bytes_atomic(rec_path, rec.to_json().encode())
        _recorded_work(plan, started_path(records_dir, rel), rec)
        if rec.decision is not Decision.WRITTEN:
            log.warning("%s %s at %s: %s", rec.decision.value, who(src), rec.stage.value, rec.reason)
        plan.done[src] = rec
        order.append(src)
        bar.update()
    bar.close()
    if not same_names:
        _one_output_each(plan.done, order, base, quarantine, records_dir, who)
    records = [plan.done[src] for src in files]
    _stale_removed(out, plan.earlier, records)
    gone = _inputs_gone(records_dir, records) if inp.is_dir() else []
    in_use = {r.output for r in records if r.output}  # a copy present shares a gone input's output
    pruned = _pruned(gone, out, quarantine, records_dir, in_use) if cfg.output.prune else []
    gone = [{"input": r.input, "output": r.output} for _, r in gone
            if r.decision is Decision.WRITTEN and r.input not in pruned]
    if gone:
        log.warning("%d output(s) in %s are of inputs no longer under %s (listed in the summary as inputs_gone); "
                    "remove them if they must not be shared (--prune)", len(gone), out, inp)
    info = {"tool": f"radiograph-deid {__version__}", "input": str(inp), "output": str(out),
            "quarantine": str(quarantine), "records": str(records_dir), "resumed": plan.resumed, "workers": workers,
            "inputs_gone": gone, "pruned": pruned, "input_root": str(inp.resolve()),
            "hidden_folders_passed_over": [h.relative_to(base).as_posix() for h in hidden], "config": cfg.to_dict()}
    summary = write_summary(records_dir, records, info)
    log.info("done: %s", json.dumps(summary["counts"]))
    return summary


@dataclass
class _Plan:
    """What a run does with each input, before it starts: records resumed, files to process, refusals."""

    done: dict[Path, ImageRecord] = field(default_factory=dict)  # resumed and refused, then processed
    pending: list[tuple[Path, Path, Path]] = field(default_factory=list)  # (input, its relative path, its record)
    suspects: list[tuple[Path, Path, Path]] = field(default_factory=list)  # in work when a run died: one at a time
    earlier: list[str] = field(default_factory=list)  # outputs made for the files done again (earlier runs, the dead)
    resumed: int = 0


def _namer(files: Sequence[Path], base: Path, same_names: bool) -> Callable[[Path], str]:
    """How the log names an input: by its path; with pseudonymous names, whose paths may name patients, by its
    row in summary.csv (the records, beside OUTPUT, give its path)."""
    row = {src: i for i, src in enumerate(files, 1)}
    if same_names:
        return lambda src: src.relative_to(base).as_posix()
    return lambda src: f"the input of summary.csv row {row[src]}"


def _plan(files: Sequence[Path], base: Path, out: Path, quarantine: Path, records_dir: Path, resume: bool,
          settings: str, clashes: dict[Path, str], who: Callable[[Path], str]) -> _Plan:
    """Each input resumed from its record, decided before any work (``_settled``, its record written), or left
    to do: first, alone, if a dead run left it marked as in work."""
    plan = _Plan()
    for src in files:
        rel = src.relative_to(base)
        rec_path = record_path(records_dir, rel)
        previous = _recorded(rec_path)  # read once: resumed, or what it wrote
        if resume and src not in clashes and _done(previous, src, out, settings):
            plan.done[src] = previous
            plan.resumed += 1
            continue
        plan.earlier += [previous.output] if previous is not None and previous.output else []
        started = started_path(records_dir, rel)
        rec = _settled(src, rel, quarantine, clashes, started)
        if rec is None:
            (plan.suspects if started.exists() else plan.pending).append((src, rel, rec_path))
            continue
        rec.settings = settings
        write_bytes_atomic(rec_path, rec.to_json().encode())
        _recorded_work(plan, started, rec)
        plan.done[src] = rec
        log.warning("%s %s at %s: %s", rec.decision.value, who(src), rec.stage.value, rec.reason)
    return plan


def _recorded_work(plan: _Plan, mark: Path, rec: ImageRecord) -> None:
    """The file's record is written: its marks go. An output its process wrote before dying, which this record
    does not vouch for (the file was quarantined after the death), is removed at the run's end with the outputs
    of earlier runs that no record vouches for (unless another input's record vouches for it)."""
    wrote = announced(mark)
    if wrote and wrote != rec.output:
        plan.earlier.append(wrote)
    clear_mark(mark)


def _settled(src: Path, rel: Path, quarantine: Path, clashes: dict[Path, str], started: Path) -> ImageRecord | None:
    """The record of an input decided before any work, or None: its output name is another's (``clashes``),
    runs died ``CRASHES`` times with it in work, or it is hidden."""
    if src in clashes:
        return refused_untouched(src, rel, quarantine, clashes[src])
    if starts(started) >= CRASHES:
        return refused_untouched(src, rel, quarantine, CRASHED, Stage.READ)
    return _hidden(src, rel) if src.name.startswith(".") else None


def record_path(records_dir: Path, rel: Path) -> Path:
    """An input's record: named after it, under ``records/`` (``beside``: a name too long gets a digest)."""
    return records_dir / "records" / beside(rel, ".json")


def _inputs_gone(records_dir: Path, records: Sequence[ImageRecord]) -> list[tuple[Path, ImageRecord]]:
    """Earlier records whose input is no longer under INPUT (deleted, say after a patient withdrew consent, or
    renamed), each with its file: what they made stays (nothing is deleted unasked, but with ``output.prune``),
    and the summary lists the outputs, where it had listed only the inputs present."""
    present = {r.input for r in records}
    theirs = {record_path(records_dir, Path(r.input)) for r in records}
    folder = records_dir / "records"
    gone = []
    for path in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
        if path in theirs:
            continue  # the present inputs' own records are not read again
        rec = _recorded(path)
        if rec is not None and rec.input not in present:
            gone.append((path, rec))
    return gone


def check_prune_input(records_dir: Path, inp: Path) -> None:
    """Pruning takes every earlier record whose input is not under INPUT for withdrawn: refuse it where OUTPUT was
    made from another INPUT (a run over one subfolder would remove the outputs of all the others)."""
    folder = records_dir / "records"
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    try:
        earlier = json.loads((records_dir / "summary.json").read_text())
        root = Path(earlier.get("input_root") or earlier["input"]).resolve()
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"--prune: {records_dir} has no readable summary.json to tell which INPUT made this "
                         "OUTPUT; run once without --prune, then prune") from None
    if root != inp.resolve():
        raise ValueError(f"--prune: this OUTPUT was made from {root}, not {inp.resolve()}; pruning would remove "
                         "the outputs of every input outside it. Prune with the INPUT that made it")


def _pruned(gone: Sequence[tuple[Path, ImageRecord]], out: Path, quarantine: Path, records_dir: Path,
            in_use: set[str]) -> list[str]:
    """What earlier runs made of inputs now gone, removed: the output (unless an input present shares it), the
    untouched copy in quarantine with its reason (an original, PHI and all), then the record. Returns the inputs
    pruned."""
    pruned = []
    for path, rec in gone:
        rel = Path(rec.input)
        made = [(out, out / rec.output)] if rec.output and rec.output not in in_use else []
        made += [(quarantine, quarantine / rel), (quarantine, quarantine / beside(rel, ".reason.json"))]
        made = [(root, file) for root, file in made if file.resolve().is_relative_to(root.resolve())]  # never beyond
        mark = started_path(records_dir, rel)
        for file in [file for _, file in made] + [path, mark, output_note(mark)]:
            if file.is_file() or file.is_symlink():
                file.unlink()
        for root, file in made + [(records_dir / "records", path)]:
            _remove_empty_parents(file.parent, root)
        pruned.append(rec.input)
    if pruned:
        log.warning("pruned %d input(s) no longer under INPUT: their outputs, quarantine copies and records are "
                    "removed", len(pruned))
    return pruned


def _remove_empty_parents(folder: Path, root: Path) -> None:
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _stale_removed(out: Path, earlier: Sequence[str], records: Sequence[ImageRecord]) -> None:
    """Outputs written for files done again that no record of this run vouches for are removed: a rerun with
    stricter settings that quarantines a file leaves no earlier output of it in OUTPUT, nor does a file whose
    process died after writing its output and was then quarantined."""
    vouched = {r.output for r in records if r.output and r.decision is not Decision.QUARANTINED}  # copies' too
    for stale in sorted(set(earlier) - vouched):
        path = out / stale
        if path.is_file() and path.resolve().is_relative_to(out.resolve()):
            path.unlink()
            log.warning("removed %s: no record of this run vouches for it (written by an earlier run, or by a "
                        "process that died before recording it)", stale)


def _one_output_each(done: dict[Path, ImageRecord], order: Sequence[Path], base: Path, quarantine: Path,
                     records_dir: Path, who: Callable[[Path], str]) -> None:
    """Pseudonymous DICOM names come from the image's own UIDs, so inputs holding one instance name one output:
    the one written last stands there. A byte-identical copy is recorded as skipped, a copy of it; a different
    file under the same SOP Instance UID is quarantined with the reason, so nothing is lost unsaid."""
    last: dict[str, Path] = {}
    for src in order:
        if done[src].decision is Decision.WRITTEN:
            last[done[src].output] = src
    for src in order:
        rec = done[src]
        owner = last.get(rec.output) if rec.decision is Decision.WRITTEN else None
        if owner is None or owner == src:
            continue
        rel, shown = src.relative_to(base), owner.relative_to(base).as_posix()
        if filecmp.cmp(src, owner, shallow=False):  # its record keeps the output it shares
            rec.decision = Decision.SKIPPED
            rec.reason = f"a copy of {shown} (the same bytes), written once as {rec.output}"
        else:
            rec.decision, rec.stage = Decision.QUARANTINED, Stage.HEADER
            rec.reason = (f"holds the SOP Instance UID of {shown}, whose output {rec.output} is written; two images "
                          "cannot share one name: check the source")
            to_quarantine(src, rel, quarantine, rec)
        write_bytes_atomic(record_path(records_dir, rel), rec.to_json().encode())
        log.warning("%s %s: it holds the SOP Instance UID of %s (%s)", rec.decision.value, who(src), who(owner),
                    "the same bytes: written once" if rec.decision is Decision.SKIPPED else "other bytes")


def _hidden(src: Path, rel: Path) -> ImageRecord:
    """The record of a hidden file (.DS_Store, an AppleDouble "._x.dcm"), passed over as a hidden file is."""
    st = src.lstat()
    return ImageRecord(input=rel.as_posix(), input_size=st.st_size, input_mtime_ns=st.st_mtime_ns,
                       decision=Decision.SKIPPED, reason="a hidden file (its name begins with a dot); rename it to "
                       "have it de-identified")
