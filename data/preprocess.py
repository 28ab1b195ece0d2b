"""Build the phrase dataset from a folder of MIDI files (e.g. an extracted LMD-full).

Its command line is ``python -m utils.preprocess`` (:mod:`utils.preprocess`).

How the build works:

1. every ``.mid``/``.midi`` file under DIR (any case, recursive) is converted by
   :func:`data.song_roll.load_song`, cut into 4-bar windows and filtered
   (:mod:`data.roll`), in worker processes (all cores by default, :mod:`data.workers`).
   Every step of a file runs under one guard: a file that fails is recorded with its
   reason and never stops the build; a file whose worker process dies (killed out of
   memory, or a crash) is recorded as ``crashed``;
2. the main process gathers results into chunks and writes each chunk atomically as
   ``OUT/shards/part-NNNNNN.npy`` (bit-packed phrases) plus ``part-NNNNNN.json`` (one record
   per file: kept or skipped with its reason). The JSON is renamed into place last and is
   what marks the chunk's files as done, so an interrupted build re-run into the same OUT
   processes only the files not yet recorded -- no duplicates, no loss;
3. once every file is recorded, the kept songs (sorted relative paths) are shuffled by a
   seeded permutation and cut into train/val/test by the fractions -- or, with
   ``split_by="folder"``, the first-level folders of DIR that hold kept songs are, and
   every song goes where its folder went -- or, with ``split_by="named"``, every song goes
   to the split its first-level folder names (``train``, ``val``/``valid``/``validation``,
   ``test``: a corpus's published splits). ``OUT/manifest.json`` is removed first, each
   split's phrases are written to ``OUT/<split>.phrases.npy`` in song order
   (:mod:`data.store`), and the manifest is written last, atomically: it is the commit
   marker. A build killed at any point leaves either the previous consistent folder or
   one without a manifest, which every reader refuses until a re-run repairs it.

The split depends only on the set of kept songs, the seed, the fractions and ``split_by``,
so a resumed or repeated build gives the same files. ``OUT/shards`` may be deleted after a finished
build to save space; a later re-run then converts every file again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from data import contract
from data.build_plan import (
    BuildError,
    BuildOptions,
    BuildSettings,
    build_files,
    shuffle_songs,
    split_folders,
    split_named,
)
from data.errors import one_line
from data.fileio import (
    atomic_write_json,
    remove_temporaries,
    writable_dir_problem,
)
from data.instruments import PAPER, InstrumentSet
from data.melody import melody_program_for
from data.midi import MidiError, SkipFile
from data.midi_files import empty_split_lines
from data.roll import keep_phrases, window_view
from data.song_roll import load_song
from data.store import (
    MANIFEST_NAME,
    PACKED_BYTES,
    SPLITS,
    atomic_save_npy,
    pack,
    packed_bytes,
    write_split,
)
from data.workers import reason_summary, run_tasks

DEFAULT_OPTIONS = BuildOptions()  # the paper's build
FLUSH_FILES = 256  # files per shard at most
FLUSH_PHRASES = 20_000  # phrases per shard at most (about 69 MB packed)
SHARD_GLOB = "part-*.json"
@dataclass
class FileResult:
    """What one worker returns for one MIDI file.

    Attributes:
        record: JSON-able summary (``path``, ``status`` = "kept" or a skip reason, ...).
        packed: uint8 ``[n, 3456]`` kept phrases (``n = 0`` for skipped files).
    """

    record: dict[str, Any]
    packed: np.ndarray


def _skipped(rel_path: str, reason: str, detail: str) -> FileResult:
    """The result of a file that gives no phrase, counted under ``reason``."""
    return FileResult({"path": rel_path, "status": reason, "detail": detail},
                      np.zeros((0, 0), dtype=np.uint8))


def process_file(path: Path, rel_path: str, melody_program: int | None,
                 options: BuildOptions = DEFAULT_OPTIONS) -> FileResult:
    """Convert one file into its kept phrases; never raises for bad input.

    Every step -- reading, unification, windowing, filtering, packing -- runs under one
    guard, so whatever goes wrong with one file becomes its skip reason: the reasons of
    :class:`data.midi.MidiError` and :class:`data.midi.SkipFile` (``not_midi``,
    ``truncated``, ``unreadable``, ``empty``, ``not_4_4``, ``too_few_instruments``,
    ``too_long``), then ``empty`` (no note of the kept tracks in the pitch range),
    ``too_short`` (shorter than one 4-bar window), ``no_phrase`` (no window passes the
    filters) and ``error`` (anything unexpected, with the exception named).

    Args:
        path: the MIDI file.
        rel_path: its path relative to the MIDI folder (the song's identity).
        melody_program: melody program from the melody JSON, or None (detector).
        options: the build's options (:class:`data.build_plan.BuildOptions`; its
            ``min_bar_density``, ``max_song_bars``, ``melody_in_mixture``,
            ``default_meter_4_4``, ``class_tracks`` and ``instruments`` are read).

    Returns:
        A :class:`FileResult`.
    """
    try:
        song = load_song(path, melody_program=melody_program, max_bars=options.max_song_bars,
                         melody_in_mixture=options.melody_in_mixture,
                         default_meter_4_4=options.default_meter_4_4,
                         class_tracks=options.class_tracks, instruments=options.instruments)
        if song.roll.shape[0] == 0:
            return _skipped(rel_path, "empty", f"{path}: no note of the kept tracks inside "
                            f"the pitch range {contract.PITCH_LOW}..{contract.PITCH_HIGH} "
                            f"or on the kept drum keys")
        windows, _ = window_view(song.roll)
        if len(windows) == 0:
            bars = -(-song.roll.shape[0] // contract.STEPS_PER_BAR)
            return _skipped(rel_path, "too_short", f"{path}: {bars} bar(s), shorter than one "
                            f"{contract.BARS_PER_PHRASE}-bar window")
        keep = keep_phrases(windows, song.has_melody, options.min_bar_density)
        kept = windows[keep]  # (n, 64, 72, 6) copy
        kept_onsets = window_view(song.onsets)[0][keep]
        if not len(kept):
            return _skipped(rel_path, "no_phrase",
                            f"{path}: no 4-bar window passes the bar-density"
                            f"{' and melody' if song.has_melody else ''} filter")
        record = {"path": rel_path, "status": "kept",
                  "has_melody": song.has_melody, "windows": int(len(windows)),
                  "phrases": int(len(kept)),
                  "cells": kept.sum(axis=(0, 1, 2)).astype(int).tolist(),
                  "phrases_with": kept.any(axis=(1, 2)).sum(axis=0).astype(int).tolist()}
        if song.n_unclosed:
            record["unclosed"] = song.n_unclosed  # notes never closed, dropped
        return FileResult(record, pack(kept, kept_onsets))
    except (MidiError, SkipFile) as exc:
        return _skipped(rel_path, exc.reason, str(exc))
    except Exception as exc:  # noqa: BLE001 -- one bad file must never stop a build
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return _skipped(rel_path, "error", f"{path}: {type(exc).__name__}: {text}")


# (path, relative path, melody program, the build's options)
Task = tuple[str, str, int | None, BuildOptions]


def _process_task(task: Task) -> FileResult:
    path, rel_path, program, options = task
    return process_file(Path(path), rel_path, program, options)


def _crashed(task: Task) -> FileResult:
    """The record of a file whose worker process died converting it (twice)."""
    return _skipped(task[1], "crashed",
                    f"{task[0]}: the worker process converting it died (killed by the "
                    f"system, e.g. out of memory, or crashed)")


# ----------------------------------------------------------------------------- shards
class ShardWriter:
    """Collects file results and commits them as atomic chunk files in ``OUT/shards``."""

    def __init__(self, shard_dir: Path, next_index: int, width: int = PACKED_BYTES) -> None:
        self.shard_dir = shard_dir
        self.width = width  # bytes of a packed phrase
        self.index = next_index
        self.records: list[dict[str, Any]] = []
        self.parts: list[np.ndarray] = []
        self.n_phrases = 0

    def add(self, result: FileResult, source: list[int] | None = None) -> None:
        """Buffer one file's result; commit a chunk when the buffer is full.

        ``source`` is the file's ``[size, mtime_ns]`` when it was converted (a resumed
        build converts a file again when it differs, :func:`source_stat`).
        """
        record = dict(result.record)
        record["offset"] = self.n_phrases
        if source is not None:
            record["source"] = source
        self.records.append(record)
        if len(result.packed):
            self.width = result.packed.shape[1]
            self.parts.append(result.packed)
            self.n_phrases += len(result.packed)
        if len(self.records) >= FLUSH_FILES or self.n_phrases >= FLUSH_PHRASES:
            self.flush()

    def flush(self) -> None:
        """Commit the buffered files: phrases first, then the record file that marks them done."""
        if not self.records:
            return
        stem = self.shard_dir / f"part-{self.index:06d}"
        packed = (np.concatenate(self.parts) if self.parts
                  else np.zeros((0, self.width), dtype=np.uint8))
        atomic_save_npy(stem.with_suffix(".npy"), packed)
        atomic_write_json(stem.with_suffix(".json"), {"records": self.records})
        self.index += 1
        self.records, self.parts, self.n_phrases = [], [], 0


def _load_shards(shard_dir: Path) -> tuple[dict[str, tuple[dict[str, Any], Path]], int]:
    """Committed records ``{rel path: (record, shard .npy)}`` and the next free shard index.

    A file converted again (it changed since an earlier run) has a record in a later
    shard, which wins. Leftovers of an interrupted run (temporary files, a phrase file
    whose record file was never written) are removed.
    """
    remove_temporaries(shard_dir)
    done: dict[str, tuple[dict[str, Any], Path]] = {}
    next_index = 0
    for meta in sorted(shard_dir.glob(SHARD_GLOB)):
        next_index = max(next_index, int(meta.stem.split("-")[1]) + 1)
        npy = meta.with_suffix(".npy")
        for record in json.loads(meta.read_text())["records"]:
            done[record["path"]] = (record, npy)  # shards in order: the latest wins
    for npy in shard_dir.glob("part-*.npy"):
        if not npy.with_suffix(".json").exists():
            npy.unlink()
    return done, next_index


def source_stat(path: Path) -> list[int]:
    """``[size, mtime_ns]`` of a MIDI file: what tells a resumed build (and song evaluation)
    that the file changed since it was converted."""
    stat = path.stat()
    return [int(stat.st_size), int(stat.st_mtime_ns)]


LOCK_NAME = ".build.lock"  # held (flock) by the build writing a folder; a dead one lets go


@contextlib.contextmanager
def build_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``OUT/.build.lock`` for the build's whole run, so that a second build into the
    same folder is refused at once instead of racing it for shard numbers.

    The lock is an advisory ``flock`` on the file, which the system releases when the
    process ends however it ends, so a killed build never leaves the folder locked.

    Raises:
        BuildError: another running build holds the lock.
    """
    fd = os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BuildError(f"{out_dir}: another build is writing this folder (it holds "
                         f"{LOCK_NAME}); wait for it to finish or use another --out-dir") \
            from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# ----------------------------------------------------------------------------- build
def _prepare_out_dir(out_dir: Path) -> Path:
    """Check that ``out_dir`` can be written, create it and its ``shards`` folder.

    Returns:
        ``out_dir/shards``.
    """
    problem = writable_dir_problem(out_dir)
    if problem:
        raise BuildError(f"out_dir {str(out_dir)!r} is not a writable folder ({problem})")
    shard_dir = out_dir / "shards"
    if shard_dir.exists() and not shard_dir.is_dir():
        raise BuildError(f"out_dir {str(out_dir)!r}: 'shards' is a file, not a folder")
    shard_dir.mkdir(parents=True, exist_ok=True)
    return shard_dir


def build(midi_dir: str | Path, out_dir: str | Path, *, workers: int | None = None,
          progress: bool = True, **options: Any) -> dict[str, Any]:
    """Build (or finish building) the phrase dataset of a MIDI folder.

    Args:
        midi_dir: folder searched recursively for ``.mid``/``.midi`` files.
        out_dir: dataset folder (created); re-running into it resumes.
        workers: processes (None = all cores; 1 = no pool).
        progress: show a progress bar with files/s on stderr.
        options: the fields of :class:`data.build_plan.BuildOptions` (``melody_json``,
            ``seed``, ``fractions``, ``min_bar_density``, ``split_by``, ``max_song_bars``,
            ``melody_in_mixture``, ``default_meter_4_4``, ``class_tracks``), by name.

    Returns:
        The manifest (also written to ``OUT/manifest.json``).

    Raises:
        BuildError: missing MIDI folder, an OUT that is not a writable folder, bad
            fractions, workers, seed or limits, a melody JSON that cannot be read, an
            unknown ``split_by``, an OUT built with other settings or being written by
            another build -- all before any file is converted.
        KeyboardInterrupt: Ctrl-C; the workers are stopped and every file finished so
            far is kept in ``OUT/shards`` for the next run.
    """
    started = time.perf_counter()
    midi_dir, out_dir = Path(midi_dir), Path(out_dir)
    settings = BuildSettings.of(midi_dir, out_dir, workers, BuildOptions(**options)).checked()
    shard_dir = _prepare_out_dir(out_dir)
    with build_lock(out_dir):  # one build at a time into one folder
        remove_temporaries(out_dir)  # split files or a manifest left half-written by a kill
        _check_resumable(shard_dir, settings)
        files = build_files(midi_dir, settings.split_by)  # named splits checked before any work
        sources = {rel: source_stat(midi_dir / rel) for rel in files}
        todo = _files_to_convert(shard_dir, files, sources, settings)
        _convert(todo, shard_dir, sources, settings.workers, len(files), progress,
                 packed_bytes(settings.instruments.n_instruments))
        done, _ = _load_shards(shard_dir)
        records = {rel: done[rel] for rel in files}  # files removed from the folder are ignored
        manifest = _finish(out_dir, records, settings.seed, settings.fractions,
                           settings.split_by, settings.instruments)
        manifest["settings"] = settings.record()
        manifest["files_this_run"] = len(todo)
        manifest["seconds_this_run"] = round(time.perf_counter() - started, 3)
        atomic_write_json(out_dir / MANIFEST_NAME, manifest)  # the commit marker, written last
        statuses = {rel: record["status"] for rel, (record, _) in records.items()}
        for line in empty_split_lines(manifest["split_songs"], statuses, settings.split_by):
            print(f"warning: {line}", file=sys.stderr)
        unclosed = {rel: rec["unclosed"] for rel, (rec, _) in records.items() if "unclosed" in rec}
        if unclosed:
            rel, n = next(iter(unclosed.items()))
            print(f"warning: {sum(unclosed.values()):,} note(s) never closed (a note-on without "
                  f"its note-off) dropped in {len(unclosed):,} kept file(s), e.g. "
                  f"{one_line(midi_dir / rel)} ({n:,})", file=sys.stderr)
        return manifest


def _check_resumable(shard_dir: Path, settings: BuildSettings) -> None:
    """Record the build's fingerprint, or refuse a folder built with other settings."""
    fingerprint = settings.fingerprint()
    settings_path = shard_dir / "settings.json"
    if not settings_path.exists():
        atomic_write_json(settings_path, fingerprint)
        return
    # keys a folder built before they existed lacks: their values then
    stored = {"split_by": "song", "default_meter_4_4": False, "class_tracks": "largest",
              "instrument_set": PAPER.record(), **json.loads(settings_path.read_text())}
    if stored != fingerprint:
        old = "" if "packed_bytes" in stored else " (made before onsets were stored: " \
            "re-run the build into a new folder)"
        raise BuildError(f"{settings.out_dir}: built with another data contract, melody JSON, "
                         f"min_bar_density, split_by, max_song_bars, melody_in_mixture, "
                         f"default_meter_4_4, class_tracks or instrument_set{old}; use a new "
                         "--out-dir or delete this one")


def _files_to_convert(shard_dir: Path, files: list[str], sources: dict[str, list[int]],
                      settings: BuildSettings) -> list[Task]:
    """The files with no record yet, or changed since (size or mtime), as worker tasks."""
    done, _ = _load_shards(shard_dir)
    table = settings.melody_table
    options = settings.file_options()
    return [(str(settings.midi_dir / rel), rel,
             melody_program_for(table, rel) if table else None, options)
            for rel in files
            if rel not in done or done[rel][0].get("source") != sources[rel]]


def _convert(todo: list[Task], shard_dir: Path, sources: dict[str, list[int]], workers: int,
             total: int, progress: bool, width: int = PACKED_BYTES) -> None:
    """Convert the files of ``todo`` in worker processes into committed shards.

    Whatever finished is committed even on Ctrl-C or an error, for the next run.
    ``width``: bytes of a packed phrase of the build's instruments.
    """
    _, next_index = _load_shards(shard_dir)
    writer = ShardWriter(shard_dir, next_index, width)
    bar = tqdm(total=total, initial=total - len(todo), unit="file", desc="preprocess",
               disable=not progress, dynamic_ncols=True)
    new_phrases = 0
    results = run_tasks(_process_task, todo, min(workers, max(len(todo), 1)),
                        preload=["data.midi", "data.roll", "data.store"])
    try:
        for task, result in results:
            if result is None:
                result = _crashed(task)
                tqdm.write(f"warning: {result.record['detail']}; counted as 'crashed'",
                           file=sys.stderr)
            writer.add(result, sources[task[1]])
            new_phrases += len(result.packed)
            bar.update(1)
            bar.set_postfix(phrases=new_phrases, refresh=False)
    finally:
        results.close()  # stops the workers at once on Ctrl-C or an error
        writer.flush()  # whatever finished is kept for the next run
        bar.close()


def _finish(out_dir: Path, records: dict[str, tuple[dict[str, Any], Path]], seed: int,
            fractions: tuple[float, float, float], split_by: str,
            instruments: InstrumentSet) -> dict[str, Any]:
    """Split the kept songs, write the split files and return the manifest's counts.

    The old manifest is removed before the first split file is replaced: until the new
    one is written, readers refuse the folder instead of pairing old counts with new
    files.
    """
    kept = sorted(rel for rel, (rec, _) in records.items() if rec["status"] == "kept")
    folders = None
    if split_by == "folder":
        splits, folders = split_folders(kept, seed, fractions)
    elif split_by == "named":
        splits = split_named(kept)
    else:
        splits = shuffle_songs(kept, seed, fractions)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    phrases: dict[str, int] = {}
    for split in SPLITS:
        songs = splits[split]
        total = sum(records[rel][0]["phrases"] for rel in songs)
        phrases[split] = total
        write_split(out_dir, split, total, _split_parts(songs, records),
                    packed_bytes(instruments.n_instruments))
    skipped, examples = reason_summary(
        ((records[rel][0]["status"], records[rel][0].get("detail", rel))
         for rel in sorted(records)), ok="kept")
    cells = np.zeros(instruments.n_instruments, dtype=np.int64)
    with_inst = np.zeros(instruments.n_instruments, dtype=np.int64)
    for rel in kept:
        cells += records[rel][0]["cells"]
        with_inst += records[rel][0]["phrases_with"]
    manifest = {
        "files_seen": len(records),
        "files_kept": len(kept),
        "skipped": skipped,
        "phrases": phrases,
        "songs": {split: len(splits[split]) for split in SPLITS},
        "melody_songs": sum(bool(records[rel][0]["has_melody"]) for rel in kept),
        "instrument_phrases": dict(zip(instruments.instruments, with_inst.tolist())),
        "instrument_cells": dict(zip(instruments.instruments, cells.tolist())),
        "skipped_examples": examples,
        "split_songs": splits,
        "song_sources": {rel: records[rel][0].get("source") for rel in kept},
        "format": f"<split>.phrases.npy: uint8 [N, {packed_bytes(instruments.n_instruments)}] "
                  f"= np.packbits of bool [N, 2, 64, 72, {instruments.n_instruments}] "
                  "(cells, onsets); "
                  "<split>.song_ids.npy: int32 [N] index into split_songs[<split>]",
    }
    if folders is not None:
        manifest["split_folders"] = folders
    return manifest


def _split_parts(songs: list[str], records: dict[str, tuple[dict[str, Any], Path]]):
    """Yield ``(packed, song ids)`` of each song of a split, in song order."""
    cache: dict[Path, np.ndarray] = {}
    for song_id, rel in enumerate(songs):
        record, npy = records[rel]
        if npy not in cache:
            cache.clear()  # songs of one shard tend to be read together; keep one open
            cache[npy] = np.load(npy, mmap_mode="r")
        rows = cache[npy][record["offset"]: record["offset"] + record["phrases"]]
        yield np.asarray(rows), np.full(len(rows), song_id, dtype=np.int32)
