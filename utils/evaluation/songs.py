"""Song-level evaluation over the original notes (the metric of note-level instrumentation work).

Each song of a split is separated whole (windows stitched, :mod:`utils.separation.notes`)
and every original note of the song's unified tracks is scored (track unification of
the data contract, :func:`data.song_roll.choose_tracks`): its true instrument is the class of
its track. Not scored: the notes of tracks that track unification drops, and the melody
track unless the dataset was built with ``melody_in_mixture`` (then the melody is part of
the mixture and its true instrument is the class its program names). The model is given
the mixture of the scored notes -- the song's music channels, as in the phrase data -- and
their note starts.
This is the unified mode; :mod:`utils.evaluation.song_modes` adds whole songs as a user's
file holds them (every note fed, every note of a track with a class scored) and scores both.

Every system decides per note with the same rules: drum-channel notes stay drums, a
pitched note picks one of piano, guitar, bass and strings. The model averages its
stitched probabilities over the note's cells; the fitted baselines (most-common, zone,
pitch-row of :mod:`utils.evaluation.baselines`, fitted on the train split) are pitch rules, refitted
here on the train split's pitched instruments only, so a pitched note never lands in a
drum zone; a row the refitted zone still gives to drums takes the nearest pitched row's
instrument.

Metrics over notes, from one confusion matrix (true x predicted, five instruments):

* ``note_accuracy`` = notes given their true instrument / notes;
* ``pitched_note_accuracy`` = the same over the notes that are not drums (drum-channel
  notes are right by rule, so this is the part the systems decide);
* ``<inst>_precision / _recall / _f1`` over notes, and ``macro_f1`` over the
  instruments that occur. An empty denominator reads 1.0 (nothing got wrong): unlike the
  cell metrics of :mod:`utils.evaluation.metrics`, precision of an instrument never
  predicted is 1.0.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from tqdm import tqdm

from data.contract import MAX_SONG_BARS, MELODY
from data.errors import InputError
from data.instruments import PAPER, InstrumentSet
from data.manifest import REBUILD, DatasetError, Manifest
from data.melody import load_melody_json, melody_program_for
from data.midi import SongNotes, read_notes
from data.preprocess import source_stat
from data.song_roll import ClassTracks, load_song, nearest_rows
from utils.core.config import Config
from utils.evaluation.baselines import FITTED_BASELINES, Baseline
from utils.evaluation.metrics import NoteConfusion, markdown_table, ratio
from utils.evaluation.phrases import Report, check_model_data, model_baselines, sampling_words
from utils.separation.first_pass import MixtureSong
from utils.separation.instrument_hints import GIVEN_SUFFIX, given_row, restrict
from utils.separation.notes import NoteAssignment, SongSeparator, instruments_of
from utils.separation.separator import Separator


def song_model_row(kind: str = "diffusion") -> str:
    """Name of the model's row in the song table, e.g. ``"direct (notes)"``."""
    return f"{kind} (notes)"


SONG_SUMMARY_KEYS: tuple[str, ...] = ("notes", "note_accuracy", "pitched_note_accuracy",
                                      "macro_f1")


# ----------------------------------------------------------------------------------
# Truth and metrics
# ----------------------------------------------------------------------------------
@dataclass
class SongTruth:
    """One song as the song-level evaluation sees it.

    Attributes:
        name: the song's path relative to the MIDI folder.
        notes: every note of the file.
        true: int64 ``[K]`` true class of each note (1..5), -1 where not scored (melody
            track, dropped tracks).
        mixture: bool ``[T, 72]`` the scored notes' mixture (the song's music channels).
        fed: bool ``[K]`` the notes that make up ``mixture`` (their note starts are given
            to the model too); None = the scored notes.
    """

    name: str
    notes: SongNotes
    true: np.ndarray
    mixture: np.ndarray
    fed: np.ndarray | None = None


def song_truth(path: str | Path, name: str, melody_program: int | None = None,
               melody_in_mixture: bool = False, default_meter_4_4: bool = False,
               class_tracks: ClassTracks = "largest", instruments: InstrumentSet = PAPER
               ) -> SongTruth:
    """Read a song of a built split with the true instrument of each of its notes.

    Args:
        path: the MIDI file.
        name: how the song is named in reports (its path relative to the MIDI folder).
        melody_program: the melody track's program from a melody JSON (None: detector).
        melody_in_mixture: the build's contract option: the melody track's notes are
            scored as the class its program names (:func:`data.song_roll.choose_tracks`).
        default_meter_4_4: the build's option: a song without a time signature is 4/4.
        class_tracks: the build's track choice, "largest" (the paper's) or "all".
        instruments: the build's instrument set.

    Raises:
        data.midi.MidiError, data.midi.SkipFile: the file no longer reads as it did in the
            build.
    """
    notes = read_notes(path)
    song = load_song(path, melody_program, notes=notes, melody_in_mixture=melody_in_mixture,
                     default_meter_4_4=default_meter_4_4, class_tracks=class_tracks,
                     instruments=instruments)
    true = np.full(len(notes), -1, dtype=np.int64)
    for cls, tracks in song.class_tracks.items():
        if cls != MELODY:
            true[np.isin(notes.track, tracks)] = cls
    music = song.roll[..., MELODY + 1:]  # (T, 72, C)
    return SongTruth(name=name, notes=notes, true=true, mixture=music.any(axis=-1))


# ----------------------------------------------------------------------------------
# Note-level baselines
# ----------------------------------------------------------------------------------
def pitched_rule(baseline: Baseline, allowed: Collection[int] = ()) -> np.ndarray:
    """A fitted baseline's pitch rule for pitched notes: int64 ``[72]`` classes 1..C-1
    (1..4 for the paper's set).

    The same kind of baseline is refitted on the training counts with the drum
    instrument removed (and, given ``allowed`` pitched classes, every other one: the
    rule of a song whose instruments are known); a row it still gives to a removed
    instrument (an empty zone may sit there) takes the instrument of the nearest row that
    it gives to a kept one (ties: the lower row).
    """
    if baseline.counts is None:
        raise RuntimeError(f"{baseline.name}: not fitted")
    n_pitched = baseline.counts.shape[0] - 1  # the drum is the last class
    keep = np.isin(np.arange(1, n_pitched + 1), list(allowed) or range(1, n_pitched + 1))
    counts = baseline.counts.copy()
    counts[n_pitched] = 0
    counts[:n_pitched][~keep] = 0
    assignment = FITTED_BASELINES[baseline.name]().fit_counts(counts, baseline.names).assignment
    assert assignment is not None
    pitched_rows = np.flatnonzero(np.isin(assignment, np.flatnonzero(keep)))
    if pitched_rows.size == 0:  # nothing kept in training: every row the first kept class
        return np.full_like(assignment, np.flatnonzero(keep)[0] + 1)
    rows = np.arange(assignment.size)
    nearest = pitched_rows[np.argmin(np.abs(rows[:, None] - pitched_rows[None, :]), axis=1)]
    return assignment[nearest] + 1


def rule_predict(rule: np.ndarray, notes: SongNotes, drum: int = PAPER.drum) -> np.ndarray:
    """Instrument of every note under a pitch rule (drum-channel notes stay drums).

    Args:
        rule: int ``[72]`` class (1..4 for the paper's set) of each row.
        notes: the song's notes (pitched notes outside the rows read at the nearest row).
        drum: the drum class (the set's last; 5 for the paper's).

    Returns:
        int64 ``[K]`` classes 1..drum.
    """
    pred = np.full(len(notes), drum, dtype=np.int64)
    pitched = ~notes.is_drum
    pred[pitched] = rule[nearest_rows(notes)[pitched]]
    return pred


# ----------------------------------------------------------------------------------
# Scoring songs
# ----------------------------------------------------------------------------------
def score_songs(separator: SongSeparator, rules: dict[str, np.ndarray],
                songs: Iterable[SongTruth], *, progress: bool = False,
                model_row: str = "diffusion (notes)", total: int | None = None,
                per_instrument: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """Note metrics of the model and of each pitch rule over the scored notes of songs.

    Songs are read one at a time (``songs`` may be a generator), so memory does not grow
    with the number of songs.

    Args:
        separator: separates a song note by note, its second pass included (a
            :class:`utils.separation.separator.Separator`, or a
            :class:`utils.separation.notes.NoteSeparator`).
        rules: ``{baseline name: pitch rule}`` (:func:`pitched_rule`).
        songs: the songs with their truth.
        progress: show a progress bar in songs.
        model_row: the model's row name.
        total: the number of songs, for the progress bar.
        per_instrument: int64 ``[5]``, if given, counts the scored notes of each true
            instrument (added in place).

    Returns:
        ``{system: metrics}``, the model first.
    """
    scorer = SongScorer(separator, rules, model_row, instruments=instruments_of(separator))
    scorer.add_songs(tqdm(songs, unit="song", desc="songs", disable=not progress, total=total,
                          dynamic_ncols=True))
    if per_instrument is not None:
        per_instrument += scorer.per_instrument
    return scorer.rows()


def fed_song(song: SongTruth) -> MixtureSong:
    """What the model is given of a song: its notes, the mixture, the notes that make it."""
    return MixtureSong(song.notes, song.mixture, song.true > 0 if song.fed is None else song.fed)


@dataclass
class SongScorer:
    """Scores songs one at a time: the model and each pitch rule on each song's scored notes.

    Attributes:
        separator: separates a song note by note, its second pass included
            (:class:`utils.separation.notes.SongSeparator`).
        rules: ``{baseline name: pitch rule}`` (:func:`pitched_rule`).
        model_row: the model's row name.
        given: the fitted baselines behind ``rules``; when set, every system also gets a
            row with each song's true pitched instruments given
            (:mod:`utils.separation.instrument_hints`), after its own row.
        instruments: the classes scored (the separator's; the paper's five by default).
    """

    separator: SongSeparator
    rules: dict[str, np.ndarray]
    model_row: str = "diffusion (notes)"
    given: dict[str, Baseline] | None = None
    instruments: InstrumentSet = PAPER
    per_instrument: np.ndarray = field(init=False)
    notes_fed: int = 0  # notes of the songs added that were fed to the model
    presence_pairs: np.ndarray = field(default_factory=lambda: np.zeros(2, np.int64))
    """``[right, all]`` song x pitched-instrument pairs whose presence the model's second
    pass predicted (a learned song pass with a presence head); ``[0, 0]`` otherwise."""

    def __post_init__(self) -> None:
        self.per_instrument = np.zeros(self.instruments.n_music, np.int64)
        names = [(n, given_row(n)) if self.given is not None else (n,)
                 for n in (self.model_row, *self.rules)]
        self.confusion = {n: NoteConfusion(self.instruments.music) for pair in names
                          for n in pair}
        self._given_rules: dict[tuple[str, frozenset[int]], np.ndarray] = {}

    def add(self, song: SongTruth) -> None:
        """Separate one song and count its scored notes under every system."""
        self.add_result(song, self.separator.separate_notes(fed_song(song)))

    def add_songs(self, songs: Iterable[SongTruth]) -> None:
        """Separate songs, the windows of consecutive songs batched together
        (:meth:`utils.separation.notes.SongSeparator.separate_songs`), and count each."""
        songs, again = itertools.tee(songs)
        for song, result in zip(songs, self.separator.separate_songs(map(fed_song, again))):
            self.add_result(song, result)

    def add_result(self, song: SongTruth, result: NoteAssignment) -> None:
        """Count the scored notes of a song separated into ``result`` under every system."""
        scored = song.true > 0
        self.notes_fed += int(scored.sum() if song.fed is None else song.fed.sum())
        true = song.true[scored]
        drum = self.instruments.drum
        allowed = frozenset(int(c) for c in np.unique(true) if c < drum)
        predictions = {self.model_row: result.instrument}
        if self.given is not None:
            predictions[given_row(self.model_row)] = restrict(
                result.instrument, result.probs, ~song.notes.is_drum, allowed)
        for name, rule in self.rules.items():
            predictions[name] = rule_predict(rule, song.notes, drum)
            if self.given is not None:
                key = (name, allowed)
                if key not in self._given_rules:
                    self._given_rules[key] = pitched_rule(self.given[name], allowed)
                predictions[given_row(name)] = rule_predict(self._given_rules[key], song.notes,
                                                            drum)
        for name, pred in predictions.items():
            self.confusion[name].update(true, pred[scored])
        self.per_instrument += np.bincount(true - 1, minlength=self.instruments.n_music)
        if result.presence is not None:
            n_pitched = self.instruments.n_pitched
            present = np.isin(np.arange(1, n_pitched + 1), true)
            self.presence_pairs += [int((result.presence == present).sum()), n_pitched]

    def presence_accuracy(self) -> dict[str, float | int]:
        """``{"presence_accuracy": right / pairs, "presence_pairs": pairs}`` of the songs
        added, or ``{}`` when the model predicted no song's instruments."""
        right, pairs = self.presence_pairs.tolist()
        return {"presence_accuracy": ratio(right, pairs), "presence_pairs": pairs} \
            if pairs else {}

    def rows(self) -> dict[str, dict[str, float]]:
        """``{system: metrics}`` over the songs added, the model first."""
        return {name: c.compute() for name, c in self.confusion.items()}

    def folded_rows(self, onto: InstrumentSet) -> dict[str, dict[str, float]]:
        """:meth:`rows` folded back onto a narrower set's classes (the notes of ``onto``'s
        classes alone, another class given to one of them an error); ``{}`` unless this
        set folds onto ``onto`` (:meth:`data.instruments.InstrumentSet.folds_onto`)."""
        if not self.instruments.folds_onto(onto):
            return {}
        return {name: c.folded(onto.music) for name, c in self.confusion.items()}


@dataclass
class SongEvaluation(Report):
    """Note metrics of every system over the songs of one split.

    Attributes:
        split: "train", "val" or "test".
        songs: the songs evaluated (paths relative to the MIDI folder).
        rows: ``{system: {metric: value}}``, the model first.
        notes_by_instrument: scored notes of each true instrument.
        seconds: wall-clock seconds of the whole evaluation.
        settings: sampler settings, device, checkpoints and data used.
        mode: which notes are fed and scored: "unified" here (the tracks of the build's
            track unification); "whole" in
            :class:`utils.evaluation.song_modes.WholeSongEvaluation`.
    """

    split: str
    songs: list[str]
    rows: dict[str, dict[str, float]]
    notes_by_instrument: dict[str, int]
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    mode: str = "unified"
    folded: dict[str, dict[str, float]] = field(default_factory=dict)
    """The rows folded back onto the paper's five classes, for a model of a wider set
    (:meth:`SongScorer.folded_rows`); empty otherwise."""

    summary_keys: ClassVar[tuple[str, ...]] = SONG_SUMMARY_KEYS
    file_suffix: ClassVar[str] = "_songs"
    f1_over: ClassVar[str] = "notes"

    def title(self) -> str:
        return f"Song-level evaluation on the {self.split} split: unified tracks"

    def intro(self) -> str:
        s = self.settings
        per = ", ".join(f"{k} {v}" for k, v in self.notes_by_instrument.items())
        melody = ("the melody track, as the instrument its program names (the build's "
                  "melody_in_mixture), and " if s.get("melody_in_mixture") else "")
        skipped = ("tracks dropped by track unification" if s.get("melody_in_mixture") else
                   "the melody track (kept out of the mixture, as the paper) and tracks "
                   "dropped by track unification")
        return (f"{len(self.songs)} songs separated whole, "
                f"{sum(self.notes_by_instrument.values())} original notes scored ({per}) of "
                f"{s.get('data_dir')}. {s.get('model')} ({sampling_words(s)}), note by note, on "
                f"{s.get('device')}. Scored: {melody}every note of the song's unified tracks; "
                f"not scored: {skipped}. Drum-channel notes stay drums for every system; "
                f"`pitched_note_accuracy` leaves them out. Baselines: {s.get('baselines')}.")

    def appendix(self) -> list[str]:
        presence = ([f"Presence accuracy of the learned song pass's presence head: "
                     f"{self.settings['presence_accuracy']:.3f} (song x pitched-instrument "
                     f"pairs predicted right / all {self.settings['presence_pairs']} pairs; an "
                     "instrument is present when a scored note plays it).", ""]
                    if "presence_accuracy" in self.settings else [])
        given = ([f"Rows ending in '{GIVEN_SUFFIX.strip()}': each song's true set of pitched "
                  "instruments given to the system, which keeps every pitched note within it "
                  "(the model: the most probable of them; a pitch rule: refitted on them).",
                  ""] if any(r.endswith(GIVEN_SUFFIX) for r in self.rows) else [])
        folded = ([f"Folded back onto the paper's five classes (the notes of "
                   f"{', '.join(PAPER.music)} alone; another class given to one is an error):",
                   "", markdown_table(self.folded, SONG_SUMMARY_KEYS), "",
                   markdown_table(self.folded, tuple(f"{n}_f1" for n in PAPER.music)), ""]
                  if self.folded else [])
        return [*presence, *given, *folded, "Songs: " + ", ".join(self.songs), ""]


def check_unchanged(manifest: Manifest, names: list[str]) -> None:
    """Refuse songs whose file changed since the build (its size or modification time).

    Raises:
        data.manifest.DatasetError: naming the first changed file and how many changed.
    """
    sources, midi_dir = manifest.song_sources, manifest.midi_dir
    changed = [n for n in names if n in sources and sources[n] is not None
               and source_stat(midi_dir / n) != sources[n]]
    if changed:
        raise DatasetError(f"{midi_dir / changed[0]}: changed since the build of "
                           f"{manifest.folder} (size or modification time; {len(changed)} "
                           f"song(s)); {REBUILD}")


@dataclass
class SplitSongs:
    """The songs of a built split, checked, to be read one at a time with their truth.

    Attributes:
        manifest: the build's manifest (its contract checked).
        midi_dir: the MIDI folder the build read (:attr:`data.manifest.Manifest.midi_dir`).
        names: the songs (paths relative to ``midi_dir``), the first ``limit`` of the split.
        melody_in_mixture: the build's contract option.
        melody_table: the build's melody JSON, read (empty: none, the detector decides).
        default_meter_4_4: the build's option: a song without a time signature is 4/4.
        class_tracks: the build's track choice ("largest", the paper's, or "all").
        max_song_bars: the build's longest song, in bars.
        instruments: the build's instrument set.
    """

    manifest: Manifest
    midi_dir: Path
    names: list[str]
    melody_in_mixture: bool
    melody_table: dict = field(default_factory=dict)
    default_meter_4_4: bool = False
    class_tracks: ClassTracks = "largest"
    max_song_bars: int = MAX_SONG_BARS
    instruments: InstrumentSet = PAPER

    @classmethod
    def checked(cls, data_dir: str | Path, split: str, limit: int | None = None) -> SplitSongs:
        """The split's songs, refused up front when there are none, one is missing or one
        changed since the build.

        Raises:
            data.errors.InputError: no song; FileNotFoundError: a song file missing;
            data.manifest.DatasetError: no manifest, one built with another data contract,
            or a song changed since the build.
        """
        manifest = Manifest.read(data_dir)
        midi_dir, names = manifest.midi_dir, manifest.songs_of(split)[:limit]
        if not names:
            raise InputError(f"{data_dir}: the {split} split holds no songs")
        missing = [midi_dir / n for n in names if not (midi_dir / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{missing[0]}: song of the {split} split not found (the "
                                    "manifest's midi_dir)")
        check_unchanged(manifest, names)
        melody_json = manifest.melody_json
        table = load_melody_json(melody_json) if melody_json else {}
        return cls(manifest, midi_dir, names, manifest.melody_in_mixture, table,
                   manifest.default_meter_4_4, manifest.class_tracks, manifest.max_song_bars,
                   manifest.instruments)

    def truths(self) -> Iterator[SongTruth]:
        """Each song with its truth (:func:`song_truth`), read when asked for."""
        for n in self.names:
            program = melody_program_for(self.melody_table, n) if self.melody_table else None
            yield song_truth(self.midi_dir / n, n, program, self.melody_in_mixture,
                             self.default_meter_4_4, self.class_tracks, self.instruments)


def evaluate_songs(cfg: Config, split: str = "test", limit: int | None = None,
                   device: str | None = None, progress: bool = True,
                   data_dir: str | Path | None = None) -> SongEvaluation:
    """Separate the songs of a split whole and score every original note.

    Args:
        cfg: the typed config (``data_dir``, checkpoints, sampling keys).
        data_dir: the built dataset whose songs are scored (default: the config's); the
            baselines are those saved with the model (see
            :func:`utils.evaluation.phrases.model_baselines`).
        split: "train", "val" or "test".
        limit: evaluate at most this many songs (the first ones of the split).
        device: sampling device; None = the config's ``accelerator``.
        progress: show a progress bar in songs.

    Raises:
        utils.core.config.ConfigError: no checkpoint; FileNotFoundError: no manifest or a song
        file missing; ValueError: no song in the split.
    """
    started = time.perf_counter()
    data_dir = cfg.data_dir if data_dir is None else data_dir
    songs = SplitSongs.checked(data_dir, split, limit)
    separator = Separator.from_config(cfg, device)
    check_model_data(separator, data_dir)
    baselines, baseline_source = model_baselines(separator, cfg)
    rules = {name: pitched_rule(b) for name, b in baselines.items()}
    per = np.zeros(separator.instruments.n_music, dtype=np.int64)
    rows = score_songs(separator, rules, songs.truths(), progress=progress,
                       model_row=song_model_row(separator.kind), total=len(songs.names),
                       per_instrument=per)
    settings = {**separator.settings(), "baselines": baseline_source,
                "data_dir": str(data_dir),
                "midi_dir": str(Path(songs.manifest.midi_dir_as_built)),
                "melody_in_mixture": songs.melody_in_mixture}
    return SongEvaluation(split=split, songs=songs.names, rows=rows,
                          notes_by_instrument=dict(zip(separator.instruments.music,
                                                       per.tolist())),
                          seconds=time.perf_counter() - started, settings=settings)
