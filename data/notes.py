"""A MIDI file as its list of notes, and the same notes written back by instrument.

Reading keeps everything a note-level separation needs to give the user's music back:
every note of every track with its own pitch, start and end tick and velocity, each
track's controllers and pitch bends, and the score's ticks per quarter, tempo map (exact
microseconds per quarter), time signatures and key signatures
(:func:`notes_from_score`, from the score :func:`data.midi.read_score` parses once for the
mixture and the notes alike). Parsing is symusic's, which splits a MIDI track into one
track per channel and program, so a program change inside a track starts a new source
track.

Writing (:func:`separated_midi`, encoded with numpy, so ticks and channels are exactly as
given and time and memory stay linear in the number of events) puts every note exactly
once on the track of the instrument it was given, with
the render programs of the data contract and the drum track on channel 10. MIDI pairs a
note-off with a note-on by track, channel and pitch, so two notes of one pitch that
overlap on one track cannot be told apart by every reader (the pretty_midi reader, for
one, ends both at the first note-off). A note that would overlap another note of its
pitch on its instrument's track therefore goes to an extra track of the same instrument
on the same channel ("piano 2", ...), which keeps every note exact in any reader;
controllers and pitch bends act on a channel, so they are written once, on the
instrument's main track.

Grid: a note covers the steps of :func:`data.midi.quantise` (the data contract's
quantisation) at the row of :func:`data.midi.pitch_rows`.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import symusic

from data.contract import (
    BASS,
    DRUM,
    GUITAR,
    INSTRUMENTS,
    N_PITCH,
    PIANO,
    PITCH_HIGH,
    PITCH_LOW,
    RENDER_PROGRAM,
    STEPS_PER_BEAT,
    STRING,
)
from data.melody import Track
from data.midi import paint_notes, pitch_rows, quantise, writable_meters

# MIDI channel (0-based) of each instrument's tracks; 9 is General MIDI's drum channel 10
OUTPUT_CHANNEL: dict[int, int] = {PIANO: 0, GUITAR: 1, BASS: 2, STRING: 3, DRUM: 9}


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

    def __len__(self) -> int:
        return int(self.pitch.size)

    def steps(self) -> tuple[np.ndarray, np.ndarray]:
        """Grid steps of every note: ``(first, stop)`` int64 ``[K]`` (data contract)."""
        return quantise(self.start, self.end, self.tpq / STEPS_PER_BEAT)

    def rows(self) -> np.ndarray:
        """Roll row of every note, int64 ``[K]``: 0..71, or -1 outside the roll."""
        return pitch_rows(self.pitch, self.is_drum)


def notes_from_score(score: symusic.Score) -> SongNotes:
    """The :class:`SongNotes` of a parsed score (ticks)."""
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
    # 0 microseconds per quarter (invalid MIDI) or a tick past 2**31 has no meaning: dropped,
    # as data.midi.score_timing ignores them, so the tempo before stays in force
    tempo_map = tempo_map[(tempo_map[:, 0] >= 0) & (tempo_map[:, 1] > 0)]
    return SongNotes(
        tpq=int(score.ticks_per_quarter), tracks=tracks,
        tempos=tempo_map,
        time_signatures=[(int(ts.time), int(ts.numerator), int(ts.denominator))
                         for ts in score.time_signatures],
        key_signatures=[(int(ks.time), int(ks.key), int(ks.tonality))
                        for ks in score.key_signatures],
        n_lyrics=n_lyrics, n_markers=len(score.markers), **flat)


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


# ----------------------------------------------------------------------------- writing
MAX_DELTA = 2**28 - 1  # largest delta time a MIDI variable-length quantity holds
MAX_TRACKS = 2**16 - 1  # tracks a MIDI file header can count


@dataclass
class OutputTrack:
    """One track of a separated file.

    Attributes:
        name: instrument name, with the layer number from the second layer on.
        instrument: contract class (1..5).
        layer: 0 for the instrument's main track, 1.. for the overlap tracks.
        n_notes: notes on the track.
        sources: source tracks whose notes it holds (indices into ``SongNotes.tracks``).
        n_controls: controller events copied to it (the main track of an instrument
            carries those of every source track of the instrument's notes; an overlap
            track shares its channel, so it carries none).
        n_bends: pitch bends copied to it (likewise).
    """

    name: str
    instrument: int
    layer: int
    n_notes: int
    sources: list[int]
    n_controls: int
    n_bends: int


@dataclass
class EncodedMidi:
    """A standard MIDI file, encoded.

    Attributes:
        data: the file's bytes.
        n_tracks: tracks in the file (the tempo track included).
    """

    data: bytes
    n_tracks: int

    def save(self, filename: str | Path | None = None, file: BinaryIO | None = None) -> None:
        """Write the file to ``filename`` or to the open binary ``file`` (as mido's)."""
        if file is not None:
            file.write(self.data)
        elif filename is not None:
            Path(filename).write_bytes(self.data)
        else:
            raise ValueError("save: give a filename or a file")


def overlap_layers(pitch: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Smallest layer per note so that no two notes of one pitch in a layer collide.

    Two notes of one pitch collide when they overlap, or when one of them has no length
    and touches the other; a note may start exactly where the previous one ends, and
    exact duplicates (same start and end, not zero-length) share a layer, since every
    reader pairs their note-ons and note-offs the same way.

    Each note is the closed interval ``[4 start + 1, 4 end - 1]`` (a zero-length note
    ``[4 start - 1, 4 start + 1]``), so that colliding is intersecting; notes taken in
    order of these intervals each go to the lowest free layer (first fit, which needs no
    more layers than the most notes of one pitch that collide at one moment). Time
    ``O(K log K)``; pitches whose notes never collide take no Python loop at all.

    Args:
        pitch, start, end: int ``[K]`` notes of one instrument.

    Returns:
        int64 ``[K]`` layer of each note (0 for most notes).
    """
    pitch = np.asarray(pitch, dtype=np.int64)
    start = np.asarray(start, dtype=np.int64)
    end = np.asarray(end, dtype=np.int64)
    layer = np.zeros(pitch.size, dtype=np.int64)
    if pitch.size < 2:
        return layer
    zero = end <= start
    lo = np.where(zero, 4 * start - 1, 4 * start + 1)
    hi = np.where(zero, 4 * start + 1, 4 * end - 1)
    order = np.lexsort((hi, lo, pitch))
    p, a, b, z = pitch[order], lo[order], hi[order], zero[order]
    same = p[1:] == p[:-1]
    duplicate = same & (a[1:] == a[:-1]) & (b[1:] == b[:-1]) & ~z[1:]
    # a note that collides with no earlier note of its pitch collides with none, if its
    # predecessor ends before it starts (notes are in order of their starts)
    collides = same & (b[:-1] >= a[1:]) & ~duplicate
    if not collides.any():
        return layer
    busy_pitches = np.unique(p[1:][collides])
    for q in busy_pitches.tolist():
        lo_k, hi_k = np.searchsorted(p, [q, q + 1])
        idx = order[lo_k:hi_k]
        layer[idx] = _first_fit(a[lo_k:hi_k].tolist(), b[lo_k:hi_k].tolist(),
                                z[lo_k:hi_k].tolist())
    return layer


def _first_fit(lo: list[int], hi: list[int], zero: list[bool]) -> list[int]:
    """First-fit layers of closed intervals sorted by ``(lo, hi)`` (see overlap_layers)."""
    out: list[int] = []
    busy: list[tuple[int, int]] = []  # (hi, layer) of the last interval of each busy layer
    free: list[int] = []  # layers whose last interval ended before the current one
    n_layers = 0
    prev = (None, None)
    for a, b, z in zip(lo, hi, zero):
        if not z and (a, b) == prev:  # an exact duplicate shares its twin's layer
            out.append(out[-1])
            continue
        while busy and busy[0][0] < a:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            j = heapq.heappop(free)
        else:
            j, n_layers = n_layers, n_layers + 1
        heapq.heappush(busy, (b, j))
        out.append(j)
        prev = (a, b)
    return out


# ranks of events at one tick: settings, then note-offs, note-ons, and the note-offs of
# zero-length notes last (their note-on comes first)
_RANK_META, _RANK_CONTROL, _RANK_OFF, _RANK_ON, _RANK_ZERO_OFF = range(5)
_MSG_BYTES = 7  # longest message written (a time signature: FF 58 04 nn dd cc bb)
_FILLER = np.array([0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0x01, 0x00], dtype=np.uint8)
"""An empty text event MAX_DELTA ticks after the previous event: carries longer gaps."""


class _Events:
    """Events of one track being built: ticks, ranks and message bytes, in arrays."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, tick: np.ndarray, rank: int | np.ndarray, *columns: np.ndarray | int
            ) -> None:
        """Add ``len(tick)`` messages whose bytes are ``columns`` (arrays or constants)."""
        tick = np.asarray(tick, dtype=np.int64).reshape(-1)
        msg = np.zeros((tick.size, _MSG_BYTES), dtype=np.uint8)
        for j, col in enumerate(columns):
            msg[:, j] = np.asarray(col, dtype=np.int64) & 0xFF
        ranks = np.broadcast_to(np.asarray(rank, dtype=np.int8), tick.shape)
        self.parts.append((tick, ranks, msg, np.full(tick.size, len(columns), dtype=np.int8)))

    def encode(self, prefix: bytes = b"") -> bytes:
        """The ``MTrk`` chunk: ``prefix`` (delta + event bytes) first, then the events in
        order of tick, then rank, then insertion, then end of track."""
        if self.parts:
            tick, rank, msg, size = (np.concatenate(c) for c in zip(*self.parts))
        else:
            tick, rank = np.zeros(0, np.int64), np.zeros(0, np.int8)
            msg, size = np.zeros((0, _MSG_BYTES), np.uint8), np.zeros(0, np.int8)
        if tick.size and int(tick.min()) < 0:
            raise ValueError("an event at a negative tick cannot be written")
        order = np.lexsort((np.arange(tick.size), rank, tick))
        tick, msg, size = tick[order], msg[order], size[order].astype(np.int64)
        delta = np.diff(tick, prepend=0)
        fill = np.where(delta > MAX_DELTA, (delta - 1) // MAX_DELTA, 0)
        rest = delta - fill * MAX_DELTA
        n_vlq = (1 + (rest >= 1 << 7).astype(np.int64) + (rest >= 1 << 14)
                 + (rest >= 1 << 21))
        length = fill * _FILLER.size + n_vlq + size
        offset = np.concatenate(([0], np.cumsum(length)[:-1])).astype(np.int64)
        out = np.empty(int(length.sum()), dtype=np.uint8)
        for k in np.flatnonzero(fill).tolist():  # rare: gaps of more than 2**28 ticks
            out[offset[k]: offset[k] + fill[k] * _FILLER.size] = np.tile(_FILLER, fill[k])
        pos = offset + fill * _FILLER.size
        for j in range(4):  # variable-length delta, most significant 7 bits first
            m = n_vlq > j
            shift = 7 * (n_vlq[m] - 1 - j)
            more = np.where(j < n_vlq[m] - 1, 0x80, 0)
            out[pos[m] + j] = ((rest[m] >> shift) & 0x7F) | more
        pos += n_vlq
        for j in range(_MSG_BYTES):
            m = size > j
            out[pos[m] + j] = msg[m, j]
        body = prefix + out.tobytes() + b"\x00\xff\x2f\x00"
        return b"MTrk" + len(body).to_bytes(4, "big") + body


def _meta_track(notes: SongNotes) -> bytes:
    """Track 0: the tempo map, time signatures and key signatures."""
    events = _Events()
    tempos = notes.tempos.reshape(-1, 2)
    mspq = np.clip(tempos[:, 1], 1, 0xFFFFFF)
    events.add(tempos[:, 0], _RANK_META, 0xFF, 0x51, 0x03, mspq >> 16, mspq >> 8, mspq)
    meters = np.array(writable_meters(notes.time_signatures), dtype=np.int64).reshape(-1, 3)
    log2 = np.array([int(d).bit_length() - 1 for d in meters[:, 2].tolist()], dtype=np.int64)
    events.add(meters[:, 0], _RANK_META, 0xFF, 0x58, 0x04, meters[:, 1], log2, 24, 8)
    keys = np.array([(t, k, m) for t, k, m in notes.key_signatures
                     if t >= 0 and -7 <= k <= 7 and m in (0, 1)],  # else meaningless
                    dtype=np.int64).reshape(-1, 3)
    events.add(keys[:, 0], _RANK_META, 0xFF, 0x59, 0x02, keys[:, 1], keys[:, 2])
    return events.encode()


def separated_midi(notes: SongNotes, instrument: np.ndarray,
                   layers: np.ndarray | None = None) -> tuple[EncodedMidi, list[OutputTrack]]:
    """Write every note on the track of its instrument (see the module docstring).

    A type-1 file at the input's ticks per quarter: track 0 holds the tempo map (exact
    microseconds per quarter), time and key signatures; then one track per instrument
    that receives notes, in contract order (piano, guitar, bass, string, drum), with its
    render program on its own channel (drums on channel 10); then the overlap layers, on
    their instrument's channel. The main track of an instrument carries the controllers
    and pitch bends of every source track its notes come from (merged in time order when
    there are several), once: the overlap tracks share its channel, so they carry none.
    Encoded with numpy, in time and memory linear in the number of events.

    Args:
        notes: the input's notes.
        instrument: int ``[K]`` contract class of each note (1..5; 5 = drum).
        layers: int ``[K]`` overlap layer of each note (:func:`note_layers`), when already
            computed.

    Returns:
        ``(midi, tracks)``: the encoded file and a description of each instrument track,
        in file order (after the tempo track).

    Raises:
        ValueError: an instrument outside 1..5, a note at a negative tick, or more
            tracks than a MIDI file can hold.
    """
    instrument = np.asarray(instrument, dtype=np.int64)
    if instrument.shape != notes.pitch.shape:
        raise ValueError(f"instrument must have shape [{len(notes)}], "
                         f"got {list(instrument.shape)}")
    if len(notes) and (instrument.min() < 1 or instrument.max() > DRUM):
        raise ValueError(f"instrument classes must be 1..{DRUM}")
    if not 0 < notes.tpq < 2**15:
        raise ValueError(f"ticks per quarter note must be 1..32767, got {notes.tpq}")
    layer = note_layers(notes, instrument) if layers is None else np.asarray(layers)
    plan: list[tuple[int, int, np.ndarray]] = []  # (layer, class, notes) of each track
    for lay in range(int(layer.max(initial=0)) + 1):
        for cls in range(1, DRUM + 1):
            pick = np.flatnonzero((instrument == cls) & (layer == lay))
            if pick.size:
                plan.append((lay, cls, pick))
    if len(plan) + 1 > MAX_TRACKS:
        raise ValueError(f"{len(plan) + 1:,} tracks (notes of one pitch overlapping "
                         f"{int(layer.max()) + 1:,} deep), more than a MIDI file holds "
                         f"({MAX_TRACKS:,})")
    chunks = [_meta_track(notes)]
    described: list[OutputTrack] = []
    for lay, cls, pick in plan:
        name = INSTRUMENTS[cls] if lay == 0 else f"{INSTRUMENTS[cls]} {lay + 1}"
        sources = sorted(set(notes.track[pick].tolist()))
        copied = sorted(set(notes.track[instrument == cls].tolist())) if lay == 0 else []
        chunk, n_controls, n_bends = _instrument_track(notes, pick, cls, name, copied)
        chunks.append(chunk)
        described.append(OutputTrack(name=name, instrument=cls, layer=lay,
                                     n_notes=int(pick.size), sources=sources,
                                     n_controls=n_controls, n_bends=n_bends))
    header = b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big") \
        + len(chunks).to_bytes(2, "big") + notes.tpq.to_bytes(2, "big")
    return EncodedMidi(data=header + b"".join(chunks), n_tracks=len(chunks)), described


def note_layers(notes: SongNotes, instrument: np.ndarray) -> np.ndarray:
    """Overlap layer of every note on its instrument's tracks (:func:`overlap_layers`).

    Returns:
        int64 ``[K]``.
    """
    instrument = np.asarray(instrument, dtype=np.int64)
    layer = np.zeros(len(notes), dtype=np.int64)
    for cls in range(1, DRUM + 1):
        mine = np.flatnonzero(instrument == cls)
        layer[mine] = overlap_layers(notes.pitch[mine], notes.start[mine], notes.end[mine])
    return layer


def _instrument_track(notes: SongNotes, pick: np.ndarray, cls: int, name: str,
                      copied: list[int]) -> tuple[bytes, int, int]:
    """One output track: the notes ``pick`` plus the controllers and bends of the source
    tracks ``copied``."""
    channel = OUTPUT_CHANNEL[cls]
    title = name.encode("latin-1", "replace")
    prefix = (b"\x00\xff\x03" + _vlq(len(title)) + title  # track name, then the program
              + bytes([0x00, 0xC0 | channel, RENDER_PROGRAM.get(cls, 0) & 0x7F]))
    events = _Events()
    n_controls = n_bends = 0
    for s in copied:
        controls, bends = notes.tracks[s].controls, notes.tracks[s].bends
        events.add(controls[:, 0], _RANK_CONTROL, 0xB0 | channel, controls[:, 1] & 0x7F,
                   controls[:, 2] & 0x7F)
        wheel = np.clip(bends[:, 1] + 8192, 0, 16383)
        events.add(bends[:, 0], _RANK_CONTROL, 0xE0 | channel, wheel & 0x7F, wheel >> 7)
        n_controls += len(controls)
        n_bends += len(bends)
    pitch, start, end = notes.pitch[pick], notes.start[pick], notes.end[pick]
    velocity = np.clip(notes.velocity[pick], 1, 127)
    tick = np.stack([start, end], axis=1).reshape(-1)  # on, off, on, off, ...
    rank = np.stack([np.full(pick.size, _RANK_ON),
                     np.where(end > start, _RANK_OFF, _RANK_ZERO_OFF)], axis=1).reshape(-1)
    status = np.tile([0x90 | channel, 0x80 | channel], pick.size)
    key = np.repeat(pitch & 0x7F, 2)
    value = np.stack([velocity, np.zeros_like(velocity)], axis=1).reshape(-1)
    events.add(tick, rank, status, key, value)
    return events.encode(prefix), n_controls, n_bends


def _vlq(value: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def notes_roll(first: np.ndarray, stop: np.ndarray, rows: np.ndarray, instrument: np.ndarray,
               begin: int, end: int) -> np.ndarray:
    """Paint notes into a roll of the steps ``begin .. end - 1`` (for pictures).

    Args:
        first, stop: int ``[K]`` grid steps of each note (stop exclusive).
        rows: int ``[K]`` row of each note; notes with row -1 are left out.
        instrument: int ``[K]`` contract class of each note (1..5).
        begin, end: the excerpt's steps.

    Returns:
        bool ``[end - begin, 72, 5]`` (instrument channels 1..5 of the contract).
    """
    roll = np.zeros((max(end - begin, 0), N_PITCH, DRUM), dtype=bool)
    inside = (rows >= 0) & (first < end) & (stop > begin)
    a = np.clip(first, begin, end) - begin  # clipped into the excerpt
    b = np.clip(stop, begin, end) - begin
    for cls in range(1, DRUM + 1):
        mine = inside & (instrument == cls)
        plane = roll[..., cls - 1]  # a view: painted in place
        paint_notes(plane, a[mine], b[mine], rows[mine])
    return roll
