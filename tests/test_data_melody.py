"""data/melody.py: the melody detector and the midi-miner style JSON override."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from data.contract import MELODY, PIANO, PITCH_LOW
from data.melody import (
    TrackNotes,
    coverage,
    find_melody,
    load_melody_json,
    melody_program_for,
    monophony,
)
from data.song_roll import load_song
from tests.fixtures_midi import Track, write_midi

TPQ = 480


def _track(pitches: list[list[int]], name: str = "", program: int = 0,
           length: int = TPQ) -> TrackNotes:
    """One chord (list of pitches) per beat, each lasting ``length`` ticks."""
    start, end, pitch = [], [], []
    for beat, chord in enumerate(pitches):
        for p in chord:
            start.append(beat * TPQ)
            end.append(beat * TPQ + length)
            pitch.append(p)
    return TrackNotes(name, program, False, np.array(start), np.array(end), np.array(pitch))


def test_features() -> None:
    line = _track([[72]] * 60)
    chords = _track([[60, 64, 67]] * 60)
    assert monophony(line, tolerance=TPQ / 8) == 1.0
    assert monophony(chords, tolerance=TPQ / 8) == pytest.approx(1 / 3)
    assert coverage(line, 0, 120 * TPQ) == pytest.approx(0.5)
    legato = _track([[72]] * 60, length=TPQ + 10)  # overlaps of 10 ticks are still legato
    assert monophony(legato, tolerance=TPQ / 8) == 1.0


def test_highest_monophonic_line_wins() -> None:
    tracks = [_track([[60, 64, 67, 84]] * 60),  # higher mean but chords
              _track([[72]] * 60),  # monophonic, high
              _track([[64]] * 60),  # monophonic, lower
              _track([[80]] * 60, program=33)]  # bass program: never melody
    assert find_melody(tracks, TPQ) == 1


def test_name_keyword_beats_features() -> None:
    tracks = [_track([[80]] * 60), _track([[48, 52]] * 60, name="Lead Vocal")]
    assert find_melody(tracks, TPQ) == 1


def test_no_melody_when_nothing_qualifies() -> None:
    tracks = [_track([[60, 64, 67]] * 60),  # chords
              _track([[50]] * 60),  # too low
              _track([[76]] * 6)]  # too sparse (coverage 0.1)
    assert find_melody(tracks, TPQ) is None
    assert find_melody([], TPQ) is None


def test_detector_in_load_song_and_json_override(tmp_path: Path) -> None:
    beats = range(64)
    flute = [(b * TPQ, (b + 1) * TPQ, 76 + b % 3) for b in beats]
    piano = [(b * TPQ, (b + 1) * TPQ, p) for b in beats for p in (48, 52, 55)]
    high_piano = [(b * TPQ, b * TPQ + TPQ // 2, 70) for b in beats]
    path = write_midi(tmp_path / "song.mid", [Track("Fl", 73, flute), Track("Pno", 0, piano),
                                              Track("Pno2", 1, high_piano),
                                              Track("Bs", 33, [(b * TPQ, (b + 1) * TPQ, 36)
                                                               for b in beats])])
    song = load_song(path)
    assert song.has_melody
    assert song.roll[0, 76 - PITCH_LOW, MELODY] and not song.roll[0, 70 - PITCH_LOW].any()
    assert song.roll[0, 48 - PITCH_LOW, PIANO]  # the chord track (more notes) is the piano
    # the JSON names program 1 as the melody: the high piano becomes the melody
    song = load_song(path, melody_program=1)
    assert song.roll[0, 70 - PITCH_LOW, MELODY] and not song.roll[0, 76 - PITCH_LOW].any()
    # a program that no track has: no melody
    assert not load_song(path, melody_program=99).has_melody


def test_melody_json(tmp_path: Path) -> None:
    path = tmp_path / "melody.json"
    path.write_text(json.dumps({"a/b.mid": {"melody": 3}, "c": {"melody": 5}}))
    table = load_melody_json(path)
    assert melody_program_for(table, "a/b.mid") == 3
    assert melody_program_for(table, "x/c.mid") == 5  # by stem
    assert melody_program_for(table, "d.mid") is None
    path.write_text(json.dumps({"a.mid": {"melody": "flute"}}))
    with pytest.raises(ValueError, match="melody.json: entry 'a.mid'"):
        load_melody_json(path)
    with pytest.raises(ValueError, match="not found"):
        load_melody_json(tmp_path / "none.json")
