"""Inputs that used to slip through or end in a traceback: symlinked split folders, empty
named splits, outputs that are folders, huge config numbers, SMPTE files, notes never
closed, inputs that are folders or FIFOs, and files without a time signature."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

import separate
from data.fileio import atomic_write_many
from data.midi import MidiError, SkipFile, load_song, read_notes, read_score
from data.preprocess import BuildError, build, find_midi_files
from data.store import MANIFEST_NAME
from tests.fixtures_midi import Track, add_meta_track, write_midi
from tests.test_separate_limits import FS, Piano
from utils import preprocess as preprocess_cli
from utils.config import ConfigError, config_from_dict, load_config
from utils.note_separation import check_outputs, output_paths, separate_midi_file
from utils.song_evaluation import SplitSongs

TPQ = 480
QUIET = {"workers": 1, "progress": False, "min_bar_density": 0.0}


def _band(pitch: int, bars: int = 16) -> list[tuple[int, int, int]]:
    return [(b * TPQ, (b + 1) * TPQ, pitch) for b in range(4 * bars)]


def _song(path: Path, pitch: int = 60, time_signatures=((0, 4, 4),)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_midi(path, [Track("piano", 0, _band(pitch) + _band(pitch + 4)),
                             Track("bass", 33, _band(40))], time_signatures=time_signatures)


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# ----------------------------------------------------------------------------- 5. splits
def test_a_split_folder_that_is_a_symlink_is_followed(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    _song(corpus / "train" / "a.mid")
    _song(corpus / "val" / "b.mid")
    _song(tmp_path / "elsewhere" / "c.mid")
    (corpus / "test").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (corpus / "train" / "loop").symlink_to(corpus, target_is_directory=True)  # a cycle
    assert find_midi_files(corpus) == ["test/c.mid", "train/a.mid", "val/b.mid"]
    manifest = build(corpus, tmp_path / "data", split_by="named", **QUIET)
    assert manifest["songs"] == {"train": 1, "val": 1, "test": 1}


@pytest.mark.parametrize("kind", ["empty", "dangling"])
def test_an_empty_named_split_folder_is_refused_before_any_work(
        tmp_path: Path, kind: str) -> None:
    corpus = tmp_path / "corpus"
    _song(corpus / "train" / "a.mid")
    _song(corpus / "val" / "b.mid")
    if kind == "empty":
        (corpus / "test").mkdir()
    else:
        (corpus / "test").symlink_to(tmp_path / "gone", target_is_directory=True)
    with pytest.raises(BuildError, match=r"'test'.*no MIDI file") as info:
        build(corpus, tmp_path / "data", split_by="named", **QUIET)
    assert len(str(info.value).splitlines()) == 1
    assert not (tmp_path / "data" / "shards").exists() or \
        not list((tmp_path / "data" / "shards").glob("part-*"))


def test_a_named_split_left_without_songs_is_said(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    _song(corpus / "train" / "a.mid")
    _song(corpus / "val" / "b.mid")
    _song(corpus / "test" / "c.mid", 64, time_signatures=((0, 3, 4),))  # skipped: not 4/4
    manifest = build(corpus, tmp_path / "data", split_by="named", **QUIET)
    assert manifest["songs"]["test"] == 0
    err = capsys.readouterr().err
    assert "warning: split 'test' has no song" in err and "not_4_4" in err


# ----------------------------------------------------------------------------- 7. outputs
def test_an_output_name_that_is_a_folder_is_refused_up_front(tmp_path: Path) -> None:
    paths = output_paths(tmp_path / "song.mid", tmp_path / "out")
    paths["png"].mkdir(parents=True)
    with pytest.raises(ValueError, match="is a folder"):
        check_outputs(paths, overwrite=True)


def test_writing_several_files_is_all_or_nothing(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    targets = [tmp_path / f"f{k}.txt" for k in range(4)]
    for k, target in enumerate(targets[:3]):
        target.write_text(f"old {k}")
    targets[3].mkdir()  # the last one cannot be replaced
    writers = {t: (lambda p, k=k: p.write_text(f"new {k}")) for k, t in enumerate(targets)}
    with pytest.raises(OSError):
        atomic_write_many(writers)
    assert [t.read_text() for t in targets[:3]] == ["old 0", "old 1", "old 2"]
    # a failure of the third rename puts the first two back as they were
    targets[3].rmdir()
    real_replace = os.replace
    calls = []

    def failing(src: os.PathLike, dst: os.PathLike) -> None:
        calls.append(dst)
        if Path(dst) == targets[2]:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="No space"):
        atomic_write_many(writers)
    monkeypatch.setattr(os, "replace", real_replace)
    assert [t.read_text() for t in targets[:3]] == ["old 0", "old 1", "old 2"]
    assert not targets[3].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [t.name for t in targets[:3]]
    atomic_write_many(writers)
    assert [t.read_text() for t in targets] == [f"new {k}" for k in range(4)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [t.name for t in targets]


# ----------------------------------------------------------------------------- 8, 9. config
@pytest.mark.parametrize("raw, key", [({"lr": 10**400}, "lr"),
                                      ({"train_mix": {"a": 10**400}}, "train_mix"),
                                      ({"batch_size": 10**400}, "batch_size"),
                                      ({"transpose": [0, 10**400]}, "transpose")])
def test_huge_integers_in_a_config_are_one_error(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=f"'{key}'") as info:
        config_from_dict(raw, source="cfg.json")
    assert len(str(info.value).splitlines()) == 1


def test_an_integer_longer_than_python_reads_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "cfg.json"
    path.write_text('{"lr": ' + "9" * 5000 + "}")
    with pytest.raises(ConfigError, match="cfg.json"):
        load_config(path)


def test_max_song_bars_has_an_upper_bound(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="'max_song_bars' must be at most"):
        config_from_dict({"max_song_bars": 10**12})
    with pytest.raises(BuildError, match="max_song_bars must be .* at most 5,000"):
        build(tmp_path, tmp_path / "data", max_song_bars=10**30, **QUIET)
    code = preprocess_cli.main(["--midi-dir", str(tmp_path), "--out-dir",
                                str(tmp_path / "data"), "--max-song-bars", str(10**30)])
    assert code == 2 and "max_song_bars" in _one_line_error(capsys)


# ----------------------------------------------------------------------------- 14. small
def _raw_midi(events: bytes, division: int = 96) -> bytes:
    track = events + b"\x00\xff\x2f\x00"
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, division)
            + b"MTrk" + struct.pack(">I", len(track)) + track)


def test_smpte_time_division_is_named(tmp_path: Path) -> None:
    path = tmp_path / "smpte.mid"
    path.write_bytes(_raw_midi(b"\x00\x90\x3c\x40\x60\x80\x3c\x00", division=0xE728))
    with pytest.raises(MidiError, match=r"SMPTE time division \(25 frames per second, "
                                        r"40 ticks per frame\)") as info:
        read_score(path)
    assert info.value.reason == "smpte"


def test_notes_never_closed_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "open.mid"
    # C4 closed, E4 and G4 never closed, then C4 again closed by a note-on of velocity 0
    events = (b"\x00\x90\x3c\x40" b"\x60\x80\x3c\x00" b"\x00\x90\x40\x40" b"\x00\x43\x40"
              b"\x00\x3c\x40" b"\x10\x3c\x00")
    path.write_bytes(_raw_midi(events))
    notes = read_notes(path)
    assert len(notes) == 2 and notes.n_unclosed == 2


def test_the_build_counts_notes_never_closed(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    add_meta_track(_song(corpus / "a.mid"), b"\x00\x91\x30\x40\x00\x31\x40")
    _song(corpus / "b.mid")
    manifest = build(corpus, tmp_path / "data", **QUIET)
    assert manifest["files_kept"] == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "never closed" in line]
    assert lines == [f"warning: 2 note(s) never closed (a note-on without its note-off) "
                     f"dropped in 1 kept file(s), e.g. {corpus / 'a.mid'} (2)"]


def test_separate_warns_once_about_notes_never_closed(tmp_path: Path) -> None:
    path = tmp_path / "open.mid"
    closed = b"".join(b"\x00\x90" + bytes([p]) + b"\x40\x60\x80" + bytes([p]) + b"\x00"
                      for p in range(60, 72))
    path.write_bytes(_raw_midi(closed + b"\x00\x90\x40\x40\x00\x90\x43\x40"))
    out = separate_midi_file(Piano().probs, path, tmp_path / "out", sample_rate=FS)
    lines = [w for w in out.warnings if "never closed" in w]
    assert lines == [f"{path}: 2 note(s) never closed (a note-on without its note-off) "
                     f"dropped"]
    assert out.n_notes == 12


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_separate_says_what_a_non_file_input_is(tmp_path: Path, kind: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "song.mid"
    if kind == "folder":
        path.mkdir()
    else:
        os.mkfifo(path)
    assert separate.main([str(path), "-o", str(tmp_path / "out")]) == 2
    line = _one_line_error(capsys)
    assert ("is a folder" if kind == "folder" else "is a FIFO") in line
    assert "not found" not in line


def test_the_build_says_what_a_non_file_input_is(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    corpus = tmp_path / "corpus"
    _song(corpus / "a.mid")
    cases = [(["--midi-dir", str(fifo)], "is a FIFO"),
             (["--midi-dir", str(corpus), "--melody-json", str(corpus)], "is a folder"),
             (["--midi-dir", str(corpus), "--melody-json", str(fifo)], "is a FIFO"),
             (["--config", str(corpus)], "is a folder")]
    for args, said in cases:
        assert preprocess_cli.main([*args, "--out-dir", str(tmp_path / "data")]) == 2, args
        assert said in _one_line_error(capsys), args


# ----------------------------------------------------------------------------- 4/4 option
def test_files_without_a_time_signature_are_4_4_when_asked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    _song(corpus / "plain.mid", 60)
    _song(corpus / "unsigned.mid", 62, time_signatures=())
    _song(corpus / "waltz.mid", 64, time_signatures=((0, 3, 4),))
    _song(corpus / "two.mid", 66, time_signatures=((0, 4, 4), (TPQ * 16, 3, 4)))
    with pytest.raises(SkipFile, match="exactly one 4/4"):
        load_song(corpus / "unsigned.mid")
    song = load_song(corpus / "unsigned.mid", default_meter_4_4=True)
    assert song.roll.any() and song.timing.time_signatures == []
    off = build(corpus, tmp_path / "off", **QUIET)
    assert off["files_kept"] == 1 and off["skipped"]["not_4_4"] == 3
    assert off["settings"]["default_meter_4_4"] is False
    on = build(corpus, tmp_path / "on", **QUIET, default_meter_4_4=True)
    assert on["files_kept"] == 2 and on["skipped"]["not_4_4"] == 2
    assert on["settings"]["default_meter_4_4"] is True
    with pytest.raises(BuildError, match="default_meter_4_4"):
        build(corpus, tmp_path / "off", **QUIET, default_meter_4_4=True)
    code = preprocess_cli.main(["--midi-dir", str(corpus), "--out-dir", str(tmp_path / "cli"),
                                "--workers", "1", "--no-progress", "--min-bar-density", "0",
                                "--default-meter-4-4"])
    assert code == 0
    manifest = json.loads((tmp_path / "cli" / MANIFEST_NAME).read_text())
    assert manifest["files_kept"] == 2 and manifest["settings"]["default_meter_4_4"] is True
    for name in ("real.json", "real_melody_in.json"):
        assert load_config(Path("configs") / name).default_meter_4_4 is True
    assert load_config("config.json").default_meter_4_4 is False


def test_song_evaluation_reads_songs_as_the_build_did(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    for split in ("train", "val", "test"):
        _song(corpus / split / "s.mid", time_signatures=())
    build(corpus, tmp_path / "data", split_by="named", default_meter_4_4=True, **QUIET)
    songs = SplitSongs.checked(tmp_path / "data", "test")
    (truth,) = songs.truths()
    assert truth.name == "test/s.mid" and (truth.true >= 0).all()
