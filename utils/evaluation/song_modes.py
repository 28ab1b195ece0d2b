"""Song-level evaluation in two modes: whole songs as users bring them, and unified tracks.

``evaluate.py --songs`` scores each song of a split in both modes, with the same model and
baselines, on the same notes for every system:

* **whole** (the first table): the song as a user's file holds it, as ``separate.py``
  separates it. Every note of every track is fed to the model -- the tune in, short
  tracks, second and third tracks of a class, notes of programs of no class -- and every
  note whose track has a class is scored (piano 0-7, guitar 24-31, bass 32-39, strings
  48-55 by General MIDI program, drums by the drum channel); notes of other programs are
  fed and not scored.
* **unified** (the second table, the paper's comparison): the tracks that the build's track
  unification keeps (:func:`utils.evaluation.songs.song_truth`).

With ``given`` every system also gets a row with each song's true set of pitched
instruments given (:mod:`utils.separation.instrument_hints`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import numpy as np
from tqdm import tqdm

from data.contract import MAX_SONG_BARS
from data.instruments import PAPER, InstrumentSet
from data.midi import read_notes
from data.song_roll import load_mixture, track_class
from utils.core.config import Config
from utils.evaluation.phrases import check_model_data, model_baselines, sampling_words
from utils.evaluation.songs import (
    SongEvaluation,
    SongScorer,
    SongTruth,
    SplitSongs,
    pitched_rule,
    song_model_row,
)
from utils.separation.separator import Separator

SongMode = Literal["whole", "unified"]
SONG_MODES: tuple[str, ...] = get_args(SongMode)
"""The modes in table order: whole songs first, then the paper's unified tracks."""
MODE_WORDS: dict[str, str] = {
    "whole": "whole songs (every note fed, every note of a track with a class scored)",
    "unified": "unified tracks (the paper's track unification, as built)",
}
"""Each mode in words, as ``evaluate.py`` heads its table."""


def whole_song_truth(path: str | Path, name: str, max_bars: int = MAX_SONG_BARS,
                     instruments: InstrumentSet = PAPER) -> SongTruth:
    """A song as a user's file holds it, with the true instrument of each of its notes.

    Every note is fed: the mixture is :func:`data.song_roll.load_mixture`'s, as ``separate.py``
    builds it (every pitched note of every track, the drum channel through the drum
    merge). A note's true instrument is its track's class by program and channel
    (:func:`data.song_roll.track_class` in ``instruments``), -1 (fed, not scored) for a
    program of no class.

    Raises:
        data.midi.MidiError: the file no longer reads as it did in the build.
    """
    notes = read_notes(path)
    mixture, _, _ = load_mixture(path, max_bars, notes)
    classes = np.array([-1 if (c := track_class(t, instruments)) is None else c
                        for t in notes.tracks]
                       + [-1], dtype=np.int64)  # one past the end: a file without tracks
    true = classes[notes.track] if len(notes) else np.zeros(0, np.int64)
    return SongTruth(name=name, notes=notes, true=true, mixture=mixture,
                     fed=np.ones(len(notes), dtype=bool))


def mode_truths(songs: SplitSongs, mode: str) -> Iterator[SongTruth]:
    """Each song of a split with its truth in ``mode``, read when asked for."""
    if mode == "unified":
        yield from songs.truths()
        return
    for n in songs.names:
        yield whole_song_truth(songs.midi_dir / n, n, songs.max_song_bars, songs.instruments)


@dataclass
class WholeSongEvaluation(SongEvaluation):
    """:class:`utils.evaluation.songs.SongEvaluation` of whole songs (every note fed, every
    note of a classed track scored), written as ``evaluation_<split>_songs_whole.*``."""

    mode: str = "whole"
    file_suffix: ClassVar[str] = "_songs_whole"

    def title(self) -> str:
        return f"Song-level evaluation on the {self.split} split: whole songs"

    def intro(self) -> str:
        s = self.settings
        per = ", ".join(f"{k} {v}" for k, v in self.notes_by_instrument.items())
        scored = sum(self.notes_by_instrument.values())
        return (f"{len(self.songs)} songs separated whole, as a user's file holds them: "
                f"every note of every track fed to the model ({s.get('notes_fed')} notes of "
                f"{s.get('data_dir')}: the tune in, short tracks and every track of a class "
                f"too), {scored} scored ({per}): every note whose track's program has a "
                "class; notes of other programs fed, not scored. "
                f"{s.get('model')} ({sampling_words(s)}), note by note, on {s.get('device')}. "
                "Drum-channel notes stay drums for every system; `pitched_note_accuracy` "
                f"leaves them out. Baselines: {s.get('baselines')}.")


REPORTS: dict[str, type[SongEvaluation]] = {"whole": WholeSongEvaluation,
                                            "unified": SongEvaluation}


@dataclass
class SongSystems:
    """The systems a song table scores: the model, loaded once, and the baselines saved
    with it (refitted as pitch rules, :func:`utils.evaluation.songs.pitched_rule`)."""

    separator: Separator
    baselines: dict[str, Any]
    baseline_source: str
    rules: dict[str, Any]

    @classmethod
    def load(cls, cfg: Config, device: str | None = None) -> SongSystems:
        """The config's model on ``device`` (None = the config's ``accelerator``) and its
        baselines."""
        separator = Separator.from_config(cfg, device)
        baselines, source = model_baselines(separator, cfg)
        return cls(separator, baselines, source,
                   {name: pitched_rule(b) for name, b in baselines.items()})


def score_song_modes(systems: SongSystems, songs: SplitSongs, split: str,
                     data_dir: str | Path, modes: Sequence[str] = SONG_MODES,
                     given: bool = False, progress: bool = True) -> list[SongEvaluation]:
    """Score the checked songs of a split (``songs``, built in ``data_dir``) in each mode
    with ``systems``; one report per mode (see :func:`evaluate_song_modes`)."""
    separator = systems.separator
    check_model_data(separator, data_dir)
    settings = {**separator.settings(), "baselines": systems.baseline_source,
                "data_dir": str(data_dir),
                "midi_dir": str(Path(songs.manifest.midi_dir_as_built)),
                "melody_in_mixture": songs.melody_in_mixture,
                "class_tracks": songs.class_tracks}
    reports = []
    for mode in modes:
        started = time.perf_counter()
        separator.reseed()  # a mode's table does not depend on the modes scored before it
        scorer = SongScorer(separator, systems.rules, song_model_row(separator.kind),
                            systems.baselines if given else None, separator.instruments)
        scorer.add_songs(tqdm(mode_truths(songs, mode), unit="song", desc=f"songs ({mode})",
                              disable=not progress, total=len(songs.names),
                              dynamic_ncols=True))
        per = dict(zip(separator.instruments.music, scorer.per_instrument.tolist()))
        reports.append(REPORTS[mode](
            split=split, songs=songs.names, rows=scorer.rows(), notes_by_instrument=per,
            seconds=time.perf_counter() - started,
            settings={**settings, "notes_fed": scorer.notes_fed,
                      **scorer.presence_accuracy()},
            folded=scorer.folded_rows(PAPER)))
    return reports


def evaluate_song_modes(cfg: Config, split: str = "test", limit: int | None = None,
                        device: str | None = None, progress: bool = True,
                        data_dir: str | Path | None = None,
                        modes: Sequence[str] = SONG_MODES,
                        given: bool = False) -> list[SongEvaluation]:
    """Separate the songs of a split whole and score them in each mode (module docstring).

    Args:
        cfg: the typed config (``data_dir``, checkpoints, sampling keys).
        split: "train", "val" or "test".
        limit: evaluate at most this many songs (the first ones of the split).
        device: sampling device; None = the config's ``accelerator``.
        progress: show a progress bar in songs.
        data_dir: the built dataset whose songs are scored (default: the config's); the
            baselines are those saved with the model.
        modes: which of :data:`SONG_MODES`, in this order.
        given: add every system's ``(instruments given)`` row.

    Returns:
        One report per mode, the model loaded once.

    Raises:
        utils.core.config.ConfigError: no checkpoint; FileNotFoundError: no manifest or a song
        file missing; data.errors.InputError: no song in the split.
    """
    data_dir = cfg.data_dir if data_dir is None else data_dir
    songs = SplitSongs.checked(data_dir, split, limit)
    return score_song_modes(SongSystems.load(cfg, device), songs, split, data_dir, modes,
                            given, progress)
