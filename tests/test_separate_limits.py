"""separate.py on hostile input: every cost bounded, every refusal one line, before the work.

Tiny files made here with mido; the model is a fixed function (every note piano), so no
test needs a trained network. Each test reproduces one row of the review "Reliability,
round 3" and holds the fix to it.
"""

from __future__ import annotations

import io
import tracemalloc
import wave
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
import symusic
import torch

import separate
import utils.separation.file_job as midi_files
import utils.separation.file_outputs as file_outputs
from data.contract import N_MUSIC, PIANO
from data.fileio import CLAIM_GLOB, OutputsBusy, claim_outputs, claim_path
from data.midi import MidiError, read_notes, read_score
from data.notes import overlap_layers
from tests.fixtures_separation import separate_file
from utils.rendering.audio import AudioNotes, fluidsynth_missing, render_notes, write_wav
from utils.separation.file_job import Limits
from utils.separation.file_outputs import check_outputs, output_paths
from utils.separation.first_pass import MixtureSong
from utils.separation.notes import NoteAssignment, NoteSeparator

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "tiny.json"
FS = 8000
BAR = 4 * 480  # ticks in a 4/4 bar at 480 ticks per quarter


def midi_file(path: Path, notes: list[tuple[int, int, int]], *, tpq: int = 480,
              tempo: int = 500_000, controls: int = 0, program: int = 0) -> Path:
    """One track of ``(start tick, end tick, pitch)`` notes (velocity 90), with ``controls``
    controller events (volume, one per tick from 0), after a tempo track."""
    events: list[tuple[int, int, mido.Message]] = []
    for k, (start, end, pitch) in enumerate(notes):
        events.append((start, 2 * k + 1, mido.Message("note_on", note=pitch, velocity=90)))
        events.append((end, 2 * k, mido.Message("note_off", note=pitch, velocity=0)))
    events += [(t, -1, mido.Message("control_change", control=7, value=t % 128))
               for t in range(controls)]
    events.sort(key=lambda e: (e[0], e[1]))
    track, now = mido.MidiTrack([mido.Message("program_change", program=program)]), 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(type=1, ticks_per_beat=tpq)
    midi.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=tempo)]))
    midi.tracks.append(track)
    midi.save(str(path))
    return path


class Piano:
    """A separator that says "piano" everywhere, counting the windows it is shown (no
    song-level second pass)."""

    def __init__(self) -> None:
        self.windows = 0

    def separate_notes(self, song: MixtureSong, **options: bool) -> NoteAssignment:
        return NoteSeparator(self.probs).separate_notes(song, **options)

    def probs(self, batch: torch.Tensor) -> torch.Tensor:
        self.windows += batch.shape[0]
        out = torch.zeros(batch.shape[0], N_MUSIC, *batch.shape[2:])
        out[:, PIANO - 1] = 1.0
        return out * batch[:, :1]

    def describe(self) -> str:
        return "piano everywhere"


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> list[Piano]:
    """separate.py's model replaced by :class:`Piano`; the list holds every one loaded."""
    loaded: list[Piano] = []

    def from_config(cfg: object, device: object = None) -> Piano:
        loaded.append(Piano())
        return loaded[-1]

    monkeypatch.setattr(separate.Separator, "from_config", staticmethod(from_config))
    return loaded


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = separate.main([*args, "--config", str(CONFIG), "--no-progress"])
    out = capsys.readouterr()
    return code, out.out, out.err


def wav_info(path: Path) -> tuple[int, int]:
    """``(sample rate in the header, frames)`` of a WAV file."""
    with wave.open(str(path)) as fh:
        return fh.getframerate(), fh.getnframes()


def note_tuples(path: Path) -> list[tuple[int, int, int, int]]:
    notes = read_notes(path)
    return sorted(zip(notes.pitch.tolist(), notes.start.tolist(), notes.end.tolist(),
                      notes.velocity.tolist()))


# --- 1. audio and picture of any song are bounded ------------------------------------
def test_audio_of_a_far_note_is_cut_and_never_allocated_past_the_limit() -> None:
    """A note in bar 1999 at tempo 0xFFFFFF starts 134,000 s in (2.7-6 GB of audio before)."""
    seconds = 16.777215 * 4 * 1998  # 0xFFFFFF microseconds per quarter
    song = AudioNotes(channel=np.array([0, 0]), pitch=np.array([60, 62]),
                      velocity=np.array([90, 90]), start=np.array([0.0, seconds]),
                      end=np.array([0.5, seconds + 10]), programs={0: 0})
    tracemalloc.start()
    try:
        audio = render_notes(song, FS, max_seconds=2.0, method="sine")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert audio.audio.size == 2 * FS and audio.fs == FS
    assert peak < 20 * 2 * FS * 4  # a few arrays of the cut length, nothing of 134,000 s
    assert len(audio.notes) == 1 and "audio cut at 2 s of the song's 134,094 s" in audio.notes[0]


def test_far_note_file_costs_its_notes_not_its_length(tmp_path: Path) -> None:
    """The 379-byte file of the review: tempo 0xFFFFFF, a note in bar 1 and in bar 1999.
    The audio is cut at max_audio_seconds, the picture at 64 bars, and the model sees only
    the windows that hold notes (not 1,996)."""
    song = midi_file(tmp_path / "far.mid", [(0, 480, 60), (1998 * BAR, 1998 * BAR + 480, 62)],
                     tempo=0xFFFFFF)
    assert song.stat().st_size < 400
    model = Piano()
    out = separate_file(model.probs, song, tmp_path / "out", sample_rate=FS,
                        bars=(1, 1999), limits=Limits(max_audio_seconds=2.0))
    assert model.windows <= 2 * 64  # the batches holding the two notes' windows
    for key in ("wav", "mixture_wav"):
        assert wav_info(out.paths[key]) == (FS, 2 * FS)
    assert out.excerpt == (1, 64)
    assert any("audio cut at 2 s" in w for w in out.warnings)
    assert any("picture: bars 1-64 drawn of 1-1999" in w for w in out.warnings)
    assert note_tuples(out.paths["midi"]) == note_tuples(song)


# --- 2. overlapping notes: one render, controllers once ------------------------------
def first_fit_reference(pitch: np.ndarray, start: np.ndarray, end: np.ndarray) -> list[int]:
    """The quadratic first fit of the earlier data/notes.py (the rule the layers keep)."""
    layer = [0] * pitch.size
    last: dict[int, list[tuple[int, int]]] = {}
    for k in np.lexsort((end, start, pitch)).tolist():
        p, s, e = int(pitch[k]), int(start[k]), int(end[k])
        ends = last.setdefault(p, [])
        for j, (ls, le) in enumerate(ends):
            if le < s or (le == s and le > ls and e > s) or ((ls, le) == (s, e) and e > s):
                ends[j] = (s, e)
                layer[k] = j
                break
        else:
            layer[k] = len(ends)
            ends.append((s, e))
    return layer


def test_overlap_layers_keep_the_first_fit_rule_in_n_log_n() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        k = int(rng.integers(0, 30))
        pitch, start = rng.integers(60, 63, k), rng.integers(0, 20, k)
        end = start + rng.integers(0, 6, k)
        assert overlap_layers(pitch, start, end).tolist() == \
            first_fit_reference(pitch, start, end)
    n = 20_000  # all overlapping, one pitch: 2 * 10**8 steps of the earlier loop
    layers = overlap_layers(np.full(n, 60), np.arange(n), np.arange(n) + n)
    assert sorted(layers.tolist()) == list(range(n))


def test_overlapping_layers_render_once_and_controllers_are_copied_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """300-deep overlaps of one pitch with 2,000 controllers: before, 300 FluidSynth
    renders and 300 copies of every controller."""
    notes = [(4 * i, 4 * i + 3000, 60) for i in range(300)]
    song = midi_file(tmp_path / "deep.mid", notes, controls=2000)
    renders: list[AudioNotes] = []

    def counting(audio_notes: AudioNotes, *args: object, **kwargs: object) -> object:
        renders.append(audio_notes)
        return render_notes(audio_notes, *args, **kwargs)

    monkeypatch.setattr(file_outputs, "render_notes", counting)
    out = separate_file(Piano().probs, song, tmp_path / "out", sample_rate=FS)
    assert len(renders) == 2  # the separated audio and the mixture, one pass each
    assert all(set(r.channel.tolist()) == {0} and r.control_time.size == 2000 for r in renders)
    assert len(out.tracks) == 300 and [t.n_controls for t in out.tracks] == [2000] + [0] * 299
    midi = mido.MidiFile(str(out.paths["midi"]))
    per_track = [sum(m.type == "control_change" for m in t) for t in midi.tracks]
    assert per_track[1] == 2000 and sum(per_track) == 2000
    assert note_tuples(out.paths["midi"]) == note_tuples(song)  # every note once, exact
    data = out.paths["midi"].read_bytes()
    back = symusic.Score.from_midi(data)
    assert sum(len(t.notes) for t in back.tracks) == 300


def test_deeper_overlaps_than_the_limit_are_refused_before_the_work(tmp_path: Path) -> None:
    song = midi_file(tmp_path / "deep.mid", [(i, i + 1000, 60) for i in range(50)])
    model = Piano()
    with pytest.raises(MidiError, match="50 notes of one pitch sound at once.*--max-overlap"):
        separate_file(model.probs, song, tmp_path / "out", limits=Limits(max_overlap=20))
    assert model.windows == 0 and not (tmp_path / "out").exists()


# --- 3. long songs at high resolution -------------------------------------------------
def test_song_past_pretty_midis_tick_check_is_separated(tmp_path: Path) -> None:
    """703 bars at 3,840 ticks per quarter: pretty_midi calls tick 10,800,000 corrupt,
    which failed the audio after the whole separation."""
    tpq, bar = 3840, 4 * 3840
    song = midi_file(tmp_path / "long.mid", [(0, tpq, 60), (702 * bar, 702 * bar + tpq, 64)],
                     tpq=tpq)
    with pytest.raises(ValueError, match="likely corrupt"):
        pretty_midi.PrettyMIDI(str(song))  # what the audio used to go through
    out = separate_file(Piano().probs, song, tmp_path / "out", sample_rate=FS,
                        limits=Limits(max_audio_seconds=3.0))
    assert all(p.is_file() for p in out.paths.values())
    assert note_tuples(out.paths["midi"]) == note_tuples(song)
    assert wav_info(out.paths["wav"]) == (FS, 3 * FS)


# --- 4. and 5. size, notes and header checked before the song is built ----------------
def test_note_count_is_checked_before_any_array_of_the_song(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], fake_model: list[Piano]) -> None:
    song = midi_file(tmp_path / "many.mid", [(i, i + 1, 36 + i % 48) for i in range(3000)])

    def never(*args: object) -> None:
        raise AssertionError("the notes were built")

    monkeypatch.setattr("data.midi.notes_from_score", never)
    with pytest.raises(MidiError, match="3,000 notes, over the limit of 1,000") as exc:
        separate_file(Piano().probs, song, tmp_path / "out", limits=Limits(max_notes=1000))
    assert exc.value.reason == "too_many_notes"
    code, stdout, err = run_cli([str(song), "-o", str(tmp_path / "cli"), "--max-notes", "1000"],
                                capsys)
    lines = err.strip().splitlines()
    assert code == 2 and stdout == "" and len(lines) == 1
    assert lines[0].startswith("error: ") and "(--max-notes)" in lines[0]
    code, _, err = run_cli([str(song), "-o", str(tmp_path / "cli"), "--max-file-mb", "0.01"],
                           capsys)
    assert code == 2 and "over the limit of 10,485 bytes (--max-file-mb)" in err
    assert not (tmp_path / "cli").exists()


def sparse_file(path: Path, head: bytes, size: int) -> Path:
    """A file of ``size`` bytes that takes no disk space: ``head``, then a hole."""
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(size)
    return path


@pytest.mark.parametrize("head,size,reason", [
    (b"", 2**30, "not_midi"),  # 1 GiB of zeros named .mid (the review's was 4 GB)
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0", 64 * 2**20, "too_large"),
])
def test_header_and_size_are_checked_before_the_file_is_read(
        tmp_path: Path, head: bytes, size: int, reason: str) -> None:
    path = sparse_file(tmp_path / "huge.mid", head, size)
    tracemalloc.start()
    try:
        with pytest.raises(MidiError) as exc:
            read_score(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert exc.value.reason == reason and peak < 2**20


def rmid(midi: bytes, chunks: bytes = b"") -> bytes:
    """A RIFF RMID file wrapping ``midi`` in its data chunk (after ``chunks``)."""
    body = b"RMID" + chunks + b"data" + len(midi).to_bytes(4, "little") + midi
    return b"RIFF" + len(body).to_bytes(4, "little") + body


def test_riff_rmid_files_are_unwrapped(tmp_path: Path) -> None:
    plain = midi_file(tmp_path / "plain.mid", [(0, 480, 60), (480, 960, 64)])
    wrapped = tmp_path / "wrapped.rmi"
    info = b"LIST" + (5).to_bytes(4, "little") + b"INFOx\x00"  # odd size: padded
    wrapped.write_bytes(rmid(plain.read_bytes(), info))
    assert note_tuples(wrapped) == note_tuples(plain)
    bad = tmp_path / "bad.rmi"
    bad.write_bytes(rmid(plain.read_bytes())[:-10])
    with pytest.raises(MidiError) as exc:
        read_score(bad)
    assert exc.value.reason == "truncated"
    bad.write_bytes(rmid(b"not midi at all"))
    with pytest.raises(MidiError, match="no MThd"):
        read_score(bad)


# --- 6. and 7. outputs: never the input, never two runs at once ---------------------
def test_output_that_is_the_input_is_refused(tmp_path: Path, fake_model: list[Piano],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    song = midi_file(tmp_path / "song.png", [(0, 480, 60)])
    before = song.read_bytes()
    code, _, err = run_cli([str(song), "-o", str(tmp_path), "--overwrite"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "is the input file itself" in lines[0]
    assert song.read_bytes() == before and not fake_model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.png"]


def test_a_second_run_into_the_same_outputs_is_refused(
        tmp_path: Path, fake_model: list[Piano], capsys: pytest.CaptureFixture[str]) -> None:
    song = midi_file(tmp_path / "song.mid", [(0, 480, 60)])
    out = tmp_path / "out"
    out.mkdir()
    paths = output_paths(song, out)
    with claim_outputs(paths.values()):  # a first run, still working
        with pytest.raises(OutputsBusy, match="being written by another run"):
            separate_file(Piano().probs, song, out, sample_rate=FS)
        code, _, err = run_cli([str(song), "-o", str(out), "--sample-rate", str(FS)], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert "being written by another run" in err
        assert len(list(out.glob(CLAIM_GLOB))) == len(paths)  # only the first run's claims
    assert list(out.iterdir()) == []  # the refused runs left nothing; the claims are gone
    claim_path(paths["png"]).write_text("4242\n")  # left by a killed run: nobody holds it
    code, _, err = run_cli([str(song), "-o", str(out), "--sample-rate", str(FS)], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths.values())


def test_a_failed_run_leaves_no_output_temporary_or_claim(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    song = midi_file(tmp_path / "song.mid", [(0, 480, 60)])

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(midi_files, "plot_comparison", disk_full)
    with pytest.raises(OSError, match="No space"):
        separate_file(Piano().probs, song, tmp_path / "out", sample_rate=FS)
    assert list((tmp_path / "out").iterdir()) == []


# --- 14. sample rates -----------------------------------------------------------------
@pytest.mark.parametrize("rate", ["4000000000", "1", "100000000", "7999", "192001"])
def test_sample_rate_out_of_range_is_refused_up_front(
        rate: str, tmp_path: Path, fake_model: list[Piano],
        capsys: pytest.CaptureFixture[str]) -> None:
    song = midi_file(tmp_path / "song.mid", [(0, 480, 60)])
    with pytest.raises(SystemExit) as exc:
        separate.main([str(song), "-o", str(tmp_path / "out"), "--sample-rate", rate])
    assert exc.value.code == 2 and "--sample-rate must be 8000..192000" in capsys.readouterr().err
    assert not fake_model and not (tmp_path / "out").exists()


def test_wav_header_says_the_rate_rendered(tmp_path: Path) -> None:
    song = midi_file(tmp_path / "song.mid", [(0, 480, 60), (480, 960, 64)])
    out = separate_file(Piano().probs, song, tmp_path / "out", sample_rate=192_000)
    rate, frames = wav_info(out.paths["wav"])
    assert rate == out.sample_rate and frames == pytest.approx(2.0 * rate, abs=2)  # 1 s + tail
    if fluidsynth_missing() is None:  # FluidSynth renders at most 96 kHz: said, not hidden
        assert rate == 96_000 and any("96,000 Hz" in w for w in out.warnings)
    with pytest.raises(ValueError, match="sample rate"):
        write_wav(tmp_path / "x.wav", np.zeros(4), 4_000_000_000)
    assert not (tmp_path / "x.wav").exists()


# --- minor ------------------------------------------------------------------------------
def test_long_input_names_fit_and_overlong_ones_are_refused_first(tmp_path: Path) -> None:
    song = midi_file(tmp_path / ("n" * 230 + ".mid"), [(0, 480, 60)])
    out = separate_file(Piano().probs, song, tmp_path / "out", sample_rate=FS)
    assert all(p.is_file() for p in out.paths.values())
    longer = midi_file(tmp_path / ("n" * 245 + ".mid"), [(0, 480, 60)])
    model = Piano()
    with pytest.raises(ValueError, match="over the 255 a file name may have"):
        separate_file(model.probs, longer, tmp_path / "other")
    assert model.windows == 0 and not (tmp_path / "other").exists()


def test_control_characters_in_names_stay_on_one_error_line(
        tmp_path: Path, fake_model: list[Piano], capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "two\nlines\x1b[31m.mid"
    bad.write_text("not MIDI")
    code, _, err = run_cli([str(bad), "-o", str(tmp_path / "out")], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert "two\\nlines\\x1b[31m.mid" in err


@pytest.mark.parametrize("device", ["meta", "xla", "cpu:3", "cuda:99", "nonsense"])
def test_unusable_device_is_named_before_any_work(
        device: str, tmp_path: Path, fake_model: list[Piano],
        capsys: pytest.CaptureFixture[str]) -> None:
    song = midi_file(tmp_path / "song.mid", [(0, 480, 60)])
    code, _, err = run_cli([str(song), "-o", str(tmp_path / "out"), "--device", device],
                           capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: --device {device!r}")
    assert "checkpoint" not in err and not fake_model


@pytest.mark.skipif(fluidsynth_missing() is not None, reason="FluidSynth not installed")
def test_fluidsynth_warnings_are_one_line(capfd: pytest.CaptureFixture[str]) -> None:
    """1,000 notes at once made FluidSynth print a warning per voice it could not find."""
    k = 1000
    song = AudioNotes(channel=np.zeros(k, dtype=np.int64), pitch=24 + np.arange(k) % 72,
                      velocity=np.full(k, 100), start=np.zeros(k), end=np.full(k, 0.5),
                      programs={0: 0})
    audio = render_notes(song, FS)
    captured = capfd.readouterr()
    assert "fluidsynth" not in (captured.err + captured.out).lower()
    assert [n for n in audio.notes if "voices" in n] and len(audio.notes) <= 2


def test_check_outputs_refuses_a_hard_link_to_the_input(tmp_path: Path) -> None:
    song = midi_file(tmp_path / "song.mid", [(0, 480, 60)])
    out = tmp_path / "out"
    out.mkdir()
    (out / "song.png").hardlink_to(song)
    with pytest.raises(ValueError, match="is the input file itself"):
        check_outputs(output_paths(song, out), overwrite=True, source=song)
    assert io.BytesIO(song.read_bytes()).read(4) == b"MThd"
