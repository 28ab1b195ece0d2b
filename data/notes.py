"""Notes written back as MIDI: a song's own notes by instrument, and rolls rendered.

One standard-MIDI-file encoder (:class:`_Events`, encoded with numpy, so ticks and
channels are exactly as given and time and memory stay linear in the number of events)
writes both kinds of file:

* :func:`separated_midi` puts every note of a :class:`data.midi.SongNotes` exactly once
  on the track of the instrument it was given, with its own pitch, ticks and velocity,
  the input's tempo map, time and key signatures, and its controllers and pitch bends;
* :func:`roll_to_midi` renders a song or phrase roll (docs/method.md section 9), each run
  of on-cells at one pitch one note, with the song's tempo map and time signatures.

Both use the render programs of the data contract and put the drum track on channel 10.
MIDI pairs a note-off with a note-on by track, channel and pitch, so two notes of one
pitch that overlap on one track cannot be told apart by every reader (the pretty_midi
reader, for one, ends both at the first note-off). A note that would overlap another note
of its pitch on its instrument's track therefore goes to an extra track of the same
instrument on the same channel ("piano 2", ...), which keeps every note exact in any
reader; controllers and pitch bends act on a channel, so they are written once, on the
instrument's main track.

Grid: a note covers the steps of :func:`data.midi.quantise` (the data contract's
quantisation) at the row of :func:`data.midi.pitch_rows`.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from data.contract import (
    DRUM_KEYS,
    DRUM_ROW0,
    MELODY,
    N_PITCH,
    PITCH_LOW,
    STEPS_PER_BEAT,
)
from data.instruments import PAPER, InstrumentSet
from data.midi import SongNotes, SourceTrack, Timing
from data.roll import roll_notes

# MIDI channel (0-based) of each instrument's tracks for the paper's set (piano 0, guitar 1,
# bass 2, string 3, melody 4, drum 9: General MIDI's drum channel 10); a set's own:
# data.instruments.InstrumentSet.midi_channels
OUTPUT_CHANNEL: dict[int, int] = PAPER.midi_channels()


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


def writable_meters(signatures: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """The time signatures a MIDI file can hold: at a tick >= 0, numerator and denominator
    > 0. A corrupt file may carry others (a denominator byte out of range reads as 0, a
    tick past 2**31 wraps negative); they mean nothing and are not written back.
    :meth:`data.midi.SongNotes.timing` keeps the former, so that such a file is not taken
    for 4/4."""
    return [(t, n, d) for t, n, d in signatures if t >= 0 and n > 0 and d > 0]


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


def separated_midi(notes: SongNotes, instrument: np.ndarray, layers: np.ndarray | None = None,
                   instruments: InstrumentSet = PAPER) -> tuple[EncodedMidi, list[OutputTrack]]:
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
        instruments: the classes: names, render programs and channels (the paper's
            five by default).

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
    drum = instruments.drum
    if len(notes) and (instrument.min() < 1 or instrument.max() > drum):
        raise ValueError(f"instrument classes must be 1..{drum}")
    layer = note_layers(notes, instrument, drum) if layers is None else np.asarray(layers)
    return _encode(notes, instrument, layer, instruments)


def _encode(notes: SongNotes, instrument: np.ndarray, layer: np.ndarray,
            instruments: InstrumentSet = PAPER) -> tuple[EncodedMidi, list[OutputTrack]]:
    """The file of :func:`separated_midi`: the tempo track, then one track per class
    (contract order, melody first) and overlap layer that holds notes.

    Args:
        notes: the notes, with the tempo map, signatures and source tracks to write.
        instrument: int64 ``[K]`` contract class of each note (0..5).
        layer: int ``[K]`` overlap layer of each note.

    Raises:
        ValueError: ticks per quarter note outside 1..32767, a note at a negative tick,
            or more tracks than a MIDI file can hold.
    """
    if not 0 < notes.tpq < 2**15:
        raise ValueError(f"ticks per quarter note must be 1..32767, got {notes.tpq}")
    plan: list[tuple[int, int, np.ndarray]] = []  # (layer, class, notes) of each track
    for lay in range(int(layer.max(initial=0)) + 1):
        for cls in range(MELODY, instruments.drum + 1):
            pick = np.flatnonzero((instrument == cls) & (layer == lay))
            if pick.size:
                plan.append((lay, cls, pick))
    if len(plan) + 1 > MAX_TRACKS:
        raise ValueError(f"{len(plan) + 1:,} tracks (notes of one pitch overlapping "
                         f"{int(layer.max()) + 1:,} deep), more than a MIDI file holds "
                         f"({MAX_TRACKS:,})")
    chunks = [_meta_track(notes)]
    described: list[OutputTrack] = []
    names, channels = instruments.instruments, instruments.midi_channels()
    programs = instruments.render_programs()
    for lay, cls, pick in plan:
        name = names[cls] if lay == 0 else f"{names[cls]} {lay + 1}"
        sources = sorted(set(notes.track[pick].tolist()))
        copied = sorted(set(notes.track[instrument == cls].tolist())) if lay == 0 else []
        chunk, n_controls, n_bends = _instrument_track(notes, pick, (channels[cls],
                                                                     programs.get(cls, 0)),
                                                       name, copied)
        chunks.append(chunk)
        described.append(OutputTrack(name=name, instrument=cls, layer=lay,
                                     n_notes=int(pick.size), sources=sources,
                                     n_controls=n_controls, n_bends=n_bends))
    header = b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big") \
        + len(chunks).to_bytes(2, "big") + notes.tpq.to_bytes(2, "big")
    return EncodedMidi(data=header + b"".join(chunks), n_tracks=len(chunks)), described


def roll_to_midi(roll: np.ndarray, timing: Timing | None = None,
                 qpm: float = 120.0, instruments: InstrumentSet = PAPER) -> EncodedMidi:
    """Render a song or phrase roll as multi-instrument MIDI (docs/method.md section 9).

    One track per non-empty channel (programs flute/piano/guitar/bass/strings and a drum
    track, velocities from the contract), through the encoder of :func:`separated_midi`;
    each run of on-cells at one pitch is one note, from the tick where its first step
    starts to the tick where its last one ends (``step * tpq / 4``, halves rounded up).
    Drum cells below row 63 have no drum key and are not rendered.

    Args:
        roll: bool ``[T, 72, 6]`` (contract order) or ``[T, 72, 5]`` (channels 1..5); for
            another set ``[T, 72, n_instruments]`` or ``[T, 72, n_music]``.
        timing: the song's timing; the file then has its ticks per quarter note, tempo map
            and time signatures. None: a constant ``qpm`` in 4/4 at 480 ticks per quarter.
        qpm: tempo used when ``timing`` is None.
        instruments: the classes of the roll (the paper's five by default).

    Returns:
        The encoded file (:meth:`EncodedMidi.save` writes it).

    Raises:
        ValueError: a roll of another shape.
    """
    roll = np.asarray(roll)
    n_inst, drum = instruments.n_instruments, instruments.drum
    if roll.ndim != 3 or roll.shape[1] != N_PITCH or roll.shape[2] not in (n_inst, n_inst - 1):
        raise ValueError(f"roll must have shape [T, {N_PITCH}, {n_inst}] or "
                         f"[T, {N_PITCH}, {n_inst - 1}], got {list(roll.shape)}")
    offset = n_inst - roll.shape[2]  # 1 when channel 0 (melody) is absent
    if timing is None:
        timing = Timing(tpq=480, tempos=[(0, float(qpm))], time_signatures=[(0, 4, 4)])
    classes, pitches, firsts, stops = [], [], [], []
    for channel in range(roll.shape[2]):
        cls = channel + offset
        rows, first, stop = roll_notes(roll[:, :, channel])
        if cls == drum:
            keep = rows >= DRUM_ROW0
            rows, first, stop = rows[keep], first[keep], stop[keep]
            pitch = np.array(DRUM_KEYS, dtype=np.int64)[rows - DRUM_ROW0]
        else:
            pitch = rows + PITCH_LOW
        classes.append(np.full(rows.size, cls, dtype=np.int64))
        pitches.append(pitch.astype(np.int64))
        firsts.append(first)
        stops.append(stop)
    instrument = np.concatenate(classes)
    ticks_per_step = timing.tpq / STEPS_PER_BEAT
    velocities, programs = instruments.render_velocities(), instruments.render_programs()
    velocity = np.array([velocities[c] for c in range(n_inst)], dtype=np.int64)
    notes = SongNotes(
        tpq=timing.tpq, track=instrument,
        index=np.concatenate([np.arange(c.size, dtype=np.int64) for c in classes]),
        pitch=np.concatenate(pitches),
        start=np.floor(np.concatenate(firsts) * ticks_per_step + 0.5).astype(np.int64),
        end=np.floor(np.concatenate(stops) * ticks_per_step + 0.5).astype(np.int64),
        velocity=velocity[instrument], is_drum=instrument == drum,
        tracks=[SourceTrack(name=instruments.instruments[c], program=programs.get(c, 0),
                            is_drum=c == drum) for c in range(n_inst)],
        tempos=np.array([(tick, round(60e6 / q)) for tick, q in timing.tempos],
                        dtype=np.int64).reshape(-1, 2),
        time_signatures=timing.time_signatures, key_signatures=[])
    # the runs of one pitch on one channel never touch: every note is on layer 0
    midi, _ = _encode(notes, instrument, np.zeros(len(notes), dtype=np.int64), instruments)
    return midi


def note_layers(notes: SongNotes, instrument: np.ndarray, drum: int = PAPER.drum
                ) -> np.ndarray:
    """Overlap layer of every note on its instrument's tracks (:func:`overlap_layers`).

    Returns:
        int64 ``[K]``.
    """
    instrument = np.asarray(instrument, dtype=np.int64)
    layer = np.zeros(len(notes), dtype=np.int64)
    for cls in range(1, drum + 1):
        mine = np.flatnonzero(instrument == cls)
        layer[mine] = overlap_layers(notes.pitch[mine], notes.start[mine], notes.end[mine])
    return layer


def _instrument_track(notes: SongNotes, pick: np.ndarray, channel_program: tuple[int, int],
                      name: str, copied: list[int]) -> tuple[bytes, int, int]:
    """One output track on ``(channel, program)``: the notes ``pick`` plus the
    controllers and bends of the source tracks ``copied``."""
    channel, program = channel_program
    title = name.encode("latin-1", "replace")
    prefix = (b"\x00\xff\x03" + _vlq(len(title)) + title  # track name, then the program
              + bytes([0x00, 0xC0 | channel, program & 0x7F]))
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
