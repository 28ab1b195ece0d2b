"""A MIDI file as its list of notes, and the same notes written back by instrument.

Reading keeps everything a note-level separation needs to give the user's music back:
every note of every track with its own pitch, start and end tick and velocity, each
track's controllers and pitch bends, and the score's ticks per quarter, tempo map (exact
microseconds per quarter), time signatures and key signatures
(:func:`notes_from_score`, from the score :func:`data.midi.read_score` parses once for the
mixture and the notes alike). Parsing is symusic's, which splits a MIDI track into one
track per channel and program, so a program change inside a track starts a new source
track.

Writing (:func:`separated_midi`, with mido, so ticks and channels are exactly as
given) puts every note exactly once on the track of the instrument it was given, with
the render programs of the data contract and the drum track on channel 10. MIDI pairs a
note-off with a note-on by track, channel and pitch, so two notes of one pitch that
overlap on one track cannot be told apart by every reader (the pretty_midi reader, for
one, ends both at the first note-off). A note that would overlap another note of its
pitch on its instrument's track therefore goes to an extra track of the same instrument
on the same channel ("piano 2", ...), which keeps every note exact in any reader.

Grid: a note covers the steps of :func:`data.midi.quantise` (the data contract's
quantisation) at the row of :func:`data.midi.pitch_rows`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mido
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
@dataclass
class OutputTrack:
    """One track of a separated file.

    Attributes:
        name: instrument name, with the layer number from the second layer on.
        instrument: contract class (1..5).
        layer: 0 for the instrument's main track, 1.. for the overlap tracks.
        n_notes: notes on the track.
        sources: source tracks whose notes it holds (indices into ``SongNotes.tracks``).
        n_controls: controller events copied from those sources.
        n_bends: pitch bends copied from those sources.
    """

    name: str
    instrument: int
    layer: int
    n_notes: int
    sources: list[int]
    n_controls: int
    n_bends: int


def overlap_layers(pitch: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Smallest layer per note so that no two notes of one pitch in a layer collide.

    Two notes of one pitch collide when they overlap, or when one of them has no length
    and touches the other; a note may start exactly where the previous one ends, and
    exact duplicates (same start and end, not zero-length) share a layer, since every
    reader pairs their note-ons and note-offs the same way.

    Args:
        pitch, start, end: int ``[K]`` notes of one instrument.

    Returns:
        int64 ``[K]`` layer of each note (0 for most notes).
    """
    layer = np.zeros(pitch.size, dtype=np.int64)
    order = np.lexsort((end, start, pitch))
    last: dict[int, list[tuple[int, int]]] = {}  # pitch -> (start, end) of each layer's last
    for k in order.tolist():
        p, s, e = int(pitch[k]), int(start[k]), int(end[k])
        ends = last.setdefault(p, [])
        for j, (ls, le) in enumerate(ends):
            after = le < s or (le == s and le > ls and e > s)
            if after or ((ls, le) == (s, e) and e > s):
                ends[j] = (s, e)
                layer[k] = j
                break
        else:
            layer[k] = len(ends)
            ends.append((s, e))
    return layer


def _key_name(key: int, tonality: int) -> str | None:
    """MIDI key signature (sharps > 0 / flats < 0, 0 major / 1 minor) -> mido's key name."""
    if not -7 <= key <= 7 or tonality not in (0, 1):
        return None
    return (_MINOR_KEYS if tonality else _MAJOR_KEYS)[key + 7]


_MAJOR_KEYS = ("Cb", "Gb", "Db", "Ab", "Eb", "Bb", "F", "C", "G", "D", "A", "E", "B", "F#",
               "C#")
_MINOR_KEYS = tuple(f"{k}m" for k in ("Ab", "Eb", "Bb", "F", "C", "G", "D", "A", "E", "B",
                                      "F#", "C#", "G#", "D#", "A#"))


def _track_messages(events: list[tuple[int, int, mido.Message | mido.MetaMessage]]
                    ) -> mido.MidiTrack:
    """``(tick, rank, message)`` -> a track in time order (rank orders equal ticks)."""
    events.sort(key=lambda e: (e[0], e[1]))
    track, now = mido.MidiTrack(), 0
    for tick, _, msg in events:
        msg.time = tick - now
        track.append(msg)
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


# ranks of events at one tick: settings, then note-offs, note-ons, and the note-offs of
# zero-length notes last (their note-on comes first)
_RANK_META, _RANK_CONTROL, _RANK_OFF, _RANK_ON, _RANK_ZERO_OFF = range(5)


def separated_midi(notes: SongNotes, instrument: np.ndarray
                   ) -> tuple[mido.MidiFile, list[OutputTrack]]:
    """Write every note on the track of its instrument (see the module docstring).

    A type-1 file at the input's ticks per quarter: track 0 holds the tempo map (exact
    microseconds per quarter), time and key signatures; then one track per instrument
    that receives notes, in contract order (piano, guitar, bass, string, drum), with its
    render program on its own channel (drums on channel 10); then the overlap layers, on
    their instrument's channel. Each track carries the controllers and pitch bends of
    every source track it holds notes of (merged in time order when there are several).

    Args:
        notes: the input's notes.
        instrument: int ``[K]`` contract class of each note (1..5; 5 = drum).

    Returns:
        ``(midi, tracks)``: the ``mido.MidiFile`` and a description of each instrument
        track, in file order (after the tempo track).
    """
    instrument = np.asarray(instrument, dtype=np.int64)
    if instrument.shape != notes.pitch.shape:
        raise ValueError(f"instrument must have shape [{len(notes)}], "
                         f"got {list(instrument.shape)}")
    if len(notes) and (instrument.min() < 1 or instrument.max() > DRUM):
        raise ValueError(f"instrument classes must be 1..{DRUM}")
    midi = mido.MidiFile(type=1, ticks_per_beat=notes.tpq)
    meta: list[tuple[int, int, mido.Message | mido.MetaMessage]] = []
    for tick, mspq in notes.tempos.tolist():
        meta.append((tick, _RANK_META, mido.MetaMessage("set_tempo", tempo=mspq)))
    for tick, num, den in writable_meters(notes.time_signatures):
        meta.append((tick, _RANK_META, mido.MetaMessage("time_signature", numerator=num,
                                                        denominator=den)))
    for tick, key, tonality in notes.key_signatures:
        name = _key_name(key, tonality)
        if name is not None and tick >= 0:  # a tick past 2**31 wraps negative: meaningless
            meta.append((tick, _RANK_META, mido.MetaMessage("key_signature", key=name)))
    midi.tracks.append(_track_messages(meta))

    layer = np.zeros(len(notes), dtype=np.int64)
    for cls in range(1, DRUM + 1):
        mine = np.flatnonzero(instrument == cls)
        layer[mine] = overlap_layers(notes.pitch[mine], notes.start[mine], notes.end[mine])
    described: list[OutputTrack] = []
    for lay in range(int(layer.max(initial=0)) + 1):
        for cls in range(1, DRUM + 1):
            pick = np.flatnonzero((instrument == cls) & (layer == lay))
            if pick.size == 0:
                continue
            name = INSTRUMENTS[cls] if lay == 0 else f"{INSTRUMENTS[cls]} {lay + 1}"
            sources = sorted(set(notes.track[pick].tolist()))
            track, n_controls, n_bends = _instrument_track(notes, pick, cls, name, sources)
            midi.tracks.append(track)
            described.append(OutputTrack(name=name, instrument=cls, layer=lay,
                                         n_notes=int(pick.size), sources=sources,
                                         n_controls=n_controls, n_bends=n_bends))
    return midi, described


def _instrument_track(notes: SongNotes, pick: np.ndarray, cls: int, name: str,
                      sources: list[int]) -> tuple[mido.MidiTrack, int, int]:
    """One output track: the notes ``pick`` plus their sources' controllers and bends."""
    channel = OUTPUT_CHANNEL[cls]
    events: list[tuple[int, int, mido.Message | mido.MetaMessage]] = [
        (0, _RANK_META, mido.MetaMessage("track_name", name=name)),
        (0, _RANK_META, mido.Message("program_change", channel=channel,
                                     program=RENDER_PROGRAM.get(cls, 0))),
    ]
    n_controls = n_bends = 0
    for s in sources:
        for tick, number, value in notes.tracks[s].controls.tolist():
            events.append((tick, _RANK_CONTROL, mido.Message(
                "control_change", channel=channel, control=number, value=value)))
            n_controls += 1
        for tick, value in notes.tracks[s].bends.tolist():
            events.append((tick, _RANK_CONTROL, mido.Message(
                "pitchwheel", channel=channel, pitch=value)))
            n_bends += 1
    for p, a, b, v in zip(notes.pitch[pick].tolist(), notes.start[pick].tolist(),
                          notes.end[pick].tolist(), notes.velocity[pick].tolist()):
        events.append((a, _RANK_ON, mido.Message("note_on", channel=channel, note=p,
                                                 velocity=v)))
        events.append((b, _RANK_OFF if b > a else _RANK_ZERO_OFF,
                       mido.Message("note_off", channel=channel, note=p, velocity=0)))
    return _track_messages(events), n_controls, n_bends


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
