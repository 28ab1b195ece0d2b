"""data/midi.py: MIDI -> roll conversion, filters, timing, bad files; rolls rendered back
(data/notes.py roll_to_midi)."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
import symusic

from data.contract import (
    BASS,
    DRUM,
    DRUM_ROW0,
    GUITAR,
    MELODY,
    N_PITCH,
    PIANO,
    PITCH_LOW,
    STEPS_PER_BEAT,
    STRING,
)
from data.midi import MidiError, SkipFile, Timing, read_notes, read_score
from data.notes import EncodedMidi, roll_to_midi
from data.roll import window_view
from data.song_roll import load_mixture, load_song
from tests.fixtures_midi import (
    MAX_DELTA,
    Track,
    add_meta_track,
    dense_tracks,
    far_note_file,
    write_midi,
)

TPQ = 480
STEP = TPQ // 4  # 120 ticks


def _filler(pitch: int, n: int = 51, first_step: int = 64) -> list[tuple[int, int, int]]:
    """n one-step notes on every other step from first_step (keeps a track above 50 notes)."""
    return [((first_step + 2 * i) * STEP, (first_step + 2 * i + 1) * STEP, pitch)
            for i in range(n)]


def _hand_file(path: Path) -> Path:
    piano = [(0, 16 * STEP, 60), (0, 4 * STEP, 95), (0, 4 * STEP, 20)] + _filler(48)
    guitar = [(0, 30, 52),  # shorter than a step -> one step
              (59, 3 * STEP, 55),  # starts at 0.49 step -> step 0
              (4 * STEP + 60, 6 * STEP, 57)] + _filler(52)  # starts at 4.5 -> step 5
    bass = [(14 * STEP, 18 * STEP, 40)] + _filler(40)  # across the first bar line
    drums = [(0, STEP, 36), (STEP, 2 * STEP, 40), (2 * STEP, 3 * STEP, 44),
             (3 * STEP, 4 * STEP, 46), (4 * STEP, 5 * STEP, 50), (5 * STEP, 6 * STEP, 60)]
    drums += _filler(42)
    return write_midi(path, [Track("Keys", 0, piano), Track("Gtr", 25, guitar),
                             Track("Bass", 33, bass), Track("Kit", 0, drums, is_drum=True)],
                      tpq=TPQ)


def test_hand_built_phrase_cell_by_cell(tmp_path: Path) -> None:
    song = load_song(_hand_file(tmp_path / "hand.mid"))
    assert not song.has_melody
    assert song.roll.dtype == bool and song.roll.shape == (64 + 2 * 50 + 1, 72, 6)
    phrases, starts = window_view(song.roll)
    phrase = phrases[0]
    assert starts[0] == 0
    expected = np.zeros((64, 72, 6), dtype=bool)
    expected[0:16, 60 - PITCH_LOW, PIANO] = True  # pitch offset: MIDI 60 -> row 36
    expected[0:4, 71, PIANO] = True  # MIDI 95 -> top row; MIDI 20 dropped
    expected[0, 52 - PITCH_LOW, GUITAR] = True  # 30 ticks -> one step
    expected[0:3, 55 - PITCH_LOW, GUITAR] = True
    expected[5:6, 57 - PITCH_LOW, GUITAR] = True  # 4.5 -> 5 (halves up), end 6
    expected[14:18, 40 - PITCH_LOW, BASS] = True  # crosses the bar line at step 16
    for step, row in enumerate((63, 64, 65, 67, 70)):  # 36->35, 40->38, 44->42, 46, 50
        expected[step, row, DRUM] = True
    np.testing.assert_array_equal(phrase, expected)
    assert song.timing.tpq == TPQ and song.timing.ticks_per_step == STEP


def pretty_midi_of(midi: EncodedMidi) -> pretty_midi.PrettyMIDI:
    """A rendered file as pretty_midi reads it (an independent reader)."""
    return pretty_midi.PrettyMIDI(io.BytesIO(midi.data))


def test_tempo_change_stays_on_grid(tmp_path: Path) -> None:
    tpq = 96
    beat_notes = [(b * tpq, b * tpq + tpq // 2, 60 + b % 5) for b in range(64)]
    bass = [(b * tpq, b * tpq + tpq // 4, 40) for b in range(64)]
    path = write_midi(tmp_path / "tempo.mid",
                      [Track("Keys", 0, beat_notes), Track("Bass", 33, bass)], tpq=tpq,
                      tempos=[(0, 120.0), (10 * tpq, 90.0), (37 * tpq, 150.0)])
    song = load_song(path)
    assert [q for _, q in song.timing.tempos] == pytest.approx([120.0, 90.0, 150.0])
    onsets = np.flatnonzero(song.roll[:, 40 - PITCH_LOW, BASS])
    np.testing.assert_array_equal(onsets, np.arange(64) * 4)  # every beat on a beat step
    pm = pretty_midi.PrettyMIDI(str(path))
    bass_pm = next(i for i in pm.instruments if i.program == 33)
    seconds = song.timing.step_to_seconds(onsets)
    np.testing.assert_allclose(seconds, [n.start for n in bass_pm.notes], atol=1e-6)
    # rendering keeps the tempo map: the same onsets in seconds, and the same roll back
    midi = roll_to_midi(song.roll, song.timing)
    rendered = pretty_midi_of(midi)
    times, tempi = rendered.get_tempo_changes()
    np.testing.assert_allclose(tempi, [120.0, 90.0, 150.0], rtol=1e-4)
    bass_out = next(i for i in rendered.instruments if i.program == 33)
    np.testing.assert_allclose([n.start for n in bass_out.notes], seconds, atol=1e-6)
    midi.save(tmp_path / "tempo_out.mid")
    again = load_song(tmp_path / "tempo_out.mid")
    np.testing.assert_array_equal(again.roll, song.roll)


def test_round_trip_midi_roll_midi(tmp_path: Path) -> None:
    song = load_song(_hand_file(tmp_path / "hand.mid"))
    midi = roll_to_midi(song.roll, song.timing)
    pm = pretty_midi_of(midi)
    assert {i.name: (i.program, i.is_drum) for i in pm.instruments} == {
        "piano": (0, False), "guitar": (25, False), "bass": (33, False), "drum": (0, True)}
    assert {n.velocity for i in pm.instruments for n in i.notes} == {80}
    midi.save(tmp_path / "out.mid")
    again = load_song(tmp_path / "out.mid")
    np.testing.assert_array_equal(again.roll, song.roll)
    # a 5-channel phrase renders without a melody track, at a fixed tempo
    pm5 = pretty_midi_of(roll_to_midi(song.roll[:64, :, 1:], qpm=100.0))
    assert pm5.get_tempo_changes()[1] == pytest.approx([100.0])
    piano = next(i for i in pm5.instruments if i.name == "piano")
    held = next(n for n in piano.notes if n.pitch == 60)
    assert held.start == 0.0 and held.end == pytest.approx(16 * 0.15)


def test_melody_and_string_render_programs() -> None:
    roll = np.zeros((8, 72, 6), dtype=bool)
    roll[0:2, 40, MELODY] = True
    roll[2:4, 10, STRING] = True
    roll[0, 3, DRUM] = True  # below row 63: no drum key, not rendered
    pm = pretty_midi_of(roll_to_midi(roll))
    assert {i.name: (i.program, i.notes[0].velocity) for i in pm.instruments} == {
        "melody": (40, 80), "string": (49, 50)}


def _two_tracks(**kw) -> list[Track]:
    return dense_tracks(bars=8, **kw)[:2]


@pytest.mark.parametrize("signatures", [[], [(0, 3, 4)], [(0, 4, 4), (1920, 4, 4)],
                                        [(0, 4, 4), (1920, 2, 4)]])
def test_filter_not_4_4(tmp_path: Path, signatures: list[tuple[int, int, int]]) -> None:
    path = write_midi(tmp_path / "ts.mid", _two_tracks(), time_signatures=signatures)
    with pytest.raises(SkipFile) as info:
        load_song(path)
    assert info.value.reason == "not_4_4" and "ts.mid" in str(info.value)
    assert len(str(info.value).splitlines()) == 1


def test_filter_note_count_and_classes(tmp_path: Path) -> None:
    notes50 = [(i * STEP, (i + 1) * STEP, 50) for i in range(50)]
    notes51 = notes50 + [(50 * STEP, 51 * STEP, 50)]
    # 50 notes are dropped: one class left
    path = write_midi(tmp_path / "few.mid", [Track("A", 0, notes51), Track("B", 25, notes50)])
    with pytest.raises(SkipFile) as info:
        load_song(path)
    assert info.value.reason == "too_few_instruments"
    # 51 notes are kept; program 40 (not a kept family) is dropped; 48 is a string
    path = write_midi(tmp_path / "ok.mid", [Track("A", 0, notes51), Track("B", 25, notes51),
                                            Track("C", 40, notes51), Track("D", 48, notes51)])
    roll = load_song(path).roll
    assert roll[..., [PIANO, GUITAR, STRING]].any(axis=(0, 1)).all()
    assert not roll[..., [MELODY, BASS, DRUM]].any()


def test_two_tracks_of_one_class_keep_more_notes(tmp_path: Path) -> None:
    few = [(i * STEP, (i + 1) * STEP, 50) for i in range(60)]
    many = [(i * STEP, (i + 1) * STEP, 55) for i in range(70)]
    bass = [(i * STEP, (i + 1) * STEP, 40) for i in range(60)]
    path = write_midi(tmp_path / "dup.mid", [Track("P1", 1, few), Track("P2", 2, many),
                                             Track("B", 33, bass)])
    roll = load_song(path).roll
    assert roll[:, 55 - PITCH_LOW, PIANO].sum() == 70 and not roll[:, 50 - PITCH_LOW].any()


def test_load_mixture_any_file(tmp_path: Path) -> None:
    # 3/4, a 10-note organ track (program 16, dropped by the contract), drums, high pitch
    tracks = _two_tracks() + [Track("Organ", 16, [(0, STEP, 100), (0, STEP, 90)]),
                              Track("Kit", 0, [(STEP, 2 * STEP, 36)], is_drum=True)]
    path = write_midi(tmp_path / "waltz.mid", tracks, time_signatures=[(0, 3, 4)])
    mixture, reference, timing = load_mixture(path)
    assert mixture.dtype == bool and mixture.shape[1] == 72
    assert timing.time_signatures == [(0, 3, 4)]
    assert mixture[0, 90 - PITCH_LOW] and mixture[1, DRUM_ROW0]  # organ kept; 100 dropped
    assert reference is not None and reference.shape == (*mixture.shape, 6)
    music_or = reference[..., 1:].any(axis=-1)
    assert not (music_or & ~mixture).any()  # the reference lies inside the mixture
    # no time signature: 4/4; one class only: no reference
    path = write_midi(tmp_path / "solo.mid", _two_tracks()[:1], time_signatures=[])
    mixture, reference, timing = load_mixture(path)
    assert reference is None and timing.time_signatures == [(0, 4, 4)]


def test_step_to_seconds_default_tempo() -> None:
    timing = Timing(tpq=480)
    np.testing.assert_allclose(timing.step_to_seconds(np.array([0, 4, 16])), [0, 0.5, 2.0])


@pytest.mark.parametrize("content,reason", [
    (b"", "empty"),
    (b"this is a text file, not music\n", "not_midi"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x10\x00\x00\xff", "truncated"),
])
def test_bad_files_raise_midi_error(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    for loader in (load_song, load_mixture):
        with pytest.raises(MidiError) as info:
            loader(path)
        assert info.value.reason == reason
        assert str(path) in str(info.value) and len(str(info.value).splitlines()) == 1


def test_truncated_real_file_never_crashes(tmp_path: Path) -> None:
    good = write_midi(tmp_path / "good.mid", dense_tracks(bars=4)).read_bytes()
    for cut in range(0, len(good), max(1, len(good) // 40)):
        path = tmp_path / "cut.mid"
        path.write_bytes(good[:cut])
        try:
            load_song(path)
        except (MidiError, SkipFile):
            pass


def test_no_notes_mixture(tmp_path: Path) -> None:
    path = write_midi(tmp_path / "silent.mid", [Track("Low", 0, [(0, STEP, 10)])])
    with pytest.raises(MidiError) as info:
        load_mixture(path)
    assert info.value.reason == "empty"


def test_roll_matches_pypianoroll_at_a_steady_tempo(tmp_path: Path) -> None:
    """pypianoroll (beat-based, via pretty_midi) is an independent reference for the grid.

    The two round off-grid note ends differently (pypianoroll floors them and shortens a note
    that touches the next one of its pitch), so the notes here start and end on the grid and
    leave a rest before the next note of their pitch; where the conventions agree, the rolls
    must agree cell for cell.
    """
    import pypianoroll

    tpq = 120
    step = tpq // STEPS_PER_BEAT
    rng = np.random.default_rng(7)
    chords, bass = [], []
    for beat in range(60):
        length = int(rng.integers(1, STEPS_PER_BEAT)) * step  # 1-3 steps: a rest follows
        root = 48 + int(rng.integers(0, 12))
        chords += [(beat * tpq, beat * tpq + length, root + k) for k in (0, 4, 7)]
        bass.append((beat * tpq + 2 * step, beat * tpq + 3 * step, 28 + beat % 7))
    path = write_midi(tmp_path / "steady.mid",
                      [Track("Piano", 0, chords), Track("Bass", 33, bass)],
                      tpq=tpq, tempos=[(0, 97.0)])
    song = load_song(path)
    assert not song.has_melody  # chords: no melody track, piano stays piano
    reference = pypianoroll.read(str(path), resolution=STEPS_PER_BEAT)
    for channel, program in ((PIANO, 0), (BASS, 33)):
        track = next(t for t in reference.tracks if t.program == program)
        ref = track.pianoroll[:, PITCH_LOW:PITCH_LOW + N_PITCH] > 0  # (T', 72)
        n = max(len(ref), len(song.roll))
        ours = np.zeros((n, N_PITCH), dtype=bool)
        ours[:len(song.roll)] = song.roll[:, :, channel]
        theirs = np.zeros((n, N_PITCH), dtype=bool)
        theirs[:len(ref)] = ref
        assert ours.any()
        np.testing.assert_array_equal(ours, theirs)


# ----------------------------------------------------------------------------------
# Hostile files: small on disk, huge or slow if read naively
# ----------------------------------------------------------------------------------
PEAK_BYTES = 32 * 2**20  # every hostile file below must be handled in less than this


@pytest.mark.parametrize("tick", [2**28, 2**31])
def test_far_note_is_too_long_before_any_roll_exists(tmp_path: Path, tick: int) -> None:
    """One note at tick 2**28 or 2**31 (tpq 1) would need a roll of 2**30+ steps."""
    path = far_note_file(tmp_path / "far.mid", tick)
    assert path.stat().st_size < 2_000
    tracemalloc.start()
    try:
        with pytest.raises(SkipFile) as song:
            load_song(path)
        with pytest.raises(MidiError) as mixture:
            load_mixture(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert song.value.reason == mixture.value.reason == "too_long"
    message = str(mixture.value)
    assert str(path) in message and "max_song_bars" in message and "\n" not in message
    assert peak < PEAK_BYTES


def test_song_length_limit_is_configurable(tmp_path: Path) -> None:
    path = write_midi(tmp_path / "eight.mid", dense_tracks(bars=8))
    assert load_song(path, max_bars=8).roll.shape[0] <= 8 * 16
    with pytest.raises(SkipFile, match="over the limit of 7 bars") as info:
        load_song(path, max_bars=7)
    assert info.value.reason == "too_long"
    assert load_mixture(path, max_bars=8)[0].shape[0] <= 8 * 16
    with pytest.raises(MidiError, match="over the limit of 7 bars"):
        load_mixture(path, max_bars=7)


def test_200k_time_signatures_are_read_in_linear_time(tmp_path: Path) -> None:
    """1.6 MB of time-signature events (3/4 and 4/4 on every tick): one line, no blow-up."""
    n = 200_000
    events = b"".join(b"\x01\xff\x58\x04" + (b"\x03" if k % 2 else b"\x04") + b"\x02\x18\x08"
                      for k in range(n))
    path = add_meta_track(write_midi(tmp_path / "meters.mid", dense_tracks(bars=8)), events)
    tracemalloc.start()
    try:
        with pytest.raises(SkipFile) as info:
            load_song(path)
        mixture, _, timing = load_mixture(path)
        midi = roll_to_midi(np.repeat(mixture[:, :, None], 5, axis=2), timing)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.reason == "not_4_4"
    message = str(info.value)
    assert f"({n + 1} events)" in message and len(message) < 300 and "\n" not in message
    assert len(timing.time_signatures) == n + 1  # every distinct event kept, once
    assert len(symusic.Score.from_midi(midi.data).time_signatures) == n + 1
    assert peak < 8 * PEAK_BYTES  # a few hundred bytes per event, nothing quadratic


def test_events_past_2_31_ticks_are_ignored(tmp_path: Path) -> None:
    """A tempo and a meter event 2**31 ticks in (wrapped to negative ticks by int32)."""
    path = write_midi(tmp_path / "late.mid", dense_tracks(bars=8))
    midi = mido.MidiFile(str(path))
    meta = [m for m in midi.tracks[0] if m.type != "end_of_track"]
    meta += [mido.MetaMessage("text", text="", time=MAX_DELTA) for _ in range(8)]
    meta += [mido.MetaMessage("set_tempo", tempo=250_000, time=100),
             mido.MetaMessage("time_signature", numerator=7, denominator=8)]
    midi.tracks[0] = mido.MidiTrack(meta)
    midi.save(str(path))
    assert min(t.time for t in read_score(path).tempos) < 0  # what symusic hands over
    mixture, _, timing = load_mixture(path)
    assert timing.tempos == [(0, 120.0)] and timing.time_signatures == [(0, 4, 4)]
    roll_to_midi(np.repeat(mixture[:, :, None], 5, axis=2), timing).save(tmp_path / "o.mid")


def test_tempo_zero_and_tpq_zero(tmp_path: Path) -> None:
    """0 microseconds per quarter means nothing and is ignored; 0 ticks per quarter is corrupt."""
    path = write_midi(tmp_path / "tempo0.mid", dense_tracks(bars=8), tempos=[(0, 120.0)])
    midi = mido.MidiFile(str(path))
    midi.tracks[0] = mido.MidiTrack(m.copy(tempo=0) if m.type == "set_tempo" else m
                                    for m in midi.tracks[0])
    midi.save(str(path))
    assert [t.mspq for t in read_score(path).tempos] == [0]
    timing = read_notes(path).timing()
    assert timing.tempos == [(0, 120.0)]  # MIDI's default stays in force
    mixture, _, timing = load_mixture(path)
    seconds = timing.step_to_seconds(np.array([0, 16, mixture.shape[0]]))
    assert np.isfinite(seconds).all() and seconds[1] == pytest.approx(2.0)
    roll_to_midi(np.repeat(mixture[:, :, None], 5, axis=2), timing).save(tmp_path / "o.mid")

    data = bytearray(path.read_bytes())
    data[12:14] = b"\x00\x00"  # division: 0 ticks per quarter note
    path.write_bytes(bytes(data))
    for loader in (load_song, load_mixture):
        with pytest.raises(MidiError, match="0 ticks per quarter note") as info:
            loader(path)
        assert info.value.reason == "unreadable"
