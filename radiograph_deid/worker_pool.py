"""Files done in worker processes that may die or stall, without the run dying or stalling with them.

Why: a decoder's crash on one corrupt file (a segmentation fault, the out-of-memory killer) kills the process that
read it with no exception to catch, and a decoder caught in a loop in C never returns and never lets a thread of
its process run. So each file in work leaves a mark (``started_path``: how many times it was begun, and by which
process), removed once its record is written. When a worker dies, the files it may have killed are those whose
marks remain: each is done again alone, in a process of its own, and one that kills that process too is
quarantined (two deaths: a file in work beside the culprit dies once, innocently). The run watches the marks of
the files in work and ends a worker whose file is still in work after ``input.max_seconds_per_file``: that file is
quarantined at once. A run that died itself (killed, or a crash where a caller's redactor works in the run's own
process) leaves the marks for the next run, which does those files first, alone. A server redacts one file at a
time through ``IsolatedRedactor``, in a process of its own held on the same terms.
"""
from __future__ import annotations

import functools
import itertools
import logging
import multiprocessing
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path
from typing import Callable, Generator, Iterator, Sequence, TypeVar

from .config import Config
from .fileio import beside, remove_partial_writes
from .enums import Stage
from .pipeline import Redactor, refused_untouched
from .records import ImageRecord

log = logging.getLogger("radiograph_deid")

Entry = tuple[Path, Path, Path]  # (an input, its path relative to INPUT, its record)
Finished = tuple[Path, Path, Path, ImageRecord]

CRASHES = 2  # deaths of a process while a file was in work before it is quarantined (its neighbours in work are not)
CRASHED = (f"a process died {CRASHES} times while this file was in work (a crash in a decoder, memory exhausted, or "
           "the run killed): it is quarantined so that runs finish. Remove its record under records/ to try it again")
WORKER_DIED = ("a worker process died while it had no file in work (out of memory while loading the models?); "
               "nothing unfinished was written to OUTPUT. Run again to resume, with fewer --workers if memory is short")
T = TypeVar("T")
ONE_FILE = (Path(), Path(), Path())  # the entry of a server's one file in work
POLL_S = 1.0  # how often the run looks at the marks of the files in work


def ended_for_time(seconds: float) -> str:
    return (f"still in work after {seconds:g} s (input.max_seconds_per_file): a decoder caught in a loop, or an "
            "image far beyond what this machine does in that time; its process was ended")


def overdue_reason(seconds: float) -> str:
    return (f"{ended_for_time(seconds)} and the file quarantined so that runs finish. Raise the limit and remove its "
            "record under records/ to try it again")


def started_path(records_dir: Path, rel: Path) -> Path:
    """Left while an input is in work, and removed once its record is written or its work stops by an error:
    one still there after its process ended is a file in work when that process died."""
    return records_dir / "records" / beside(rel, ".started")


def starts(path: Path) -> int:
    """How many times the file of the mark at ``path`` was begun (0: never, or the mark unreadable)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _mark_started(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # no fsync: a mark cut short still marks the file; the process id lets the run end a stalled worker
    path.write_text(f"{starts(path) + 1} {os.getpid()}")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _overdue(path: Path) -> bool:
    return (_read(path) or "").endswith(" overdue")


def output_note(mark: Path) -> Path:
    """Beside a file's mark: the output it was writing (relative to OUTPUT). A process that dies after writing
    it, before its record, leaves an output no record vouches for: the run removes it (``announced``)."""
    return mark.with_suffix(".writing")


def announced(mark: Path) -> str:
    """The output the file of ``mark`` began to write, or "" (none, or the note unreadable)."""
    try:
        return os.fsdecode(output_note(mark).read_bytes())
    except OSError:
        return ""


def clear_mark(mark: Path) -> None:
    """The file's work is recorded: its mark of work in progress and its output note go."""
    mark.unlink(missing_ok=True)
    output_note(mark).unlink(missing_ok=True)


def _note_output(mark: Path, dst: Path) -> None:
    output_note(mark).write_bytes(os.fsencode(dst.as_posix()))  # a name's odd bytes kept; no fsync, as the mark


def worked(redactor: Redactor, src: Path, rel: Path, out: Path, quarantine: Path, started: Path) -> ImageRecord:
    """``redactor.process`` with the mark of work in progress and a note of the output it writes; an exception
    (disk full, interrupted) is the run's to report, not the file's fault: the mark goes. Only a death of the
    process leaves it."""
    _mark_started(started)
    try:
        return redactor.process(src, rel, out, quarantine, before_write=functools.partial(_note_output, started))
    except BaseException:
        started.unlink(missing_ok=True)
        raise


def worker_count(requested: int, files: int) -> int:
    """``requested`` processes; for 0, one per CPU core this process may use (at most 8), but none beyond one
    for every four files: a worker first loads its own models (seconds), which a short run does not repay."""
    if requested < 0:
        raise ValueError(f"workers must be 0 (one per CPU core) or a number of processes, not {requested}")
    if requested > 0:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, 8, files // 4))


def processed(pending: Sequence[Entry], out: Path, quarantine: Path, records_dir: Path, cfg: Config,
              redactor: Redactor | None, workers: int, alone: bool = False) -> Iterator[Finished]:
    """Each pending file's record as it is finished: in this process with ``redactor`` (the library's callers,
    whose own process a crash kills, leaving the mark), else in ``workers`` processes (``alone``: one, for files
    a death has marked), whose deaths and stalls the run meets (the module's docstring)."""
    if not pending:
        return
    if redactor is not None:
        for src, rel, rec_path in pending:
            yield src, rel, rec_path, worked(redactor, src, rel, out, quarantine, started_path(records_dir, rel))
        return
    left = list(pending)
    while left:
        unfinished = yield from _pooled(left, out, quarantine, records_dir, cfg, 1 if alone else workers)
        marked = [e for e in unfinished if started_path(records_dir, e[1]).exists()]
        if unfinished and not marked:
            raise RuntimeError(WORKER_DIED)
        refused = {e: reason for e in marked if (reason := _refusal(started_path(records_dir, e[1]), cfg))}
        again = [e for e in marked if e not in refused]
        if again:
            log.warning("a worker process died; %d file(s) it may have had in work are done again, each alone",
                        len(again))
        for entry in marked:
            if entry in refused:
                yield (*entry, refused_untouched(entry[0], entry[1], quarantine, refused[entry], Stage.READ))
            else:
                yield from processed([entry], out, quarantine, records_dir, cfg, None, 1, alone=True)
        left = [e for e in unfinished if e not in marked]


def _refusal(mark: Path, cfg: Config) -> str:
    """Why the file of ``mark``, in work when its process died, is quarantined (it was overdue, or it has died
    ``CRASHES`` times), or "" where it is done again."""
    if _overdue(mark):
        return overdue_reason(cfg.input.max_seconds_per_file)
    return CRASHED if starts(mark) >= CRASHES else ""


def _pooled(entries: Sequence[Entry], out: Path, quarantine: Path, records_dir: Path, cfg: Config, workers: int
            ) -> Generator[Finished, None, list[Entry]]:
    """Each entry's record as its worker finishes it; returns the entries left unfinished when a worker died (a
    crash, or ended by ``_end_overdue``), after removing what the dead left half written. Two files per worker
    are handed over at a time: a run of 100 000 files holds no 100 000 futures, nor waits on them all."""
    share = replace(cfg, detector=replace(cfg.detector, threads=max(1, cfg.detector.threads // workers)))
    limit = cfg.input.max_seconds_per_file
    todo = iter(entries)
    in_flight: dict[Future, tuple[Entry, Path, str | None]] = {}  # (entry, its mark, the mark before it was begun)
    clock: dict[tuple[Entry, str], float] = {}
    lost: list[Entry] = []
    with _new_pool(share, workers) as pool:

        def hand_over() -> None:
            for entry in itertools.islice(todo, 2 * workers - len(in_flight)):
                mark = started_path(records_dir, entry[1])  # a mark a dead run left is not this run's start
                in_flight[pool.submit(_worker_process, entry[0], entry[1], out, quarantine, mark)] = (entry, mark,
                                                                                                      _read(mark))

        try:
            hand_over()
            while in_flight and not lost:
                done, _ = wait(in_flight, timeout=POLL_S if limit else None, return_when=FIRST_COMPLETED)
                for fut in done:
                    entry = in_flight.pop(fut)[0]
                    if isinstance(fut.exception(), BrokenProcessPool):
                        lost.append(entry)
                    else:
                        yield (*entry, fut.result())  # an error of the run's (disk full) is raised here
                if not lost:
                    hand_over()
                    if limit:
                        _end_overdue([item for f, item in in_flight.items() if f.running()], clock, limit)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # the files not yet begun are not begun
            _end_stalled(in_flight)
            raise
    for fut, (entry, _, _) in in_flight.items():  # the pool broke: each is done now, most with the break
        if fut.exception() is None:
            yield (*entry, fut.result())  # finished in the moment the pool broke
        else:
            lost.append(entry)
    if lost:
        for folder in (out, quarantine):
            remove_partial_writes(folder)  # no worker of this pool writes any more
    return lost + list(todo)


def _end_overdue(in_work: Sequence[tuple[Entry, Path, str | None]], clock: dict[tuple[Entry, str], float],
                 limit: float) -> None:
    """Mark overdue, and end the worker of, each file in work longer than ``limit`` seconds, timed from when its
    mark first showed this run's start (``in_work``: entry, mark, the mark before). The worker's own thread
    could not do it: a decoder looping in C holds the interpreter, so no other thread of its process runs."""
    now = time.monotonic()
    for entry, mark, before in in_work:
        text = _read(mark)
        if text is None or text == before or text.endswith(" overdue"):
            continue
        if now - clock.setdefault((entry, text), now) > limit:
            mark.write_text(f"{text} overdue")
            _end_worker(text)


def _end_stalled(in_flight: dict[Future, tuple[Entry, Path, str | None]], grace: float = 5.0) -> None:
    """When the run stops (Ctrl-C, an error of the run's): give the workers ``grace`` seconds to finish or stop
    (Ctrl-C reaches them too), then end each one whose file is still in work. A decoder looping in C never sees
    Ctrl-C: the run would wait for it for ever, and left alone it would spin on, orphaned. Its mark stays, so the
    next run does the file first, alone."""
    wait(list(in_flight), timeout=grace)
    for fut, (_, mark, before) in in_flight.items():
        text = _read(mark)
        if not fut.done() and text is not None and text != before:
            _end_worker(text)


def _end_worker(mark_text: str) -> None:
    """End the worker process a mark names (``_mark_started``: count, process id)."""
    try:
        os.kill(int(mark_text.split()[1]), getattr(signal, "SIGKILL", signal.SIGTERM))
    except (ProcessLookupError, ValueError, IndexError):
        pass  # the worker ended by itself meanwhile, or the mark was cut short: the pool tells


DIED_SERVING = "the process {doing} this file died with it in work (a crash in a decoder, or memory exhausted)"
NEXT_SERVED = "the next file is done in a new process"


class ProcessEnded(Exception):
    """A file killed the isolated process that had it in work, or outlived ``input.max_seconds_per_file`` there."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IsolatedRedactor:
    """A ``Redactor`` for a server, in a process of its own: a file that crashes its decoder, or is still in work
    after ``input.max_seconds_per_file``, is answered with a refusal and the server goes on (in the server's own
    process a crash ended the server, and a loop stalled it). Redaction (``process``) and the review of a file
    (``call``: its markers, its uncertainty) are done there alike. The models are loaded in that process, at its
    first file and again after each death. One file at a time: the caller serializes."""

    def __init__(self, cfg: Config, state: Path) -> None:
        self.cfg = cfg
        self.mark = state / "in-work.started"  # the file in work, by which process (``_end_overdue`` reads it)
        self._pool: ProcessPoolExecutor | None = None

    def process(self, src: Path, rel: Path, out: Path, quarantine: Path) -> ImageRecord:
        """``Redactor.process``; a file that ended the process is quarantined, with the reason."""
        try:
            return self._done("redacting", _worker_process, src, rel, out, quarantine, self.mark)
        except ProcessEnded as exc:
            remove_partial_writes(out)
            return refused_untouched(src, rel, quarantine, f"{exc.reason}: it is quarantined, and {NEXT_SERVED}",
                                     Stage.READ)

    def call(self, fn: Callable[[Redactor, Path], T], path: Path) -> T:
        """``fn(redactor, path)`` in the process, for work on a file that writes nothing; ``fn`` is a module-level
        function (it is sent by name). Raises ``ProcessEnded`` where the file ended the process."""
        return self._done("reading", _worker_call, fn, path, self.mark)

    def _done(self, doing: str, target: Callable[..., T], *args: object) -> T:
        """``target(*args)`` in the process; ``doing`` names the work in the reason when the file ends it."""
        clear_mark(self.mark)
        if self._pool is None:
            self._pool = _new_pool(self.cfg, 1)
        fut = self._pool.submit(target, *args)
        limit, clock = self.cfg.input.max_seconds_per_file, {}  # type: ignore[var-annotated]
        while not wait([fut], timeout=POLL_S if limit else None).done:
            _end_overdue([(ONE_FILE, self.mark, None)], clock, limit)
        try:
            return fut.result()
        except BrokenProcessPool:
            self.close()
            raise ProcessEnded(ended_for_time(limit) if _overdue(self.mark) else DIED_SERVING.format(doing=doing))
        finally:
            clear_mark(self.mark)  # and its output note: the server answers from the record

    def close(self) -> None:
        """End the process (a new one starts at the next file)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _new_pool(cfg: Config, workers: int) -> ProcessPoolExecutor:
    """``workers`` fresh processes (spawned: no copy of this process's threads or models), each loading a
    ``Redactor`` for ``cfg`` once."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                               initargs=(cfg,))


_WORKER: Redactor | None = None


def _worker_init(cfg: Config) -> None:
    global _WORKER
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    _WORKER = Redactor(cfg)


def _worker_process(src: Path, rel: Path, out: Path, quarantine: Path, started: Path) -> ImageRecord:
    assert _WORKER is not None, "worker not initialised"
    return worked(_WORKER, src, rel, out, quarantine, started)


def _worker_call(fn: Callable[[Redactor, Path], T], path: Path, started: Path) -> T:
    assert _WORKER is not None, "worker not initialised"
    _mark_started(started)  # removed by IsolatedRedactor once the call ends, whichever way
    return fn(_WORKER, path)
