"""Tests of separate.py (and utils.separation.file_job.separate_midi_file) on small MIDI files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mido
import pretty_midi
import pytest

import separate
from data.midi import SongNotes, read_notes
from tests.fixtures_midi import far_note_file
from utils.core.config import Config
from utils.separation.file_job import meter_warning

ROOT = Path(__file__).resolve().parents[1]


def short_song(path: Path, bars: int = 7, qpm: float = 100.0,
               meter: tuple[int, int] | None = (4, 4)) -> Path:
    """A small MIDI file: piano chords, a bass line and drums in 8th notes (pretty_midi).

    With 7 bars every track has more than 50 notes, so the file also has a reference
    multitrack under the data contract's track filter.
    """
    pm = pretty_midi.PrettyMIDI(initial_tempo=qpm)
    if meter is not None:
        pm.time_signature_changes.append(pretty_midi.TimeSignature(*meter, 0.0))
    beat = 60.0 / qpm
    piano = pretty_midi.Instrument(program=0, name="piano")
    bass = pretty_midi.Instrument(program=33, name="bass")
    drums = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
    for k in range(bars * 8):  # one chord, one bass note and one drum hit per 8th
        start, end = k * beat / 2, (k + 1) * beat / 2
        for pitch in (60 + k % 5, 64 + k % 5, 67):
            piano.notes.append(pretty_midi.Note(80, pitch, start, end))
        bass.notes.append(pretty_midi.Note(80, 36 + k % 7, start, end))
        drums.notes.append(pretty_midi.Note(80, 36 if k % 2 == 0 else 38, start, start + 0.1))
    pm.instruments += [piano, bass, drums]
    pm.write(str(path))
    return path


def write_config(cfg: Config, path: Path, **overrides: object) -> Path:
    """Write a Config (plus overrides) as a JSON file for --config."""
    path.write_text(json.dumps({**cfg.to_dict(), **overrides}))
    return path


@pytest.fixture()
def partition_config(tiny_run: Config, tmp_path: Path) -> Path:
    """The tiny trained run's config, in partition mode."""
    return write_config(tiny_run, tmp_path / "cfg.json", assign="partition")


def note_tuples(notes: SongNotes) -> list[tuple[int, int, int, int]]:
    """The multiset of (pitch, start tick, end tick, velocity) of a file's notes."""
    return sorted(zip(notes.pitch.tolist(), notes.start.tolist(), notes.end.tolist(),
                      notes.velocity.tolist()))


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = separate.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_separate_gives_every_input_note_back(
        partition_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    song = short_song(tmp_path / "song.mid")
    out = tmp_path / "out"
    code, stdout, stderr = run_main([str(song), "-o", str(out), "--config",
                                     str(partition_config), "--reference", "--no-progress"],
                                    capsys)
    assert code == 0, stderr
    names = {"song.separated.mid", "song.separated.wav", "song.mixture.wav", "song.png"}
    assert {p.name for p in out.iterdir()} == names  # no temporary files left
    for name in names:
        assert str(out / name) in stdout
        assert (out / name).stat().st_size > 0
    original, separated = read_notes(song), read_notes(out / "song.separated.mid")
    assert note_tuples(separated) == note_tuples(original)
    assert f"{len(original)} notes" in stdout and "kept: tempo map" in stdout
    assert "drum-channel notes stayed drums" in stdout
    separated_pm = pretty_midi.PrettyMIDI(str(out / "song.separated.mid"))
    names_out = {inst.name for inst in separated_pm.instruments}
    assert names_out <= {"piano", "guitar", "bass", "string", "drum"}
    assert stderr == ""


def test_separate_refuses_to_overwrite(partition_config: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    song = short_song(tmp_path / "song.mid", bars=2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "song.png").write_bytes(b"precious")
    args = [str(song), "-o", str(out), "--config", str(partition_config), "--no-progress"]
    code, stdout, stderr = run_main(args, capsys)
    assert code == 2 and stdout == ""
    assert stderr.strip() == f"error: {out / 'song.png'} exists; pass --overwrite to replace it"
    assert [p.name for p in out.iterdir()] == ["song.png"]
    assert (out / "song.png").read_bytes() == b"precious"
    code, stdout, _ = run_main([*args, "--overwrite", "--json", "--bars", "2:2"], capsys)
    assert code == 0 and "(bars 2-2)" in stdout
    assert (out / "song.png").read_bytes()[:4] == b"\x89PNG"
    listed = json.loads((out / "song.notes.json").read_text())["notes"]
    assert len(listed) == len(read_notes(song))


@pytest.mark.parametrize("bars", ["3", "0:2", "4:2", "a:b"])
def test_bad_bars_are_a_usage_error(bars: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    song = short_song(tmp_path / "s.mid", bars=1)
    with pytest.raises(SystemExit) as exc:
        separate.main([str(song), "--bars", bars])
    assert exc.value.code == 2
    assert "--bars" in capsys.readouterr().err


def test_separate_without_time_signature_and_other_meter(
        partition_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = short_song(tmp_path / "plain.mid", bars=2, meter=None)
    code, _, err = run_main([str(plain), "-o", str(tmp_path / "a"), "--config",
                             str(partition_config), "--no-progress"], capsys)
    assert code == 0 and "warning" not in err
    assert (tmp_path / "a" / "plain.separated.mid").is_file()
    waltz = short_song(tmp_path / "waltz.mid", bars=2, meter=(3, 4))
    code, _, err = run_main([str(waltz), "-o", str(tmp_path / "b"), "--config",
                             str(partition_config), "--no-progress"], capsys)
    assert code == 0
    assert "warning:" in err and "3/4" in err and "4/4" in err
    assert (tmp_path / "b" / "waltz.png").is_file()


def test_meter_warning() -> None:
    assert meter_warning("x.mid", []) is None
    assert meter_warning("x.mid", [(0, 4, 4)]) is None
    msg = meter_warning("x.mid", [(0, 4, 4), (1920, 6, 8)])
    assert msg is not None and "6/8 at tick 1920" in msg and "\n" not in msg
    many = meter_warning("x.mid", [(k, 3 + k % 2, 4) for k in range(100_000)])
    assert many is not None and "(50000 events)" in many and len(many) < 300


def bad_inputs(tmp_path: Path) -> dict[str, Path]:
    """Files separate.py must refuse: not MIDI, truncated, no notes, absurdly long."""
    text = tmp_path / "notes.mid"
    text.write_text("this is not a MIDI file\n")
    whole = short_song(tmp_path / "whole.mid", bars=4).read_bytes()
    truncated = tmp_path / "truncated.mid"
    truncated.write_bytes(whole[: len(whole) // 2])
    empty_pm = pretty_midi.PrettyMIDI()
    empty_pm.instruments.append(pretty_midi.Instrument(program=0))
    empty = tmp_path / "empty.mid"
    empty_pm.write(str(empty))
    far = far_note_file(tmp_path / "far.mid", 2**31)  # 1 kB, a note 2**31 ticks in
    return {"not MIDI": text, "truncated": truncated, "no notes": empty, "too long": far}


def test_bad_inputs_give_one_line_errors_and_no_files(
        tiny_run: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tiny_run, tmp_path / "cfg.json")
    for label, path in bad_inputs(tmp_path).items():
        out = tmp_path / f"out-{path.stem}"
        code, stdout, stderr = run_main([str(path), "-o", str(out), "--config", str(cfg)],
                                        capsys)
        assert code == 2, label
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (label, stderr)
        assert str(path) in lines[0], label
        assert not out.exists() or not any(out.iterdir()), label


def test_missing_config_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    song = short_song(tmp_path / "s.mid", bars=1)
    code, _, err = run_main([str(song), "--config", str(tmp_path / "nope.json")], capsys)
    assert code != 0 and err.startswith("error: ") and "nope.json" in err


def test_command_line_exit_status(tiny_run: Config, tmp_path: Path) -> None:
    """The real entry point: exit status non-zero and one stderr line on a bad file."""
    cfg = write_config(tiny_run, tmp_path / "cfg.json")
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd\x00\x00")
    proc = subprocess.run([sys.executable, str(ROOT / "separate.py"), str(bad), "-o",
                           str(tmp_path / "out"), "--config", str(cfg)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.strip().startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_tempo_zero_file_is_separated(partition_config: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A set_tempo of 0 microseconds per quarter (ZeroDivisionError before) is ignored."""
    song = short_song(tmp_path / "zero.mid")
    midi = mido.MidiFile(str(song))
    midi.tracks[0] = mido.MidiTrack(m.copy(tempo=0) if m.type == "set_tempo" else m
                                    for m in midi.tracks[0])
    midi.save(str(song))
    code, _, err = run_main([str(song), "-o", str(tmp_path / "out"), "--config",
                             str(partition_config)], capsys)
    assert code == 0, err
    assert (tmp_path / "out" / "zero.separated.mid").is_file()


@pytest.mark.parametrize("key,value", [("latent_dim", 64), ("time_steps", 200),
                                       ("beta_end", 0.03)])
def test_config_checkpoint_mismatch_is_refused(tiny_run: Config, tmp_path: Path, key: str,
                                               value: object,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tiny_run, tmp_path / "cfg.json", **{key: value})
    song = short_song(tmp_path / "song.mid")
    code, _, err = run_main([str(song), "-o", str(tmp_path / "out"), "--config", str(cfg)],
                            capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and f"trained with '{key}'" in lines[0]
    assert not (tmp_path / "out").exists()


def test_unusable_output_folder_is_refused_first(tiny_run: Config, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tiny_run, tmp_path / "cfg.json")
    song = short_song(tmp_path / "song.mid")
    (tmp_path / "taken").write_text("a file")
    for out in ("taken", "taken/sub"):
        code, _, err = run_main([str(song), "-o", str(tmp_path / out), "--config", str(cfg)],
                                capsys)
        assert code == 2 and "--out-dir" in err and "is not a writable folder" in err
    cfg = write_config(tiny_run, tmp_path / "cfg.json", output_dir=str(tmp_path / "taken"))
    code, _, err = run_main([str(song), "--config", str(cfg)], capsys)
    assert code == 2 and "'output_dir'" in err
    code, _, err = run_main([str(tmp_path / "missing.mid"), "--config", str(cfg)], capsys)
    assert code == 2 and "missing.mid: input MIDI file not found" in err
