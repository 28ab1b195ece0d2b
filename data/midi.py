"""MIDI files -> notes -> piano rolls (docs/data.md).

One reading: :func:`read_score` parses a file with symusic (a C++ MIDI parser, ticks kept
exact) and :func:`notes_from_score` walks its tracks once into :class:`SongNotes`, every
note of every track with its own pitch, ticks and velocity, each track's controllers and
pitch bends, and the score's tempo map, time and key signatures (:func:`read_notes` does
both). Everything else is derived from those notes: the timing
(:meth:`SongNotes.timing`), the tracks that track unification chooses from
(:meth:`SongNotes.track_notes`), and in :mod:`data.song_roll` the contract's song roll
(:func:`data.song_roll.load_song`) and the mixture of any file
(:func:`data.song_roll.load_mixture`). symusic splits a MIDI track into one track
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
    PITCH_HIGH,
    PITCH_LOW,
    STEPS_PER_BEAT,
    drum_row,
)
from data.errors import UserError
from data.fileio import not_a_file, path_kind
from data.melody import Track, TrackNotes
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


# ----------------------------------------------------------------------------- the grid
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
