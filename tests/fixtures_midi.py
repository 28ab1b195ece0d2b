"""Hand-built MIDI files for tests (exact ticks, written with mido)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mido


@dataclass
class Track:
    """One MIDI track: ``notes`` are ``(start_tick, end_tick, pitch)``."""

    name: str
    program: int
    notes: list[tuple[int, int, int]] = field(default_factory=list)
    is_drum: bool = False


def write_midi(path: str | Path, tracks: Sequence[Track], tpq: int = 480,
               tempos: Sequence[tuple[int, float]] = ((0, 120.0),),
               time_signatures: Sequence[tuple[int, int, int]] = ((0, 4, 4),)) -> Path:
    """Write a type-1 MIDI file; track 0 holds tempos and time signatures."""
    path = Path(path)
    midi = mido.MidiFile(type=1, ticks_per_beat=tpq)
    meta = [(tick, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(qpm)))
            for tick, qpm in tempos]
    meta += [(tick, mido.MetaMessage("time_signature", numerator=n, denominator=d))
             for tick, n, d in time_signatures]
    midi.tracks.append(_delta(meta))
    for i, track in enumerate(tracks):
        channel = 9 if track.is_drum else [c for c in range(16) if c != 9][i % 15]
        events = [(0, mido.MetaMessage("track_name", name=track.name)),
                  (0, mido.Message("program_change", program=track.program, channel=channel))]
        for start, end, pitch in track.notes:
            events.append((start, mido.Message("note_on", note=pitch, velocity=90,
                                               channel=channel)))
            events.append((end, mido.Message("note_off", note=pitch, velocity=0,
                                             channel=channel)))
        midi.tracks.append(_delta(events))
    midi.save(path)
    return path


def _delta(events: list[tuple[int, object]]) -> mido.MidiTrack:
    """Absolute-tick events -> a track with delta times (note-offs first at equal ticks)."""
    order = sorted(range(len(events)), key=lambda k: (
        events[k][0], getattr(events[k][1], "type", "") != "note_off", k))
    track, now = mido.MidiTrack(), 0
    for k in order:
        tick, msg = events[k]
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def dense_tracks(bars: int = 8, tpq: int = 480, transpose: int = 0) -> list[Track]:
    """Piano chords, a bass line and drums dense enough to pass every phrase filter.

    Piano: a 6-note chord on every beat lasting 3 sixteenths (72 cells a bar);
    bass: eighth notes; drums: kick on beats, hi-hat on eighths.
    """
    step = tpq // 4
    piano, bass, drums = [], [], []
    chord = [60, 64, 67, 72, 76, 79]
    for bar in range(bars):
        for beat in range(4):
            t = (bar * 16 + beat * 4) * step
            piano += [(t, t + 3 * step, p + transpose) for p in chord]
            drums.append((t, t + step, 36))
        for eighth in range(8):
            t = (bar * 16 + eighth * 2) * step
            bass.append((t, t + step, 36 + transpose + (eighth % 2) * 7))
            drums.append((t, t + step, 42))
    return [Track("Piano", 0, piano), Track("Bass", 33, bass),
            Track("Drums", 0, drums, is_drum=True)]


MAX_DELTA = 2**28 - 1  # largest delta time a MIDI variable-length quantity holds


def far_note_file(path: Path, tick: int, tpq: int = 1) -> Path:
    """Piano and bass, 60 notes each from tick 0, plus one note each at ``tick``.

    Ticks past 2**28 need several delta times; empty text events carry them.
    """
    midi = mido.MidiFile(type=1, ticks_per_beat=tpq)
    midi.tracks.append(mido.MidiTrack([mido.MetaMessage("time_signature", numerator=4,
                                                        denominator=4)]))
    for channel, (program, pitch) in enumerate(((0, 60), (33, 40))):
        track = mido.MidiTrack([mido.Message("program_change", program=program,
                                             channel=channel)])
        for k in range(60):
            track.append(mido.Message("note_on", note=pitch + k % 5, velocity=80,
                                      channel=channel))
            track.append(mido.Message("note_off", note=pitch + k % 5, channel=channel, time=1))
        rest = tick - 60
        while rest > MAX_DELTA:
            track.append(mido.MetaMessage("text", text="", time=MAX_DELTA))
            rest -= MAX_DELTA
        track.append(mido.Message("note_on", note=pitch, velocity=80, channel=channel,
                                  time=rest))
        track.append(mido.Message("note_off", note=pitch, channel=channel, time=1))
        midi.tracks.append(track)
    midi.save(str(path))
    return path


def add_meta_track(path: Path, events: bytes) -> Path:
    """Append a track made of raw MIDI events (delta time + event bytes) to a file."""
    data = bytearray(path.read_bytes())
    data[10:12] = (int.from_bytes(data[10:12], "big") + 1).to_bytes(2, "big")  # track count
    body = events + b"\x00\xff\x2f\x00"  # end of track
    data += b"MTrk" + len(body).to_bytes(4, "big") + body
    path.write_bytes(bytes(data))
    return path
