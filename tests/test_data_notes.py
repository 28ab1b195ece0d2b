"""data/notes.py: reading every note, overlap layers, writing the separated MIDI exactly."""

from __future__ import annotations

import io
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
import symusic

from data.contract import BASS, DRUM, PIANO, STRING
from data.midi import notes_from_score, read_notes
from data.notes import OUTPUT_CHANNEL, overlap_layers, separated_midi
from data.song_roll import nearest_rows, notes_roll, out_of_range
from tests.fixtures_midi import add_meta_track, dense_tracks, write_midi


def small_score() -> symusic.Score:
    """Two pitched tracks (with a controller, a pitch bend) and a drum track."""
    score = symusic.Score(480)
    score.tempos.append(symusic.Tempo(0, 100.0))
    score.tempos.append(symusic.Tempo(1000, 137.0))
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    score.key_signatures.append(symusic.KeySignature(0, -3, 1))
    keys = symusic.Track("keys", 0, False)
    keys.notes.extend([symusic.Note(3, 470, 60, 33), symusic.Note(100, 50, 20, 90)])
    keys.controls.append(symusic.ControlChange(5, 7, 99))
    keys.pitch_bends.append(symusic.PitchBend(7, -300))
    pad = symusic.Track("pad", 48, False)
    pad.notes.extend([symusic.Note(200, 500, 60, 44), symusic.Note(0, 10, 100, 12)])
    kit = symusic.Track("kit", 0, True)
    kit.notes.extend([symusic.Note(0, 5, 36, 120), symusic.Note(10, 5, 81, 50)])
    score.tracks.extend([keys, pad, kit])
    return score


def test_read_notes_keeps_every_note_and_the_score(tmp_path: Path) -> None:
    path = tmp_path / "s.mid"
    small_score().dump_midi(str(path))
    notes = read_notes(path)
    assert len(notes) == 6 and notes.tpq == 480
    assert notes.track.tolist() == [0, 0, 1, 1, 2, 2]
    assert notes.index.tolist() == [0, 1, 0, 1, 0, 1]
    assert notes.start.tolist() == [3, 100, 0, 200, 0, 10]  # in time order within a track
    assert notes.end.tolist() == [473, 150, 10, 700, 5, 15]
    assert notes.velocity.tolist() == [33, 90, 12, 44, 120, 50]
    assert notes.is_drum.tolist() == [False] * 4 + [True] * 2
    assert notes.tempos.tolist() == [[0, 600000], [1000, round(60e6 / 137)]]
    assert notes.key_signatures == [(0, -3, 1)] and notes.time_signatures == [(0, 4, 4)]
    assert notes.tracks[0].controls.tolist() == [[5, 7, 99]]
    assert notes.tracks[0].bends.tolist() == [[7, -300]]
    # rows: 60 -> 36; 20 and 100 outside; kick -> row 63; key 81 is not a kept drum key
    assert notes.rows().tolist() == [36, -1, -1, 36, 63, -1]
    assert nearest_rows(notes).tolist() == [36, 0, 71, 36, 63, -1]
    assert out_of_range(notes).tolist() == [False, True, True, False, False, False]


def test_overlap_layers() -> None:
    pitch = np.array([60, 60, 60, 60, 60, 61, 60, 60])
    start = np.array([0, 100, 100, 500, 600, 0, 700, 700])
    end = np.array([100, 300, 300, 600, 800, 900, 700, 800])
    layer = overlap_layers(pitch, start, end)
    # touching notes and exact duplicates share a layer; the zero-length note at 700 lies
    # inside [600, 800) and moves up; [700, 800) overlaps [600, 800) and touches it
    assert layer.tolist() == [0, 0, 0, 0, 0, 0, 1, 2]
    assert overlap_layers(np.array([60, 60]), np.array([0, 10]), np.array([50, 60])).tolist() \
        == [0, 1]


def pairs_by_pretty_midi(data: bytes) -> list[tuple[int, int, int, int]]:
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    return sorted((n.pitch, pm.time_to_tick(n.start), pm.time_to_tick(n.end), n.velocity)
                  for inst in pm.instruments for n in inst.notes)


def test_separated_midi_is_exact_in_every_reader(tmp_path: Path) -> None:
    path = tmp_path / "s.mid"
    small_score().dump_midi(str(path))
    notes = read_notes(path)
    # both notes at pitch 60 go to piano: they overlap, so one moves to "piano 2"
    instrument = np.array([PIANO, BASS, STRING, PIANO, DRUM, DRUM])
    midi, tracks = separated_midi(notes, instrument)
    buf = io.BytesIO()
    midi.save(file=buf)
    data = buf.getvalue()
    want = sorted(zip(notes.pitch.tolist(), notes.start.tolist(), notes.end.tolist(),
                      notes.velocity.tolist()))
    back = symusic.Score.from_midi(data)
    got = sorted((n.pitch, n.time, n.end, n.velocity) for t in back.tracks for n in t.notes)
    assert got == want
    assert pairs_by_pretty_midi(data) == want
    assert [(t.name, t.n_notes, t.sources) for t in tracks] == [
        ("piano", 1, [0]), ("bass", 1, [0]), ("string", 1, [1]), ("drum", 2, [2]),
        ("piano 2", 1, [1])]
    assert tracks[0].n_controls == 1 and tracks[0].n_bends == 1 and tracks[2].n_controls == 0
    # mido: the tempo map, signatures and channels as written
    parsed = mido.MidiFile(file=io.BytesIO(data))
    assert parsed.ticks_per_beat == 480
    meta = [(m.type, getattr(m, "tempo", None)) for m in parsed.tracks[0] if m.is_meta]
    assert ("set_tempo", 600000) in meta and ("set_tempo", round(60e6 / 137)) in meta
    assert any(m.type == "key_signature" and m.key == "Cm" for m in parsed.tracks[0])
    channels = {}
    for track in parsed.tracks[1:]:
        name = next(m.name for m in track if m.type == "track_name")
        channels[name] = {m.channel for m in track if m.type == "note_on"}
        programs = {m.program for m in track if m.type == "program_change"}
        assert len(programs) == 1
    assert channels == {"piano": {OUTPUT_CHANNEL[PIANO]}, "bass": {OUTPUT_CHANNEL[BASS]},
                        "string": {OUTPUT_CHANNEL[STRING]}, "drum": {9},
                        "piano 2": {OUTPUT_CHANNEL[PIANO]}}
    with pytest.raises(ValueError, match="classes"):
        separated_midi(notes, np.zeros(len(notes), dtype=np.int64))


def test_notes_roll_paints_an_excerpt() -> None:
    first, stop = np.array([0, 4, 10]), np.array([2, 12, 11])
    rows, inst = np.array([5, 6, -1]), np.array([PIANO, BASS, PIANO])
    roll = notes_roll(first, stop, rows, inst, 2, 8)
    assert roll.shape == (6, 72, 5)
    assert not roll[:, 5].any()  # the first note ends before the excerpt
    assert roll[2:, 6, BASS - 1].all() and not roll[:2, 6].any()
    assert roll.sum() == 4


def test_meaningless_meta_events_are_not_written_back(tmp_path: Path) -> None:
    """A meter whose denominator byte is out of range (read as 0) and a key signature
    2**31 ticks in (wrapped to a negative tick) mean nothing: the separated file leaves
    them out instead of failing to be written."""
    path = write_midi(tmp_path / "odd.mid", dense_tracks(bars=8))
    far = b"\xff\xff\xff\x7f\xff\x01\x00" * 9  # 9 empty text events, 2**28 - 1 ticks apart
    events = (b"\x00\xff\x58\x04\x03\x08\x18\x08"  # 3/2**8: denominator out of range
              + far + b"\x00\xff\x59\x02\x01\x00")  # G major, past 2**31 ticks
    add_meta_track(path, events)
    notes = read_notes(path)
    assert (0, 3, 0) in notes.time_signatures and notes.key_signatures[0][0] < 0  # as read
    midi, _ = separated_midi(notes, np.full(len(notes), PIANO))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    again = notes_from_score(symusic.Score.from_midi(buffer.getvalue()))
    assert len(again) == len(notes) > 0
    assert again.time_signatures == [(0, 4, 4)] and again.key_signatures == []
