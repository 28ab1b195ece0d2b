"""utils/separation/notes.py: one instrument per input note, and the exact separated file."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
import symusic
import torch

from data.contract import BASS, DRUM, GUITAR, N_MUSIC, N_PITCH, PIANO, RENDER_PROGRAM, STRING
from data.midi import SongNotes, notes_from_score, read_notes
from data.roll import window_starts
from data.song_roll import load_mixture
from tests.fixtures_separation import separate_file
from utils.separation.file_outputs import output_paths
from utils.separation.first_pass import MixtureSong, note_grid
from utils.separation.notes import DECIDED_BY, assign_notes, separate_notes
from utils.separation.windows import song_prob_chunks

TPQ = 480


def expressive_song(path: Path) -> Path:
    """Six bars, four tracks, written with symusic at exact ticks.

    Off-grid starts and ends, velocities 31..127, a tempo change, a piano note and a
    string note of one pitch that overlap, a note below MIDI 24 and one above 95, and a
    drum track (with a key the drum merge does not keep).
    """
    rng = np.random.default_rng(7)
    score = symusic.Score(TPQ)
    score.tempos.append(symusic.Tempo(0, 96.0))
    score.tempos.append(symusic.Tempo(2 * 4 * TPQ + 5, 132.5))
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    score.key_signatures.append(symusic.KeySignature(0, 2, 0))
    piano = symusic.Track("Piano", 0, False)
    strings = symusic.Track("Strings", 48, False)
    bass = symusic.Track("Bass", 33, False)
    drums = symusic.Track("Drums", 0, True)
    for beat in range(24):
        t = beat * TPQ + int(rng.integers(-40, 41)) + 60
        for pitch in (60, 64, 67) if beat % 2 == 0 else (62, 65, 69):
            dur = int(rng.integers(90, 500))
            piano.notes.append(symusic.Note(t, dur, pitch, int(rng.integers(31, 128))))
        bass.notes.append(symusic.Note(t + 11, int(rng.integers(150, 470)),
                                       36 + beat % 5, int(rng.integers(40, 128))))
        drums.notes.append(symusic.Note(beat * TPQ + 3, 37, 36 if beat % 2 else 38, 100))
        drums.notes.append(symusic.Note(beat * TPQ + TPQ // 2 - 9, 25, 42, 64))
    drums.notes.append(symusic.Note(5 * TPQ + 77, 30, 81, 90))  # triangle: no drum row
    piano.notes.append(symusic.Note(2 * TPQ + 13, 1100, 76, 77))  # overlaps the string note
    strings.notes.append(symusic.Note(3 * TPQ - 101, 2 * TPQ + 33, 76, 52))
    strings.notes.append(symusic.Note(7 * TPQ + 5, 3 * TPQ, 72, 45))
    piano.notes.append(symusic.Note(9 * TPQ + 17, 300, 21, 99))  # below MIDI 24
    strings.notes.append(symusic.Note(11 * TPQ - 3, 700, 101, 58))  # above MIDI 95
    score.tracks.extend([piano, strings, bass, drums])
    score.dump_midi(str(path))
    return path


def random_probs(seed: int):
    gen = torch.Generator().manual_seed(seed)

    def prob_fn(batch: torch.Tensor) -> torch.Tensor:
        return torch.rand(batch.shape[0], N_MUSIC, *batch.shape[2:], generator=gen) * batch[:, :1]
    return prob_fn


def drum_everywhere(batch: torch.Tensor) -> torch.Tensor:
    probs = torch.full((batch.shape[0], N_MUSIC, *batch.shape[2:]), 0.1)
    probs[:, DRUM - 1] = 0.95
    return probs * batch[:, :1]  # channel 0: the mixture (channel 1: its note starts)


def silent(batch: torch.Tensor) -> torch.Tensor:
    return torch.zeros(batch.shape[0], N_MUSIC, *batch.shape[2:])


def note_tuples(notes: SongNotes) -> list[tuple[int, int, int, int]]:
    return sorted(zip(notes.pitch.tolist(), notes.start.tolist(), notes.end.tolist(),
                      notes.velocity.tolist()))


@pytest.mark.parametrize("prob_fn", [random_probs(0), random_probs(1), drum_everywhere, silent],
                         ids=["random0", "random1", "drum_everywhere", "silent"])
def test_every_input_note_comes_back_once(prob_fn, tmp_path: Path) -> None:
    song = expressive_song(tmp_path / "song.mid")
    out = separate_file(prob_fn, song, tmp_path / "out", batch_size=2,
                        sample_rate=8000, reference=True)
    original = read_notes(song)
    separated = read_notes(out.paths["midi"])
    assert note_tuples(separated) == note_tuples(original)  # drums included
    assert out.n_notes == len(original) == sum(out.per_instrument.values())
    np.testing.assert_array_equal(separated.tempos, original.tempos)
    assert separated.time_signatures == original.time_signatures
    assert separated.key_signatures == original.key_signatures
    # drum-channel notes stay drums, on the drum track; pitched notes never go there
    pitched_programs = {RENDER_PROGRAM[c] for c in (PIANO, GUITAR, BASS, STRING)}
    for track in separated.tracks:
        assert track.is_drum == track.name.startswith("drum")
        assert track.program == 0 if track.is_drum else track.program in pitched_programs
    drums_in = sorted(zip(original.pitch[original.is_drum].tolist(),
                          original.start[original.is_drum].tolist()))
    drums_out = sorted(zip(separated.pitch[separated.is_drum].tolist(),
                           separated.start[separated.is_drum].tolist()))
    assert drums_in == drums_out
    assert out.n_out_of_range == 2 and out.n_drum_channel == int(original.is_drum.sum())


def test_separated_file_loads_in_pretty_midi_mido_and_symusic(tmp_path: Path) -> None:
    song = expressive_song(tmp_path / "song.mid")
    out = separate_file(random_probs(3), song, tmp_path / "out", sample_rate=8000)
    data = out.paths["midi"].read_bytes()
    original = read_notes(song)
    want = note_tuples(original)
    # symusic
    assert note_tuples(notes_from_score(symusic.Score.from_midi(data))) == want
    # pretty_midi: every note, in ticks; programs of the contract; drums on their own
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    got = sorted((n.pitch, pm.time_to_tick(n.start), pm.time_to_tick(n.end), n.velocity)
                 for inst in pm.instruments for n in inst.notes)
    assert got == want
    for inst in pm.instruments:
        name = inst.name.split()[0]
        assert (name == "drum") == inst.is_drum
        if not inst.is_drum:
            assert inst.program == RENDER_PROGRAM[("piano", "guitar", "bass", "string")
                                                  .index(name) + 1]
    # mido: one note-on per note, the drum track on channel 10
    midi = mido.MidiFile(file=io.BytesIO(data))
    assert midi.ticks_per_beat == TPQ
    ons = [m for t in midi.tracks for m in t if m.type == "note_on" and m.velocity > 0]
    assert len(ons) == len(original)
    drum_channels = {m.channel for t in midi.tracks for m in t
                     if m.type == "note_on" and any(x.type == "track_name"
                                                    and x.name.startswith("drum") for x in t)}
    assert drum_channels == {9}


def notes_of(tracks: list[tuple[int, bool, list[tuple[int, int, int]]]]) -> SongNotes:
    """SongNotes from ``[(program, is_drum, [(start, end, pitch), ...]), ...]`` (tpq 4)."""
    score = symusic.Score(4)  # one tick = one 16th-note step
    for program, is_drum, notes in tracks:
        track = symusic.Track("", program, is_drum)
        for start, end, pitch in notes:
            track.notes.append(symusic.Note(start, end - start, pitch, 80))
        score.tracks.append(track)
    return notes_from_score(score)


def feed(acc, probs: np.ndarray, mixture: np.ndarray, cut: int) -> None:
    """Feed a whole-song probability array to an accumulator in two chunks."""
    acc.add(0, probs[:cut], mixture[:cut])
    acc.add(cut, probs[cut:], mixture[cut:])


def test_a_note_takes_the_mean_over_its_cells_across_chunks() -> None:
    notes = notes_of([(0, False, [(2, 6, 34), (6, 7, 34)])])  # row 10: steps 2..5, then 6
    t = 8
    probs = np.zeros((t, N_PITCH, N_MUSIC), dtype=np.float32)
    probs[2:4, 10, PIANO - 1] = 0.6
    probs[4:6, 10, PIANO - 1] = 0.1
    probs[2:4, 10, BASS - 1] = 0.2
    probs[4:6, 10, BASS - 1] = 0.9  # mean piano 0.35 < mean bass 0.55
    probs[6, 10, GUITAR - 1] = 0.4
    mixture = np.zeros((t, N_PITCH), dtype=bool)
    mixture[2:7, 10] = True
    acc = note_grid(notes, t)
    feed(acc, probs, mixture, cut=3)  # the first note spans both chunks
    result = assign_notes(acc, MixtureSong(notes, mixture))
    assert result.instrument.tolist() == [BASS, GUITAR]
    np.testing.assert_allclose(result.probs[0, [PIANO - 1, BASS - 1]], [0.35, 0.55], atol=1e-6)
    assert [DECIDED_BY[d] for d in result.decided_by] == ["model", "model"]


def test_short_notes_out_of_range_notes_and_drums() -> None:
    notes = notes_of([
        (0, False, [(0, 0, 40)]),  # zero-length: its one cell, step 0, row 16
        (0, False, [(1, 3, 10), (5, 6, 110)]),  # below 24 -> row 0; above 95 -> row 71
        (0, True, [(0, 1, 36), (2, 3, 81)]),  # kick -> row 63; key 81 has no row
    ])
    t = 8
    probs = np.zeros((t, N_PITCH, N_MUSIC), dtype=np.float32)
    mixture = np.zeros((t, N_PITCH), dtype=bool)
    mixture[0, 16] = True
    probs[0, 16] = [0.1, 0.8, 0.2, 0.1, 0.9]  # drum is highest: a pitched note still can't
    mixture[1:3, 0] = True
    probs[1:3, 0, BASS - 1] = 0.7  # row 0 while the low note sounds: bass
    mixture[0:2, 71] = True  # row 71 sounds only before the high note: song average there
    probs[0:2, 71, PIANO - 1] = 0.6
    mixture[0, 63] = True
    probs[0, 63] = [0.9, 0.0, 0.0, 0.0, 0.1]  # the model thinks the kick is a piano
    acc = note_grid(notes, t)
    feed(acc, probs, mixture, cut=1)
    result = assign_notes(acc, MixtureSong(notes, mixture))
    assert result.instrument.tolist() == [GUITAR, BASS, PIANO, DRUM, DRUM]
    assert [DECIDED_BY[d] for d in result.decided_by] == [
        "model", "nearest_row", "nearest_row", "drum_channel", "drum_channel"]
    assert np.isnan(result.probs[4]).all()  # no cell for the unkept drum key
    by_model = assign_notes(acc, MixtureSong(notes, mixture), drums_by_model=True)
    assert by_model.instrument.tolist() == [GUITAR, BASS, PIANO, PIANO, DRUM]
    assert DECIDED_BY[by_model.decided_by[3]] == "model"


def naive_stitch(prob_fn, mixture: np.ndarray) -> np.ndarray:
    """Every window at once, zero-padded, summed and divided by its coverage: [T, 72, C]."""
    n_steps = len(mixture)
    starts = window_starts(n_steps)
    padded = np.zeros((starts[-1] + 64, N_PITCH), dtype=bool)
    padded[:n_steps] = mixture
    windows = torch.from_numpy(np.stack([padded[s: s + 64] for s in starts])).float()
    probs = prob_fn(windows.unsqueeze(1)).numpy()  # (W, C, 64, 72)
    total = np.zeros((len(padded), N_PITCH, probs.shape[1]))
    count = np.zeros((len(padded), 1, 1))
    for start, window in zip(starts, probs):
        total[start: start + 64] += np.transpose(window, (1, 2, 0))
        count[start: start + 64] += 1
    return (total / count)[:n_steps]


@pytest.mark.parametrize("n_steps", [5, 64, 100, 257])
@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_chunks_equal_whole_song_stitching(n_steps: int, batch_size: int) -> None:
    mixture = np.random.default_rng(n_steps).random((n_steps, N_PITCH)) < 0.1
    prob_fn = random_probs(5)
    whole_fn = random_probs(5)  # same sequence of random numbers, whole song at once
    whole = naive_stitch(whole_fn, mixture)
    chunks = list(song_prob_chunks(prob_fn, mixture, batch_size))
    assert [c[0] for c in chunks] == list(np.cumsum([0] + [len(c[1]) for c in chunks[:-1]]))
    assert all(len(c[1]) <= batch_size * 16 + 64 for c in chunks)  # bounded, whatever T
    np.testing.assert_allclose(np.concatenate([c[1] for c in chunks]), whole, atol=1e-6)


def test_separate_notes_matches_direct_accumulation(tmp_path: Path) -> None:
    song = expressive_song(tmp_path / "song.mid")
    mixture, _, _ = load_mixture(song)
    notes = read_notes(song)
    a = separate_notes(random_probs(9), MixtureSong(notes, mixture), batch_size=1)
    b = separate_notes(random_probs(9), MixtureSong(notes, mixture), batch_size=64)
    np.testing.assert_array_equal(a.instrument, b.instrument)
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)


def test_json_bars_and_overwrite(tmp_path: Path) -> None:
    song = expressive_song(tmp_path / "song.mid")
    out_dir = tmp_path / "out"
    out = separate_file(random_probs(2), song, out_dir, write_json=True, bars=(2, 3),
                        sample_rate=8000)
    assert out.excerpt == (2, 3)
    assert set(out.paths) == {"midi", "wav", "mixture_wav", "png", "json"}
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        p.name for p in output_paths(song, out_dir, write_json=True).values())
    payload = json.loads(out.paths["json"].read_text())
    original = read_notes(song)
    listed = payload["notes"]
    assert len(listed) == len(original)
    assert sorted((n["track"], n["index"]) for n in listed) == sorted(
        zip(original.track.tolist(), original.index.tolist()))
    first = listed[0]
    assert set(first) == {"track", "index", "pitch", "start", "end", "velocity",
                          "instrument", "decided_by", "probabilities"}
    assert payload["instruments"] == ["piano", "guitar", "bass", "string", "drum"]
    assert all(n["instrument"] == "drum" for n in listed
               if original.is_drum[original.track == n["track"]].all())
    before = {p.name: p.stat().st_mtime_ns for p in out_dir.iterdir()}
    with pytest.raises(FileExistsError, match="overwrite"):
        separate_file(random_probs(2), song, out_dir, write_json=True)
    assert {p.name: p.stat().st_mtime_ns for p in out_dir.iterdir()} == before
    again = separate_file(random_probs(4), song, out_dir, overwrite=True,
                          sample_rate=8000)
    assert again.excerpt == (1, 6)  # the default: 16 bars from the first that holds notes
    with pytest.raises(ValueError, match="bars 9:9"):
        separate_file(random_probs(2), song, tmp_path / "other", bars=(9, 9))
    assert not (tmp_path / "other").exists()


def numpy_probs(batch: torch.Tensor) -> torch.Tensor:
    """Fixed probabilities allocated by numpy (so tracemalloc sees them)."""
    probs = np.full((batch.shape[0], N_MUSIC, *batch.shape[2:]), 0.2, dtype=np.float32)
    return torch.from_numpy(probs) * batch[:, :1]


def stitching_peak_bytes(n_steps: int) -> int:
    """Peak bytes numpy allocates while a song's chunks are stitched and consumed."""
    mixture = np.zeros((n_steps, N_PITCH), dtype=bool)
    mixture[::3, ::5] = True
    tracemalloc.start()
    for _, chunk in song_prob_chunks(numpy_probs, mixture, batch_size=8):
        del chunk
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_stitching_memory_is_flat_in_song_length() -> None:
    short, long = stitching_peak_bytes(2_000), stitching_peak_bytes(20_000)
    assert long < 1.1 * short  # ten times the song, the same working memory


def test_progress_bar_in_windows_per_second(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    song = expressive_song(tmp_path / "song.mid")
    separate_file(random_probs(0), song, tmp_path / "out", sample_rate=8000,
                  progress=True)
    err = capsys.readouterr().err
    assert "separating" in err and "window/s" in err
