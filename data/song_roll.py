"""A song's notes -> the data contract's roll: track unification and the grid (docs/data.md).

From a file's :class:`data.midi.SongNotes`, track unification chooses the tracks of each
instrument class (:func:`choose_tracks`) and the chosen notes are painted on the 16th-note
grid: the contract's song roll (:func:`load_song`) and the mixture of any file
(:func:`load_mixture`).

Quantisation is in ticks: one step is ``tpq / 4`` ticks (a 16th note); a note covers the
steps ``round(start / step)`` to ``round(end / step)`` (end exclusive, halves rounded up),
at least one step. Tempo changes therefore do not move notes off the grid. Bars are
counted in 4/4 from tick 0. A song longer than ``max_bars`` (default
:data:`data.contract.MAX_SONG_BARS`) is refused as ``"too_long"`` from its note arrays
alone, before any array of the song's length exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from data.contract import (
    MAX_SONG_BARS,
    MELODY,
    MIN_CLASSES,
    MIN_TRACK_NOTES,
    N_PITCH,
    PITCH_HIGH,
    PITCH_LOW,
    STEPS_PER_BAR,
    check_option,
)
from data.instruments import PAPER, InstrumentSet
from data.melody import Track, TrackNotes, find_melody, track_with_program
from data.midi import (
    WRAPPED_STEPS,
    MidiError,
    SkipFile,
    SongNotes,
    Timing,
    describe_time_signatures,
    pitch_rows,
    quantise,
    read_notes,
)

# which tracks of a class make its channel (build option class_tracks): the largest one of
# more than MIN_TRACK_NOTES notes (the paper's track unification), or every track of the
# class merged, short ones kept (mixtures as dense as a user's file)
ClassTracks = Literal["largest", "all"]
CLASS_TRACKS: tuple[str, ...] = get_args(ClassTracks)


@dataclass
class UnifiedSong:
    """One MIDI file converted by the data contract.

    Attributes:
        name: file name without extension.
        roll: bool ``[T, 72, 6]`` (contract order: time, pitch row, instrument).
        timing: the file's timing (tempo map kept for rendering).
        has_melody: whether a melody track was found (channel 0 may be non-empty).
        onsets: bool ``[T, 72, 6]``, the first cell of every note of each class (two
            repeated notes and one held note differ here, not in ``roll``).
        class_tracks: ``{class: [source tracks]}`` that track unification chose
            (:func:`choose_tracks`; indices into :attr:`SongNotes.tracks`).
        n_unclosed: notes never closed in the file, dropped (:attr:`SongNotes.n_unclosed`).
    """

    name: str
    roll: np.ndarray
    timing: Timing
    has_melody: bool
    onsets: np.ndarray | None = None
    class_tracks: dict[int, list[int]] = field(default_factory=dict)
    n_unclosed: int = 0


def paint_notes(roll2d: np.ndarray, first: np.ndarray, stop: np.ndarray, rows: np.ndarray) -> None:
    """Set ``roll2d[first_k:stop_k, rows_k] = True`` for every note k (in place).

    ``roll2d`` is bool ``[T, 72]`` with ``T >= stop.max()``.
    """
    if first.size == 0:
        return
    diff = np.zeros((roll2d.shape[0] + 1, roll2d.shape[1]), dtype=np.int32)
    np.add.at(diff, (first, rows), 1)
    np.add.at(diff, (stop, rows), -1)
    roll2d |= np.cumsum(diff[:-1], axis=0) > 0


def _track_cells(track: TrackNotes, ticks_per_step: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid cells of a track: ``(first, stop, row)``, notes outside the roll dropped.

    Pitched tracks keep pitches 24..95 (rows 0..71); drum tracks go through the drum
    merge into rows 63..71 and drop the keys that are not kept.
    """
    rows = pitch_rows(track.pitch, track.is_drum)
    keep = rows >= 0
    first, stop = quantise(track.start[keep], track.end[keep], ticks_per_step)
    return first, stop, rows[keep]


Cells = tuple[np.ndarray, np.ndarray, np.ndarray]  # (first, stop, row) of a track's notes


def song_steps(cells: list[Cells]) -> int:
    """Length in steps of the roll that would hold ``cells``: the latest ``stop``.

    A negative ``first`` means the file's tick counter ran past 2**31, a song far longer
    than any limit: it counts as :data:`WRAPPED_STEPS`. Needs only the note arrays, so
    limits are checked before any roll exists.
    """
    if any(first.size and int(first.min()) < 0 for first, _, _ in cells):
        return WRAPPED_STEPS
    return max([int(stop.max()) for _, stop, _ in cells if stop.size] + [0])


def too_long(steps: int, max_bars: int) -> str | None:
    """Why a song of ``steps`` steps is over the ``max_bars`` limit, or None if it is not."""
    if steps <= max_bars * STEPS_PER_BAR:
        return None
    bars = "more than 2**31 ticks" if steps == WRAPPED_STEPS \
        else f"{-(-steps // STEPS_PER_BAR):,} bars"
    return (f"song is {bars} long, over the limit of {max_bars:,} bars "
            f"(max_song_bars)")


def choose_tracks(tracks: list[TrackNotes], tpq: int, melody_program: int | None,
                  melody_in_mixture: bool = False, class_tracks: ClassTracks = "largest",
                  instruments: InstrumentSet = PAPER) -> dict[int, list[int]]:
    """Track unification, steps 1-5 (docs/data.md): which tracks become which class.

    Args:
        tracks: every track of the file (:meth:`SongNotes.track_notes`).
        tpq: ticks per quarter note (for the melody detector).
        melody_program: GM program of the melody track, or None to run the detector.
        melody_in_mixture: the melody track also joins the class its program names
            (piano, guitar, bass or strings; another program joins none), its notes merged
            with that class's own track, so the tune is part of the mixture. Off: the
            paper's contract, the melody is kept apart.
        class_tracks: "largest" (the paper's steps 1 and 5: tracks of more than
            ``MIN_TRACK_NOTES`` notes, one per class, the one with most notes) or "all"
            (every track of a class that holds a note joins it, short ones too; the melody
            is still found among the tracks of more than ``MIN_TRACK_NOTES`` notes).
        instruments: the classes and their programs (default the paper's five).

    Returns:
        ``{class (contract index 0..n_music): [indices into tracks]}``: one track per class
        ("largest") or every track of the class ("all"), plus the melody track in its
        program's class when ``melody_in_mixture``. The file is kept only when it holds at
        least ``MIN_CLASSES`` classes (step 6, checked by the caller).
    """
    kept = [i for i, t in enumerate(tracks) if len(t) > MIN_TRACK_NOTES]  # step 1
    candidates = [tracks[i] for i in kept]
    if melody_program is not None:
        melody = track_with_program(candidates, melody_program)
    else:
        melody = find_melody(candidates, tpq)
    chosen: dict[int, int] = {}
    if melody is not None:
        chosen[MELODY] = kept[melody]  # step 2
    for k, track in enumerate(candidates):
        if k == melody:
            continue
        cls = track_class(track, instruments)  # steps 3-4
        if cls is None:
            continue
        if cls not in chosen or len(track) > len(tracks[chosen[cls]]):  # step 5
            chosen[cls] = kept[k]
    if check_option("class_tracks", class_tracks, CLASS_TRACKS) == "all":
        classes = _every_class_track(tracks, chosen.get(MELODY), instruments)
    else:
        classes = {cls: [index] for cls, index in chosen.items()}
    if melody_in_mixture and melody is not None:
        joins = track_class(candidates[melody], instruments)
        if joins is not None:
            classes.setdefault(joins, []).append(kept[melody])
    return classes


def _every_class_track(tracks: list[TrackNotes], melody: int | None,
                       instruments: InstrumentSet) -> dict[int, list[int]]:
    """``class_tracks`` "all": every track that holds a note, in track order, under its
    class (the melody track, when there is one, under the melody class only)."""
    classes: dict[int, list[int]] = {} if melody is None else {MELODY: [melody]}
    for i, track in enumerate(tracks):
        cls = track_class(track, instruments)
        if i != melody and cls is not None and len(track):
            classes.setdefault(cls, []).append(i)
    return classes


def track_class(track: TrackNotes | Track, instruments: InstrumentSet = PAPER) -> int | None:
    """The class a track is unified into by its channel and program (None: dropped)."""
    return instruments.class_of(track.program, track.is_drum)


def _unify(path: Path, tracks: list[TrackNotes], timing: Timing, melody_program: int | None,
           max_bars: int = MAX_SONG_BARS, melody_in_mixture: bool = False,
           class_tracks: ClassTracks = "largest", instruments: InstrumentSet = PAPER
           ) -> tuple[np.ndarray, np.ndarray, dict[int, list[int]]]:
    """Track unification (docs/data.md, steps 1-6) -> ``(roll, onsets, chosen)``.

    ``roll`` and ``onsets`` are bool ``[T, 72, n_instruments]``: the cells each class plays, and the
    first cell of each of its notes; ``chosen`` is :func:`choose_tracks`' answer.

    Raises:
        SkipFile: "too_few_instruments", or "too_long" (checked before the roll exists).
    """
    chosen = choose_tracks(tracks, timing.tpq, melody_program, melody_in_mixture, class_tracks,
                           instruments)
    if len(chosen) < MIN_CLASSES:  # step 6
        raise SkipFile(path, "too_few_instruments",
                       f"{len(chosen)} instrument class(es) after track unification, "
                       f"need {MIN_CLASSES}")
    cells = {cls: [_track_cells(tracks[i], timing.ticks_per_step) for i in indices]
             for cls, indices in chosen.items()}
    length = song_steps([c for parts in cells.values() for c in parts])
    reason = too_long(length, max_bars)
    if reason:
        raise SkipFile(path, "too_long", reason)
    roll = np.zeros((length, N_PITCH, instruments.n_instruments), dtype=bool)
    onsets = np.zeros((length, N_PITCH, instruments.n_instruments), dtype=bool)
    for cls, parts in cells.items():
        plane = np.zeros((length, N_PITCH), dtype=bool)
        for first, stop, rows in parts:
            paint_notes(plane, first, stop, rows)
            onsets[first, rows, cls] = True
        roll[..., cls] = plane
    return roll, onsets, chosen


def load_song(path: str | Path, melody_program: int | None = None,
              max_bars: int = MAX_SONG_BARS, notes: SongNotes | None = None,
              melody_in_mixture: bool = False, default_meter_4_4: bool = False,
              class_tracks: ClassTracks = "largest", instruments: InstrumentSet = PAPER
              ) -> UnifiedSong:
    """Convert one MIDI file by the data contract (docs/data.md).

    Args:
        path: a MIDI file.
        melody_program: GM program of the melody track (from a midi-miner style JSON);
            None runs the melody detector of :mod:`data.melody`.
        max_bars: longest song accepted, in bars (module docstring).
        notes: the file already read by :func:`read_notes` (not read again).
        melody_in_mixture: the melody track also joins its program's class
            (:func:`choose_tracks`).
        default_meter_4_4: a file without any time signature is 4/4 (the MIDI standard's
            default); off, the contract needs exactly one 4/4 signature.
        class_tracks: "largest" (the paper's) or "all" (:func:`choose_tracks`).
        instruments: the classes (default the paper's five).

    Returns:
        The :class:`UnifiedSong`, roll bool ``[T, 72, n_instruments]`` (``T`` may be 0
        when no note of the kept tracks lies inside the pitch range).

    Raises:
        MidiError: unreadable, empty, truncated or not MIDI.
        SkipFile: filtered out -- reason "not_4_4", "too_few_instruments" or "too_long".
    """
    path = Path(path)
    notes = read_notes(path) if notes is None else notes
    timing = notes.timing()
    if not (timing.is_4_4() or (default_meter_4_4 and not timing.time_signatures)):
        found = describe_time_signatures(timing.time_signatures)
        if not timing.time_signatures:
            found += " (the build option default_meter_4_4 reads such a file as 4/4)"
        raise SkipFile(path, "not_4_4", f"needs exactly one 4/4 time signature, found {found}")
    roll, onsets, chosen = _unify(path, notes.track_notes(), timing, melody_program, max_bars,
                                  melody_in_mixture, class_tracks, instruments)
    return UnifiedSong(name=path.stem, roll=roll, timing=timing, has_melody=MELODY in chosen,
                onsets=onsets, class_tracks=chosen, n_unclosed=notes.n_unclosed)


def load_mixture(path: str | Path, max_bars: int = MAX_SONG_BARS,
                 notes: SongNotes | None = None, instruments: InstrumentSet = PAPER
                 ) -> tuple[np.ndarray, np.ndarray | None, Timing]:
    """Read any MIDI file as a mixture to separate.

    The mixture is the OR of every pitched note of every track (no note-count or program
    filter; pitches outside 24..95 dropped) and of every drum track through the drum
    merge (rows 63..71). The reference is the unified multitrack roll of the same file
    (track unification of docs/data.md, melody detector, without the 4/4 corpus filter)
    when the file has enough instrument classes, else None.

    Args:
        path: a MIDI file (any meter; one without a time signature is taken as 4/4).
        max_bars: longest song accepted, in bars (module docstring).
        notes: the file already read by :func:`read_notes` (not read again).
        instruments: the classes of the reference (default the paper's five).

    Returns:
        ``(mixture, reference, timing)``: bool ``[T, 72]``, bool ``[T, 72, n_instruments]`` or None
        (same ``T``), and the file's :class:`Timing`.

    Raises:
        MidiError: not MIDI, truncated/corrupt, no note inside the pitch range, or longer
            than ``max_bars`` (reason "too_long", raised before any roll is allocated).
    """
    path = Path(path)
    notes = read_notes(path) if notes is None else notes
    timing = notes.timing()
    if not timing.time_signatures:
        timing.time_signatures = [(0, 4, 4)]
    tracks = notes.track_notes()
    cells = [_track_cells(t, timing.ticks_per_step) for t in tracks]
    length = song_steps(cells)
    reason = too_long(length, max_bars)
    if reason:
        raise MidiError(path, "too_long", reason)
    if length == 0:
        raise MidiError(path, "empty", "no notes inside the pitch range "
                        f"{PITCH_LOW}..{PITCH_HIGH} or on the kept drum keys")
    mixture = np.zeros((length, N_PITCH), dtype=bool)
    for first, stop, rows in cells:
        paint_notes(mixture, first, stop, rows)
    try:
        reference, _, _ = _unify(path, tracks, timing, None, max_bars,
                                 instruments=instruments)
    except SkipFile:
        return mixture, None, timing
    padded = np.zeros((length, N_PITCH, instruments.n_instruments), dtype=bool)
    padded[: reference.shape[0]] = reference[:length]
    return mixture, padded, timing


# ----------------------------------------------------------------------------- notes on the grid
def nearest_rows(notes: SongNotes) -> np.ndarray:
    """Row of every pitched note, clamped into the roll: pitches below 24 -> row 0,
    above 95 -> row 71. Drum notes keep :meth:`SongNotes.rows` (-1 for unkept keys).

    Returns:
        int64 ``[K]``.
    """
    clamped = np.clip(notes.pitch, PITCH_LOW, PITCH_HIGH) - PITCH_LOW
    return np.where(notes.is_drum, notes.rows(), clamped)


def out_of_range(notes: SongNotes) -> np.ndarray:
    """bool ``[K]``: pitched notes outside MIDI 24..95 (the rows the model covers)."""
    return ~notes.is_drum & ((notes.pitch < PITCH_LOW) | (notes.pitch > PITCH_HIGH))


def notes_roll(first: np.ndarray, stop: np.ndarray, rows: np.ndarray, instrument: np.ndarray,
               begin: int, end: int, n_music: int = PAPER.n_music) -> np.ndarray:
    """Paint notes into a roll of the steps ``begin .. end - 1`` (for pictures).

    Args:
        first, stop: int ``[K]`` grid steps of each note (stop exclusive).
        rows: int ``[K]`` row of each note; notes with row -1 are left out.
        instrument: int ``[K]`` contract class of each note (1..n_music).
        begin, end: the excerpt's steps.
        n_music: the set's classes (default the paper's five).

    Returns:
        bool ``[end - begin, 72, n_music]`` (instrument channels 1..n_music of the contract).
    """
    roll = np.zeros((max(end - begin, 0), N_PITCH, n_music), dtype=bool)
    inside = (rows >= 0) & (first < end) & (stop > begin)
    a = np.clip(first, begin, end) - begin  # clipped into the excerpt
    b = np.clip(stop, begin, end) - begin
    for cls in range(1, n_music + 1):
        mine = inside & (instrument == cls)
        plane = roll[..., cls - 1]  # a view: painted in place
        paint_notes(plane, a[mine], b[mine], rows[mine])
    return roll
