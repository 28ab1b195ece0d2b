"""What a build is asked to do: its options, checked, and how songs go to the splits.

:func:`data.preprocess.build` takes a MIDI folder, a dataset folder and the options of
:class:`BuildOptions` (the config keys of the same names); :meth:`BuildSettings.checked`
checks them all before any file is converted. The splits: a seeded shuffle of songs
(:func:`shuffle_songs`), of whole first-level folders (:func:`split_folders`), or the split
each first-level folder names (:func:`split_named`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from data import contract
from data.contract import check_option
from data.errors import UserError, one_line
from data.fileio import path_kind
from data.instruments import PAPER, InstrumentSet
from data.melody import load_melody_json
from data.midi_files import (
    SPLIT_FOLDER_NAMES,
    empty_named_folders,
    find_midi_files,
    named_split,
    song_folder,
)
from data.song_roll import CLASS_TRACKS, ClassTracks
from data.store import PACKED_BYTES, SPLITS

MAX_SEED = 2**32 - 1  # numpy seeds 32-bit generators (the config's bound too)
# The most max_song_bars may be set to (the config's bound too): 5,000 bars, 2.8 hours at
# 120 bpm. A song's arrays are allocated at its length and separate.py's model time grows
# with it: at the bound a 1 kB file costs a build worker about 0.7 GB (docs/reliability.md).
MAX_SONG_BARS_LIMIT = 5_000

# what decides a song's split (config key split_by): a seeded shuffle of songs, of whole
# first-level folders, or the split the first-level folder names (published splits)
SplitBy = Literal["song", "folder", "named"]
SPLIT_BY: tuple[str, ...] = get_args(SplitBy)


class BuildError(UserError, ValueError):
    """A problem with the build's inputs, phrased as one line naming the path or key."""

@dataclass(frozen=True)
class BuildOptions:
    """What a build makes of a MIDI folder (:func:`data.preprocess.build`'s options).

    Attributes:
        melody_json: optional midi-miner style ``{file: {"melody": program}}``.
        seed: seeds the song split.
        fractions: (train, val, test) fractions of the kept songs.
        min_bar_density: fraction of each bar's cells that must be on for a window to be
            kept (docs/data.md: 0.01; a sparse corpus such as the demo one may need less).
        split_by: "song" (songs are shuffled into the splits), "folder" (whole
            first-level folders of ``midi_dir`` are, e.g. one folder per style) or
            "named" (the first-level folder names the split: ``train``, ``val`` /
            ``valid`` / ``validation``, ``test``; the fractions and seed are not used).
        max_song_bars: longest song converted, in bars; longer files are counted as
            ``too_long`` without being converted.
        melody_in_mixture: the melody track also joins the class its program names, so
            the tune is part of the mixture (:func:`data.song_roll.choose_tracks`); off = the
            paper's contract.
        default_meter_4_4: a file without any time signature is read as 4/4, the MIDI
            standard's default; off (the paper's contract): such a file is ``not_4_4``.
            Files with another or several time signatures are refused either way.
        class_tracks: "largest" (the paper's: one track per class, the one with most
            notes, tracks of 50 notes or fewer dropped) or "all" (every track of a class
            merged into its channel, short ones kept: mixtures as dense as a user's file).
        instruments: the classes a track can join (:mod:`data.instruments`; the paper's
            five by default); the manifest records their names and programs.
    """

    melody_json: str | Path | None = None
    seed: int = 0
    fractions: Sequence[float] = (0.9, 0.05, 0.05)
    min_bar_density: float = contract.MIN_BAR_DENSITY
    split_by: SplitBy = "song"
    max_song_bars: int = contract.MAX_SONG_BARS
    melody_in_mixture: bool = False
    default_meter_4_4: bool = False
    class_tracks: ClassTracks = "largest"
    instruments: InstrumentSet = PAPER


@dataclass(frozen=True)
class BuildSettings:
    """The settings of one build (what :func:`data.preprocess.build` was given), checked by
    :meth:`checked`."""

    midi_dir: Path
    out_dir: Path
    workers: int | None  # None (all cores) until checked
    melody_json: str | None
    melody_table: dict[str, int]
    seed: int
    fractions: tuple[float, float, float]
    min_bar_density: float
    split_by: str
    max_song_bars: int
    melody_in_mixture: bool
    default_meter_4_4: bool = False
    class_tracks: str = "largest"
    instruments: InstrumentSet = PAPER

    @classmethod
    def of(cls, midi_dir: Path, out_dir: Path, workers: int | None,
           options: BuildOptions) -> BuildSettings:
        """The settings of a build, not checked yet."""
        melody_json = options.melody_json
        return cls(midi_dir, out_dir, workers, None if melody_json is None else str(melody_json),
                   {}, options.seed, tuple(options.fractions), options.min_bar_density,
                   options.split_by, options.max_song_bars, options.melody_in_mixture,
                   options.default_meter_4_4, options.class_tracks, options.instruments)

    def file_options(self) -> BuildOptions:
        """What converting one file reads of these settings (a worker's task)."""
        return BuildOptions(min_bar_density=self.min_bar_density,
                            max_song_bars=self.max_song_bars,
                            melody_in_mixture=self.melody_in_mixture,
                            default_meter_4_4=self.default_meter_4_4,
                            class_tracks=self.class_tracks,  # type: ignore[arg-type]
                            instruments=self.instruments)

    def checked(self) -> BuildSettings:
        """Check every setting (the config's validator checks the same bounds for config
        keys; a direct caller of :func:`data.preprocess.build` gets them checked here), resolve the
        workers and read the melody JSON into ``melody_table``.

        Raises:
            BuildError: the first problem, in one line.
        """
        midi_dir, workers, seed = self.midi_dir, self.workers, self.seed
        min_bar_density, max_song_bars = self.min_bar_density, self.max_song_bars
        if not midi_dir.is_dir():
            kind = path_kind(midi_dir)
            raise BuildError(f"midi_dir {str(midi_dir)!r} is not a folder (" + (
                "not found" if kind == "missing" else f"it is a {kind}") + ")")
        n_workers = workers if workers is not None else (os.cpu_count() or 1)
        if n_workers < 1:
            raise BuildError(f"workers must be >= 1, got {workers}")
        if not 0 <= seed <= MAX_SEED:
            raise BuildError(f"seed must be in [0, 2**32 - 1], got {seed}")
        if not 0.0 <= min_bar_density < 1.0:
            raise BuildError(f"min_bar_density must be in [0, 1), got {min_bar_density}")
        try:
            check_option("split_by", self.split_by, SPLIT_BY)
            check_option("class_tracks", self.class_tracks, CLASS_TRACKS)
        except ValueError as exc:
            raise BuildError(str(exc)) from None
        if not contract.BARS_PER_PHRASE <= max_song_bars <= MAX_SONG_BARS_LIMIT:
            raise BuildError(f"max_song_bars must be >= {contract.BARS_PER_PHRASE} (one "
                             f"window) and at most {MAX_SONG_BARS_LIMIT:,}, got "
                             f"{max_song_bars}")
        table: dict[str, int] = {}
        if self.melody_json is not None:
            try:
                table = load_melody_json(self.melody_json)
            except ValueError as exc:
                raise BuildError(str(exc)) from None
        return dataclasses.replace(self, workers=n_workers, melody_table=table,
                                   fractions=_check_fractions(self.fractions))

    def fingerprint(self) -> dict[str, Any]:
        """What a shard's or split's contents depend on (a mismatch forbids resuming)."""
        constants = {k: v for k, v in vars(contract).items()
                     if k.isupper() and isinstance(v, (int, float, str, tuple))}
        digest = None
        if self.melody_json is not None:
            digest = hashlib.sha256(Path(self.melody_json).read_bytes()).hexdigest()
        return {"contract": hashlib.sha256(repr(sorted(constants.items())).encode()).hexdigest(),
                "melody_json_sha256": digest, "min_bar_density": self.min_bar_density,
                "split_by": self.split_by, "max_song_bars": self.max_song_bars,
                "melody_in_mixture": self.melody_in_mixture,
                "default_meter_4_4": self.default_meter_4_4, "class_tracks": self.class_tracks,
                "packed_bytes": PACKED_BYTES, "instrument_set": self.instruments.record()}

    def record(self) -> dict[str, Any]:
        """The manifest's ``settings``: every setting and contract constant used."""
        return {
            "midi_dir": str(self.midi_dir), "out_dir": str(self.out_dir),
            "workers": self.workers, "melody_json": self.melody_json, "seed": self.seed,
            "fractions": {s: f for s, f in zip(SPLITS, self.fractions)},
            "split_by": self.split_by,
            "steps_per_beat": contract.STEPS_PER_BEAT, "phrase_steps": contract.PHRASE_STEPS,
            "phrase_stride": contract.PHRASE_STRIDE,
            "pitch_range": [contract.PITCH_LOW, contract.PITCH_HIGH],
            "instruments": list(self.instruments.instruments),
            "instrument_set": self.instruments.record(),
            "min_track_notes": contract.MIN_TRACK_NOTES,
            "min_bar_density": self.min_bar_density,
            "min_melody_cells": contract.MIN_MELODY_CELLS,
            "max_song_bars": self.max_song_bars,
            "melody_in_mixture": self.melody_in_mixture,
            "default_meter_4_4": self.default_meter_4_4,
            "class_tracks": self.class_tracks,
        }


def shuffle_songs(songs: Sequence[str], seed: int,
                  fractions: tuple[float, float, float]) -> dict[str, list[str]]:
    """Assign songs to train/val/test by a seeded permutation of their sorted names.

    Counts: ``round(n * fraction)`` for val and test, the rest in train; every split with
    a non-zero fraction gets at least one song when there are enough songs for all of them.

    Returns:
        ``{split: sorted song names}``.
    """
    ordered = sorted(songs)
    n = len(ordered)
    perm = np.random.default_rng(seed).permutation(n)
    wanted = [f > 0 for f in fractions]
    counts = [0, int(round(n * fractions[1])), int(round(n * fractions[2]))]
    if n >= sum(wanted):
        counts = [max(c, 1) if w and i else c for i, (c, w) in enumerate(zip(counts, wanted))]
    counts[1] = min(counts[1], n)
    counts[2] = min(counts[2], n - counts[1])
    counts[0] = n - counts[1] - counts[2]
    if wanted[0] and counts[0] == 0 and n >= sum(wanted):
        big = 1 if counts[1] >= counts[2] else 2
        counts[big] -= 1
        counts[0] += 1
    bounds = np.cumsum([0] + counts)
    return {split: sorted(ordered[i] for i in perm[bounds[k]: bounds[k + 1]])
            for k, split in enumerate(SPLITS)}


def split_folders(songs: Sequence[str], seed: int, fractions: tuple[float, float, float]
                  ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Assign whole first-level folders to train/val/test; every song follows its folder.

    The folders holding the songs are split exactly like songs in :func:`shuffle_songs` (a
    seeded permutation of their sorted names, cut by the fractions, at least one folder per
    split with a non-zero fraction when there are enough folders).

    Returns:
        ``({split: sorted song names}, {split: sorted folder names})``.
    """
    folders = shuffle_songs(sorted({song_folder(s) for s in songs}), seed, fractions)
    side = {folder: split for split, names in folders.items() for folder in names}
    by_split: dict[str, list[str]] = {split: [] for split in SPLITS}
    for song in sorted(songs):
        by_split[side[song_folder(song)]].append(song)
    return by_split, folders


def check_named_folders(songs: Sequence[str]) -> None:
    """Raise :class:`BuildError` listing the first-level folders that name no split."""
    other = sorted({song_folder(s) for s in songs if named_split(song_folder(s)) is None})
    if other:
        allowed = ", ".join(n for names in SPLIT_FOLDER_NAMES.values() for n in names)
        raise BuildError(f"split_by 'named' needs every song in a folder named {allowed}; "
                         f"found {', '.join(repr(o) for o in other)}")


def split_named(songs: Sequence[str]) -> dict[str, list[str]]:
    """Every song goes to the split its first-level folder names (published splits).

    Raises:
        BuildError: a song outside a folder that names a split (:func:`check_named_folders`).
    """
    check_named_folders(songs)
    by_split: dict[str, list[str]] = {split: [] for split in SPLITS}
    for song in sorted(songs):
        by_split[named_split(song_folder(song))].append(song)
    return by_split


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(not 0.0 <= f <= 1.0 for f in fractions):
        raise BuildError(f"fractions must be three values in [0, 1] (train, val, test), "
                         f"got {tuple(fractions)}")
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise BuildError(f"fractions must add up to 1, got {tuple(fractions)}")
    return (float(fractions[0]), float(fractions[1]), float(fractions[2]))


def build_files(midi_dir: Path, split_by: str) -> list[str]:
    """The MIDI files of the build (:func:`data.midi_files.find_midi_files`); a folder
    reached a second time is named in a warning line.

    Raises:
        BuildError: with ``split_by="named"``, a song in a folder that names no split, or
            a folder naming a split that holds no MIDI file.
    """
    repeats: dict[str, str] = {}
    files = find_midi_files(midi_dir, repeats)
    for folder, first in repeats.items():
        print(f"warning: {one_line(midi_dir / folder)}: not read again, it is the folder "
              f"{first!r} (a link to a folder read already)", file=sys.stderr)
    if split_by == "named":
        check_named_folders(files)
        empty = empty_named_folders(midi_dir, files, repeats)
        if empty:
            raise BuildError(f"split_by 'named': {midi_dir}: {'; '.join(empty)}; put the "
                             f"split's MIDI files there or remove the folder")
    return files
