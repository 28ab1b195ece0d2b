"""MIDI files -> notes -> piano rolls (docs/data.md).

One reading: :func:`read_score` parses a file with symusic (a C++ MIDI parser, ticks kept
exact) and :func:`notes_from_score` walks its tracks once into :class:`SongNotes`, every
note of every track with its own pitch, ticks and velocity, each track's controllers and
pitch bends, and the score's tempo map, time and key signatures (:func:`read_notes` does
both). Everything else is derived from those notes: the timing
(:meth:`SongNotes.timing`), the tracks that track unification chooses from
(:meth:`SongNotes.track_notes`), the contract's song roll (:func:`load_song`) and the
mixture of any file (:func:`load_mixture`). symusic splits a MIDI track into one track
per channel and program, so a program change inside a track starts a new source track.
Writing is :mod:`data.notes`.

Malformed input: files that do not start with an ``MThd`` (or RIFF ``RMID``) header are
rejected before parsing, and symusic reports corrupt or truncated data as a Python
exception (checked by fuzzing truncated and byte-flipped files), which becomes a
:class:`MidiError`.

Quantisation is in ticks: one step is ``tpq / 4`` ticks (a 16th note); a note covers the
steps ``round(start / step)`` to ``round(end / step)`` (end exclusive, halves rounded up),
at least one step. Tempo changes therefore do not move notes off the grid (the release
quantised in seconds and drifted). Bars are counted in 4/4 from tick 0.

Hostile input is bounded before it costs time or memory: a song longer than ``max_bars``
(default :data:`data.contract.MAX_SONG_BARS`) is refused as ``"too_long"`` from its note
arrays alone, before any array of the song's length exists; every per-event step (tempo
map, time signatures) is linear in the number of events; a header with 0 ticks per quarter
note is unreadable, and tempo events of 0 microseconds per quarter note (no meaning in
MIDI) are ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import symusic

from data.contract import (
    DRUM,
    MAX_SONG_BARS,
    MELODY,
    MIN_CLASSES,
    MIN_TRACK_NOTES,
    N_INSTRUMENTS,
    N_PITCH,
    PITCH_HIGH,
    PITCH_LOW,
    PROGRAM_FAMILY,
    STEPS_PER_BAR,
    STEPS_PER_BEAT,
    drum_row,
)
from data.errors import UserError
from data.fileio import not_a_file, path_kind
from data.melody import Track, TrackNotes, find_melody, track_with_program
from data.midi_events import count_note_ons, smpte_division

DEFAULT_QPM = 120.0  # MIDI's tempo before the first tempo event
MAX_FILE_BYTES = 32 * 2**20  # largest MIDI file read (read_score's default limit)
HEADER_BYTES = 12  # bytes read to recognise a file: "MThd", or "RIFF" size "RMID"
# song_steps() of a file whose tick counter ran past 2**31: symusic keeps ticks in int32,
# which wrap to negative values there
WRAPPED_STEPS = np.iinfo(np.int64).max
# GM drum key -> row 63..71 (after merging), -1 for keys that are not kept
_DRUM_ROW = np.array([drum_row(k) if drum_row(k) is not None else -1 for k in range(128)],
                     dtype=np.int64)


class MidiError(UserError):
    """A file that cannot be read as MIDI music.

    Attributes:
        reason: "not_midi", "unreadable", "truncated", "empty" or "too_long".
        path: the file.
    """

    def __init__(self, path: str | Path, reason: str, detail: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {detail}")


class SkipFile(UserError):  # noqa: N818 -- a filter outcome, not an error
    """A readable file that the data contract filters out.

    Attributes:
        reason: "not_4_4", "too_few_instruments" or "too_long".
        path: the file.
    """

    def __init__(self, path: str | Path, reason: str, detail: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {detail}")


@dataclass
class Timing:
    """Timing of a MIDI file.

    Attributes:
        tpq: ticks per quarter note.
        tempos: ``[(tick, qpm), ...]`` sorted, first at tick 0.
        time_signatures: ``[(tick, numerator, denominator), ...]`` as found in the file.
    """

    tpq: int
    tempos: list[tuple[int, float]] = field(default_factory=lambda: [(0, DEFAULT_QPM)])
    time_signatures: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def ticks_per_step(self) -> float:
        """Ticks in one 16th-note step (``tpq / 4``)."""
        return self.tpq / STEPS_PER_BEAT

    def tick_to_seconds(self, ticks: np.ndarray) -> np.ndarray:
        """Seconds at the given ticks, following the tempo map. float64, same shape."""
        ticks = np.asarray(ticks, dtype=np.float64)
        bounds = np.array([t for t, _ in self.tempos], dtype=np.float64)
        sec_per_tick = 60.0 / (np.array([q for _, q in self.tempos]) * self.tpq)
        # seconds elapsed at each tempo boundary
        at_bound = np.concatenate(([0.0], np.cumsum(np.diff(bounds) * sec_per_tick[:-1])))
        seg = np.clip(np.searchsorted(bounds, ticks, side="right") - 1, 0, None)
        return at_bound[seg] + (ticks - bounds[seg]) * sec_per_tick[seg]

    def step_to_seconds(self, steps: np.ndarray) -> np.ndarray:
        """Seconds at the start of the given grid steps (float64, same shape as ``steps``)."""
        return self.tick_to_seconds(np.asarray(steps, dtype=np.float64) * self.ticks_per_step)

    def is_4_4(self) -> bool:
        """Whether the file has exactly one time signature and it is 4/4 (docs/data.md)."""
        return (len(self.time_signatures) == 1
                and self.time_signatures[0][1:] == (4, 4))


@dataclass
class Song:
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


# ----------------------------------------------------------------------------- reading
def read_score(path: str | Path, max_bytes: int | None = MAX_FILE_BYTES,
               max_notes: int | None = None) -> symusic.Score:
    """Parse a MIDI file with symusic (ticks), turning every failure into a MidiError.

    The header is checked from the file's first bytes and the size against ``max_bytes``
    before the file is read, so a huge file that is not MIDI, or is too large, costs
    nothing. A RIFF ``RMID`` file is unwrapped: its ``data`` chunk is parsed.

    Args:
        path: the file.
        max_bytes: largest file accepted, in bytes (None: no limit).
        max_notes: most notes accepted (None: no limit); counted on the parsed score,
            before any array of the song's size exists.

    Raises:
        MidiError: reasons "unreadable", "empty", "not_midi", "too_large", "truncated",
            "smpte", "too_many_notes".
    """
    return _parse(Path(path), read_midi_bytes(path, max_bytes), max_notes)


def read_midi_bytes(path: str | Path, max_bytes: int | None = MAX_FILE_BYTES) -> bytes:
    """The standard MIDI file's bytes (``MThd`` first, a RIFF ``RMID`` file unwrapped),
    within ``max_bytes``; see :func:`read_score`. A folder, FIFO or device is refused
    before it is opened (a FIFO would wait for a writer)."""
    path = Path(path)
    kind = path_kind(path)
    if kind not in ("file", "missing"):
        raise MidiError(path, "unreadable", not_a_file(path, "input"))
    try:
        with path.open("rb") as fh:
            head = fh.read(HEADER_BYTES)
            if not head:
                raise MidiError(path, "empty", "file is empty")
            riff = head.startswith(b"RIFF") and head[8:12] == b"RMID"
            if not (head.startswith(b"MThd") or riff):
                raise MidiError(path, "not_midi", "not a MIDI file (no MThd header)")
            size = os.fstat(fh.fileno()).st_size
            if max_bytes is not None and size > max_bytes:
                raise MidiError(path, "too_large", f"file is {size:,} bytes, over the limit "
                                f"of {max_bytes:,} bytes")
            # the size it had (one byte more, which a file growing meanwhile shows), never
            # more than the limit: a buffer of the file's size, not of the limit
            limit = size if max_bytes is None else min(size, max_bytes)
            data = head + fh.read(max(limit + 1 - len(head), 0))
    except OSError as exc:
        raise MidiError(path, "unreadable", f"cannot read file ({exc.strerror})") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise MidiError(path, "too_large", f"file is over the limit of {max_bytes:,} bytes")
    return _riff_midi(path, data) if riff else data


def _parse(path: Path, data: bytes, max_notes: int | None) -> symusic.Score:
    """symusic's score of a standard MIDI file's bytes; see :func:`read_score`."""
    smpte = smpte_division(data)
    if smpte is not None:
        raise MidiError(path, "smpte", f"SMPTE time division ({smpte[0]} frames per second, "
                        f"{smpte[1]} ticks per frame): time counted in frames has no beats "
                        f"or bars; save the file with ticks per quarter note")
    try:
        score = symusic.Score.from_midi(data)
    except Exception as exc:  # symusic raises RuntimeError/ValueError for corrupt data
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        lowered = text.lower()
        reason = "truncated" if ("eof" in lowered or "less than" in lowered
                                 or "remaining" in lowered) else "unreadable"
        raise MidiError(path, reason, f"corrupt MIDI data ({text})") from None
    if score.ticks_per_quarter <= 0:  # every tick -> step conversion divides by it
        raise MidiError(path, "unreadable", "corrupt MIDI header (0 ticks per quarter note)")
    if max_notes is not None:
        n_notes = sum(len(track.notes) for track in score.tracks)
        if n_notes > max_notes:
            raise MidiError(path, "too_many_notes", f"file has {n_notes:,} notes, over the "
                            f"limit of {max_notes:,}")
    return score


def _riff_midi(path: Path, data: bytes) -> bytes:
    """The standard MIDI file inside a RIFF ``RMID`` file: its ``data`` chunk.

    Raises:
        MidiError: no ``data`` chunk holding an ``MThd`` header ("not_midi"), or a chunk
            that runs past the end of the file ("truncated").
    """
    pos = HEADER_BYTES  # "RIFF", size, "RMID", then chunks: id, little-endian size, payload
    while pos + 8 <= len(data):
        chunk, size = data[pos: pos + 4], int.from_bytes(data[pos + 4: pos + 8], "little")
        body = data[pos + 8: pos + 8 + size]
        if chunk == b"data":
            if len(body) < size:
                raise MidiError(path, "truncated", "corrupt RIFF MIDI file (its data chunk "
                                "runs past the end of the file)")
            if not body.startswith(b"MThd"):
                raise MidiError(path, "not_midi", "RIFF MIDI file whose data chunk has no "
                                "MThd header")
            return body
        pos += 8 + size + (size & 1)  # chunks are padded to an even length
    raise MidiError(path, "not_midi", "RIFF MIDI file without a data chunk")


@dataclass
class SourceTrack(Track):
    """One track of the input as symusic reads it (one channel and program), besides
    :class:`data.melody.Track`'s attributes.

    Attributes:
        controls: int64 ``[C, 3]`` controller events ``(tick, number, value)``.
        bends: int64 ``[B, 2]`` pitch bends ``(tick, value)`` (value -8192..8191).
    """

    controls: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=np.int64))
    bends: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))


@dataclass
class SongNotes:
    """Every note of a MIDI file, flat, with what is needed to write them back.

    Note arrays are int64 ``[K]`` (``is_drum`` bool ``[K]``), in track order, and within a
    track in symusic's order; ``index`` is the note's position in its track.

    Attributes:
        tpq: ticks per quarter note.
        track: source track of each note (index into ``tracks``).
        index: position of each note in its track.
        pitch: MIDI pitch (drum key on drum tracks).
        start: note-on tick.
        end: note-off tick (``end >= start``).
        velocity: note-on velocity 1..127.
        is_drum: whether the note's track is a drum track.
        tracks: the source tracks.
        tempos: int64 ``[M, 2]`` ``(tick, microseconds per quarter)``, as in the file
            (less events of 0 microseconds or past 2**31 ticks, which have no meaning).
        time_signatures: ``[(tick, numerator, denominator), ...]`` as in the file.
        key_signatures: ``[(tick, key, tonality), ...]``: key = sharps (> 0) or flats
            (< 0), tonality 0 major / 1 minor.
        n_lyrics: lyric events in the file (not written back).
        n_markers: marker events in the file (not written back).
        n_unclosed: note-ons never closed by a note-off, which have no note here
            (counted by :func:`read_notes`; 0 when the notes come from a score).
    """

    tpq: int
    track: np.ndarray
    index: np.ndarray
    pitch: np.ndarray
    start: np.ndarray
    end: np.ndarray
    velocity: np.ndarray
    is_drum: np.ndarray
    tracks: list[SourceTrack]
    tempos: np.ndarray
    time_signatures: list[tuple[int, int, int]]
    key_signatures: list[tuple[int, int, int]]
    n_lyrics: int = 0
    n_markers: int = 0
    n_unclosed: int = 0

    def __len__(self) -> int:
        return int(self.pitch.size)

    def steps(self) -> tuple[np.ndarray, np.ndarray]:
        """Grid steps of every note: ``(first, stop)`` int64 ``[K]`` (data contract)."""
        return quantise(self.start, self.end, self.tpq / STEPS_PER_BEAT)

    def rows(self) -> np.ndarray:
        """Roll row of every note, int64 ``[K]``: 0..71, or -1 outside the roll."""
        return pitch_rows(self.pitch, self.is_drum)

    def timing(self) -> Timing:
        """The song's :class:`Timing`, in time linear in the number of events.

        Duplicate events at one tick collapse (the last tempo at a tick wins; repeated time
        signatures are kept once, in file order). Time signatures past 2**31 ticks (their
        ticks wrapped to negative values, long after any song that is accepted) are
        ignored, as :func:`notes_from_score` ignores such tempos.
        """
        tempos = {tick: 60e6 / mspq for tick, mspq in self.tempos.tolist()}  # last wins
        if 0 not in tempos:
            # before the first valid tempo event MIDI plays at 120 bpm
            tempos[0] = DEFAULT_QPM
        # duplicates dropped, first-seen order kept
        signatures = list(dict.fromkeys(ts for ts in self.time_signatures if ts[0] >= 0))
        return Timing(tpq=self.tpq, tempos=sorted(tempos.items()), time_signatures=signatures)

    def track_notes(self) -> list[TrackNotes]:
        """Every source track with its notes, for track unification (:func:`choose_tracks`);
        the tick and pitch arrays are views of the flat ones."""
        bounds = np.searchsorted(self.track, np.arange(1, len(self.tracks)))
        columns = (np.split(a, bounds) for a in (self.start, self.end, self.pitch))
        return [TrackNotes(name=t.name, program=t.program, is_drum=t.is_drum, start=start,
                           end=end, pitch=pitch)
                for t, start, end, pitch in zip(self.tracks, *columns)]


def notes_from_score(score: symusic.Score) -> SongNotes:
    """The :class:`SongNotes` of a parsed score (ticks): the one walk over its tracks."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in
                                          ("track", "index", "pitch", "start", "end",
                                           "velocity", "is_drum")}
    tracks: list[SourceTrack] = []
    n_lyrics = 0
    for t, track in enumerate(score.tracks):
        notes = track.notes.numpy()
        start = notes["time"].astype(np.int64)
        n = start.size
        parts["track"].append(np.full(n, t, dtype=np.int64))
        parts["index"].append(np.arange(n, dtype=np.int64))
        parts["pitch"].append(notes["pitch"].astype(np.int64))
        parts["start"].append(start)
        parts["end"].append(start + notes["duration"].astype(np.int64))
        parts["velocity"].append(notes["velocity"].astype(np.int64))
        parts["is_drum"].append(np.full(n, bool(track.is_drum)))
        controls = track.controls.numpy()
        bends = track.pitch_bends.numpy()
        tracks.append(SourceTrack(
            name=str(track.name), program=int(track.program), is_drum=bool(track.is_drum),
            controls=np.stack([controls["time"], controls["number"], controls["value"]],
                              axis=1).astype(np.int64).reshape(-1, 3),
            bends=np.stack([bends["time"], bends["value"]], axis=1).astype(np.int64)
            .reshape(-1, 2)))
        n_lyrics += len(track.lyrics)
    flat = {k: (np.concatenate(v) if v else np.zeros(0, dtype=bool if k == "is_drum"
                                                     else np.int64))
            for k, v in parts.items()}
    tempos = score.tempos.numpy()
    tempo_map = np.stack([tempos["time"], tempos["mspq"]], axis=1).astype(np.int64).reshape(-1, 2)
    # 0 microseconds per quarter (invalid MIDI) or a tick past 2**31 (wrapped to a negative
    # tick) has no meaning: dropped, so the tempo before stays in force
    tempo_map = tempo_map[(tempo_map[:, 0] >= 0) & (tempo_map[:, 1] > 0)]
    return SongNotes(
        tpq=int(score.ticks_per_quarter), tracks=tracks,
        tempos=tempo_map,
        time_signatures=[(int(ts.time), int(ts.numerator), int(ts.denominator))
                         for ts in score.time_signatures],
        key_signatures=[(int(ks.time), int(ks.key), int(ks.tonality))
                        for ks in score.key_signatures],
        n_lyrics=n_lyrics, n_markers=len(score.markers), **flat)


def read_notes(path: str | Path, max_bytes: int | None = MAX_FILE_BYTES,
               max_notes: int | None = None) -> SongNotes:
    """Read a MIDI file as its :class:`SongNotes` (:func:`read_score`, then
    :func:`notes_from_score`; same arguments and errors as :func:`read_score`), with
    ``n_unclosed``, the notes the parser dropped because they were never closed."""
    data = read_midi_bytes(path, max_bytes)
    score = _parse(Path(path), data, max_notes)  # refused over the limits before the count
    note_ons = count_note_ons(data)
    del data
    notes = notes_from_score(score)
    notes.n_unclosed = max(note_ons - len(notes), 0)
    return notes


def describe_time_signatures(signatures: list[tuple[int, int, int]], shown: int = 3) -> str:
    """A short description of time-signature events, e.g. ``"4/4 at tick 0, 3/4 at tick 1920"``.

    At most ``shown`` events are written out, so a file with 200,000 of them still gives
    a one-line message.

    Args:
        signatures: ``[(tick, numerator, denominator), ...]``.
        shown: events written out before the count.
    """
    if not signatures:
        return "none"
    text = ", ".join(f"{n}/{d} at tick {t}" for t, n, d in signatures[:shown])
    if len(signatures) > shown:
        text += f", ... ({len(signatures)} events)"
    return text


def unclosed_warning(path: str | Path, n_unclosed: int) -> str | None:
    """The warning line for a file with notes never closed (``SongNotes.n_unclosed``)."""
    if not n_unclosed:
        return None
    return (f"{path}: {n_unclosed:,} note(s) never closed (a note-on without its note-off) "
            f"dropped")


# ----------------------------------------------------------------------------- gridding
def quantise(start: np.ndarray, end: np.ndarray, ticks_per_step: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """Ticks -> grid steps: rounded start and end (halves up), at least one step.

    Args:
        start: int ``[K]`` note-on ticks.
        end: int ``[K]`` note-off ticks.
        ticks_per_step: ``tpq / 4``.

    Returns:
        ``(first, stop)``: int64 ``[K]`` each; a note covers steps ``first .. stop - 1``.
    """
    first = np.floor(np.asarray(start) / ticks_per_step + 0.5).astype(np.int64)
    stop = np.floor(np.asarray(end) / ticks_per_step + 0.5).astype(np.int64)
    return first, np.maximum(stop, first + 1)


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


def pitch_rows(pitch: np.ndarray, is_drum: bool | np.ndarray) -> np.ndarray:
    """Roll row of each note: pitch - 24 for pitched notes, the drum merge for drum notes.

    Args:
        pitch: int ``[K]`` MIDI pitches (drum keys for drum notes).
        is_drum: bool, for all notes or per note ``[K]``.

    Returns:
        int64 ``[K]``: row 0..71, or -1 for a note outside the roll (a pitch outside
        24..95, or a drum key that the merge does not keep).
    """
    pitch = np.asarray(pitch, dtype=np.int64)
    pitched = np.where((pitch >= PITCH_LOW) & (pitch <= PITCH_HIGH), pitch - PITCH_LOW, -1)
    return np.where(is_drum, _DRUM_ROW[np.clip(pitch, 0, 127)], pitched)


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
                  melody_in_mixture: bool = False) -> dict[int, list[int]]:
    """Track unification, steps 1-5 (docs/data.md): which tracks become which class.

    Args:
        tracks: every track of the file (:meth:`SongNotes.track_notes`).
        tpq: ticks per quarter note (for the melody detector).
        melody_program: GM program of the melody track, or None to run the detector.
        melody_in_mixture: the melody track also joins the class its program names
            (piano, guitar, bass or strings; another program joins none), its notes merged
            with that class's own track, so the tune is part of the mixture. Off: the
            paper's contract, the melody is kept apart.

    Returns:
        ``{class (contract index 0..5): [indices into tracks]}``: one track per class,
        plus the melody track in its program's class when ``melody_in_mixture``. The file
        is kept only when it holds at least ``MIN_CLASSES`` classes (step 6, checked by
        the caller).
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
        cls = _track_class(track)  # steps 3-4
        if cls is None:
            continue
        if cls not in chosen or len(track) > len(tracks[chosen[cls]]):  # step 5
            chosen[cls] = kept[k]
    classes = {cls: [index] for cls, index in chosen.items()}
    if melody_in_mixture and melody is not None:
        joins = _track_class(candidates[melody])
        if joins is not None:
            classes.setdefault(joins, []).append(kept[melody])
    return classes


def _track_class(track: TrackNotes) -> int | None:
    """The class a track is unified into by its channel and program (None: dropped)."""
    return DRUM if track.is_drum else PROGRAM_FAMILY.get(track.program // 8)


def _unify(path: Path, tracks: list[TrackNotes], timing: Timing, melody_program: int | None,
           max_bars: int = MAX_SONG_BARS, melody_in_mixture: bool = False
           ) -> tuple[np.ndarray, np.ndarray, dict[int, list[int]]]:
    """Track unification (docs/data.md, steps 1-6) -> ``(roll, onsets, chosen)``.

    ``roll`` and ``onsets`` are bool ``[T, 72, 6]``: the cells each class plays, and the
    first cell of each of its notes; ``chosen`` is :func:`choose_tracks`' answer.

    Raises:
        SkipFile: "too_few_instruments", or "too_long" (checked before the roll exists).
    """
    chosen = choose_tracks(tracks, timing.tpq, melody_program, melody_in_mixture)
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
    roll = np.zeros((length, N_PITCH, N_INSTRUMENTS), dtype=bool)
    onsets = np.zeros((length, N_PITCH, N_INSTRUMENTS), dtype=bool)
    for cls, parts in cells.items():
        plane = np.zeros((length, N_PITCH), dtype=bool)
        for first, stop, rows in parts:
            paint_notes(plane, first, stop, rows)
            onsets[first, rows, cls] = True
        roll[..., cls] = plane
    return roll, onsets, chosen


def load_song(path: str | Path, melody_program: int | None = None,
              max_bars: int = MAX_SONG_BARS, notes: SongNotes | None = None,
              melody_in_mixture: bool = False, default_meter_4_4: bool = False) -> Song:
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

    Returns:
        The :class:`Song`, roll bool ``[T, 72, 6]`` (``T`` may be 0 when no note of the
        kept tracks lies inside the pitch range).

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
                                  melody_in_mixture)
    return Song(name=path.stem, roll=roll, timing=timing, has_melody=MELODY in chosen,
                onsets=onsets, class_tracks=chosen, n_unclosed=notes.n_unclosed)


def load_mixture(path: str | Path, max_bars: int = MAX_SONG_BARS,
                 notes: SongNotes | None = None) -> tuple[np.ndarray, np.ndarray | None, Timing]:
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

    Returns:
        ``(mixture, reference, timing)``: bool ``[T, 72]``, bool ``[T, 72, 6]`` or None
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
        reference, _, _ = _unify(path, tracks, timing, None, max_bars)
    except SkipFile:
        return mixture, None, timing
    padded = np.zeros((length, N_PITCH, N_INSTRUMENTS), dtype=bool)
    padded[: reference.shape[0]] = reference[:length]
    return mixture, padded, timing
