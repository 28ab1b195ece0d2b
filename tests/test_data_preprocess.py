"""data/preprocess.py + data/store.py: the build, its manifest, split, resume and CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import data.preprocess as pre
from data import read_phrases
from data.store import PhraseStore, pack, unpack
from tests.fixtures_midi import Track, dense_tracks, write_midi

ROOT = Path(__file__).resolve().parents[1]


def _corpus(root: Path) -> Path:
    """6 good songs in sub-folders (mixed suffix case) and one file per bad kind."""
    midi = root / "midi"
    for i in range(6):
        sub = midi / f"{i % 2:x}"
        sub.mkdir(parents=True, exist_ok=True)
        suffix = (".mid", ".MID", ".midi")[i % 3]
        write_midi(sub / f"song{i}{suffix}", dense_tracks(bars=6 + i, transpose=i))
    good = (midi / "0" / "song0.mid").read_bytes()
    (midi / "empty.mid").write_bytes(b"")
    (midi / "text.mid").write_text("not music at all\n")
    (midi / "cut.mid").write_bytes(good[:60])
    write_midi(midi / "waltz.mid", dense_tracks(bars=8), time_signatures=[(0, 3, 4)])
    write_midi(midi / "solo.mid", dense_tracks(bars=8)[:1])
    sparse = [Track(n, prog, [(k * 480, k * 480 + 120, pitch) for k in range(60)])
              for n, prog, pitch in (("P", 0, 60), ("B", 33, 40))]
    write_midi(midi / "sparse.mid", sparse)  # every bar below 1% density
    (midi / "notes.txt").write_text("ignored: not a MIDI suffix")
    return midi


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _corpus(tmp_path_factory.mktemp("corpus"))


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.npy"))}


def test_build_manifest_and_by_song_split(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = pre.build(corpus, out, workers=2, seed=3, fractions=(0.5, 0.25, 0.25),
                         progress=False)
    assert manifest["files_seen"] == 12 and manifest["files_kept"] == 6
    assert manifest["skipped"] == {"empty": 1, "not_4_4": 1, "not_midi": 1, "no_phrase": 1,
                                   "too_few_instruments": 1, "truncated": 1}
    assert manifest["songs"] == {"train": 2, "val": 2, "test": 2}
    # a song of b bars gives b - 3 windows, all dense enough: 3 + 4 + ... + 8
    assert sum(manifest["phrases"].values()) == sum(range(3, 9))
    assert json.loads((out / "manifest.json").read_text()) == manifest
    splits = manifest["split_songs"]
    seen = [s for songs in splits.values() for s in songs]
    assert len(seen) == len(set(seen)) == 6  # no song in two splits
    for split, songs in splits.items():
        store = PhraseStore(out, split)
        phrases = read_phrases(out, split)
        assert phrases.dtype == bool and phrases.shape == (len(store), 64, 72, 6)
        assert len(phrases) == manifest["phrases"][split]
        assert store.songs == songs and set(store.song_ids.tolist()) == set(range(len(songs)))
        np.testing.assert_array_equal(store[0], phrases[0])
        np.testing.assert_array_equal(store.batch(slice(0, 2)), phrases[:2])
    # same folder + seed -> same split, whatever the worker count
    again = pre.build(corpus, tmp_path / "again", workers=1, seed=3,
                      fractions=(0.5, 0.25, 0.25), progress=False)
    assert again["split_songs"] == splits
    assert _files(out) == _files(tmp_path / "again")


def test_split_songs_counts() -> None:
    songs = [f"s{i}" for i in range(10)]
    split = pre.split_songs(songs, 0, (0.9, 0.05, 0.05))
    assert [len(split[s]) for s in ("train", "val", "test")] == [8, 1, 1]
    assert sorted(sum(split.values(), [])) == sorted(songs)
    assert pre.split_songs(songs, 1, (0.9, 0.05, 0.05)) != split
    assert [len(v) for v in pre.split_songs(songs[:2], 0, (0.8, 0.1, 0.1)).values()] == [2, 0, 0]
    assert [len(v) for v in pre.split_songs(songs[:3], 0, (0.8, 0.1, 0.1)).values()] == [1, 1, 1]
    assert [len(v) for v in pre.split_songs(songs, 0, (1.0, 0.0, 0.0)).values()] == [10, 0, 0]


def test_interrupted_build_resumes_to_same_result(corpus: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    clean = tmp_path / "clean"
    reference = pre.build(corpus, clean, workers=1, seed=0, progress=False)
    out = tmp_path / "resumed"
    monkeypatch.setattr(pre, "FLUSH_FILES", 2)
    calls = {"n": 0}
    original = pre._process_task

    def crashing(task):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return original(task)

    monkeypatch.setattr(pre, "_process_task", crashing)
    with pytest.raises(KeyboardInterrupt):
        pre.build(corpus, out, workers=1, seed=0, progress=False)
    assert not (out / "manifest.json").exists()
    (out / "shards" / "part-000099.npy").write_bytes(b"orphan of a crash")
    monkeypatch.setattr(pre, "_process_task", original)
    resumed = pre.build(corpus, out, workers=2, seed=0, progress=False)
    assert resumed["files_this_run"] == 12 - 5
    assert not (out / "shards" / "part-000099.npy").exists()
    records = [r["path"] for meta in (out / "shards").glob("part-*.json")
               for r in json.loads(meta.read_text())["records"]]
    assert len(records) == len(set(records)) == 12  # every file exactly once
    for key in ("files_seen", "files_kept", "skipped", "phrases", "songs", "split_songs"):
        assert resumed[key] == reference[key]
    assert _files(out) == _files(clean)
    # a finished build re-run converts nothing and changes nothing
    assert pre.build(corpus, out, workers=1, seed=0, progress=False)["files_this_run"] == 0
    assert _files(out) == _files(clean)


def test_melody_json_and_settings_guard(corpus: Path, tmp_path: Path) -> None:
    table = tmp_path / "melody.json"
    table.write_text(json.dumps({"song1.MID": {"melody": 0}}))  # the piano is the melody
    out = tmp_path / "out"
    manifest = pre.build(corpus, out, workers=1, melody_json=table, progress=False)
    assert manifest["melody_songs"] == 1 and manifest["settings"]["melody_json"] == str(table)
    with pytest.raises(pre.BuildError, match="another data contract, melody JSON"):
        pre.build(corpus, out, workers=1, progress=False)
    with pytest.raises(pre.BuildError, match="min_bar_density"):
        pre.build(corpus, out, workers=1, melody_json=table, min_bar_density=0.005,
                  progress=False)
    with pytest.raises(pre.BuildError, match="is not a folder"):
        pre.build(tmp_path / "missing", out, progress=False)
    with pytest.raises(pre.BuildError, match="add up to 1"):
        pre.build(corpus, out, fractions=(0.5, 0.1, 0.1), progress=False)


def test_pack_unpack_round_trip() -> None:
    phrases = np.random.default_rng(0).random((3, 64, 72, 6)) < 0.3
    packed = pack(phrases)
    assert packed.shape == (3, 3456) and packed.dtype == np.uint8
    np.testing.assert_array_equal(unpack(packed), phrases)
    np.testing.assert_array_equal(unpack(packed[1]), phrases[1])


def test_missing_split_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"train\.phrases\.npy"):
        read_phrases(tmp_path, "train")
    with pytest.raises(ValueError, match="split must be one of"):
        PhraseStore(tmp_path, "training")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "data.preprocess", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_with_config_and_errors(corpus: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"midi_dir": str(corpus), "data_dir": str(tmp_path / "x"),
                                  "train_split": 0.5, "val_split": 0.25, "test_split": 0.25,
                                  "seed": 3, "preprocess_workers": 1}))
    out = tmp_path / "flag_wins"
    run = _cli("--config", str(config), "--out-dir", str(out), "--no-progress")
    assert run.returncode == 0, run.stderr
    # the manifest is the JSON object printed last (pyfluidsynth, imported by pretty_midi,
    # prints a line of its own first when the CI variable is set)
    printed = json.loads(run.stdout[run.stdout.index("{\n"): run.stdout.rindex("}") + 1])
    assert printed["files_kept"] == 6 and printed["settings"]["seed"] == 3
    assert printed["songs"] == {"train": 2, "val": 2, "test": 2}
    assert (out / "manifest.json").exists() and not (tmp_path / "x").exists()

    run = _cli("--midi-dir", str(tmp_path / "nowhere"), "--out-dir", str(out))
    assert run.returncode == 2 and "nowhere" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    config.write_text(json.dumps({"midi_dirr": "x"}))
    run = _cli("--config", str(config))
    assert run.returncode == 2 and "midi_dirr" in run.stderr


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four style folders of two songs each, plus one song at the top level."""
    midi = tmp_path_factory.mktemp("folders") / "midi"
    for k, style in enumerate(("ballad", "bossa", "rock", "swing")):
        (midi / style).mkdir(parents=True)
        for i in range(2):
            write_midi(midi / style / f"{2 * k + i:05d}.mid",
                       dense_tracks(bars=5, transpose=2 * k + i))
    write_midi(midi / "loose.mid", dense_tracks(bars=5, transpose=9))
    return midi


def test_split_by_folder_keeps_folders_together(folders: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = pre.build(folders, out, workers=1, seed=1, fractions=(0.6, 0.2, 0.2),
                         progress=False, split_by="folder")
    assert manifest["settings"]["split_by"] == "folder"
    by_folder = manifest["split_folders"]
    assert [len(by_folder[s]) for s in ("train", "val", "test")] == [3, 1, 1]
    assert sorted(sum(by_folder.values(), [])) == [".", "ballad", "bossa", "rock", "swing"]
    for split, songs in manifest["split_songs"].items():
        for song in songs:  # every song sits where its folder went
            assert pre.song_folder(song) in by_folder[split]
        assert manifest["songs"][split] == len(songs)
        assert len(PhraseStore(out, split)) == manifest["phrases"][split]
    assert sum(manifest["songs"].values()) == 9
    # another seed moves whole folders, never single songs
    other = pre.split_folders(sum(manifest["split_songs"].values(), []), 5, (0.6, 0.2, 0.2))
    assert other[1] != by_folder
    for split, songs in other[0].items():
        assert {pre.song_folder(s) for s in songs} == set(other[1][split])


def test_split_by_guard_and_song_default(folders: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    pre.build(folders, out, workers=1, progress=False, split_by="folder")
    with pytest.raises(pre.BuildError, match="split_by"):
        pre.build(folders, out, workers=1, progress=False)  # default "song"
    with pytest.raises(pre.BuildError, match="split_by must be one of 'song', 'folder'"):
        pre.build(folders, tmp_path / "x", workers=1, progress=False, split_by="style")
    song = pre.build(folders, tmp_path / "song", workers=1, progress=False)
    assert "split_folders" not in song and song["settings"]["split_by"] == "song"
    assert song["split_songs"] == pre.split_songs(sum(song["split_songs"].values(), []), 0,
                                                  (0.9, 0.05, 0.05))
    # an output made before split_by existed (no such key in its settings) resumes as "song"
    settings = tmp_path / "song" / "shards" / "settings.json"
    stored = json.loads(settings.read_text())
    del stored["split_by"]
    settings.write_text(json.dumps(stored))
    again = pre.build(folders, tmp_path / "song", workers=1, progress=False)
    assert again["files_this_run"] == 0 and again["split_songs"] == song["split_songs"]


def test_cli_split_by_flag_and_config(folders: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"midi_dir": str(folders), "data_dir": str(tmp_path / "x"),
                                  "split_by": "folder", "preprocess_workers": 1}))
    run = _cli("--config", str(config), "--no-progress")
    assert run.returncode == 0, run.stderr
    manifest = json.loads((tmp_path / "x" / "manifest.json").read_text())
    assert manifest["settings"]["split_by"] == "folder" and "split_folders" in manifest
    run = _cli("--config", str(config), "--out-dir", str(tmp_path / "y"), "--split-by", "song",
               "--no-progress")
    assert run.returncode == 0, run.stderr
    manifest = json.loads((tmp_path / "y" / "manifest.json").read_text())
    assert manifest["settings"]["split_by"] == "song" and "split_folders" not in manifest
    config.write_text(json.dumps({"midi_dir": str(folders), "split_by": "style"}))
    run = _cli("--config", str(config))
    assert run.returncode == 2 and "'split_by'" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
