"""data/preprocess.py + data/store.py: the build, its manifest, split, resume and CLI."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import data.build_plan as plan
import data.preprocess as pre
import utils.preprocess as cli
from data import DatasetError, read_phrases
from data.dataset import PhraseDataset
from data.store import PhraseStore, pack, unpack, unpack_onsets
from tests import fixtures_workers
from tests.fixtures_midi import Track, dense_tracks, far_note_file, write_midi
from utils.core.config import ConfigError, load_config
from utils.training.runs import check_data_dir

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


def test_shuffle_songs_counts() -> None:
    songs = [f"s{i}" for i in range(10)]
    split = plan.shuffle_songs(songs, 0, (0.9, 0.05, 0.05))
    assert [len(split[s]) for s in ("train", "val", "test")] == [8, 1, 1]
    assert sorted(sum(split.values(), [])) == sorted(songs)
    assert plan.shuffle_songs(songs, 1, (0.9, 0.05, 0.05)) != split
    assert [len(v) for v in plan.shuffle_songs(songs[:2], 0, (0.8, 0.1, 0.1)).values()] == [2, 0, 0]
    assert [len(v) for v in plan.shuffle_songs(songs[:3], 0, (0.8, 0.1, 0.1)).values()] == [1, 1, 1]
    assert [len(v) for v in plan.shuffle_songs(songs, 0, (1.0, 0.0, 0.0)).values()] == [10, 0, 0]


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
    with pytest.raises(plan.BuildError, match="another data contract, melody JSON"):
        pre.build(corpus, out, workers=1, progress=False)
    with pytest.raises(plan.BuildError, match="min_bar_density"):
        pre.build(corpus, out, workers=1, melody_json=table, min_bar_density=0.005,
                  progress=False)
    with pytest.raises(plan.BuildError, match="is not a folder"):
        pre.build(tmp_path / "missing", out, progress=False)
    with pytest.raises(plan.BuildError, match="add up to 1"):
        pre.build(corpus, out, fractions=(0.5, 0.1, 0.1), progress=False)


def test_pack_unpack_round_trip() -> None:
    rng = np.random.default_rng(0)
    phrases = rng.random((3, 64, 72, 6)) < 0.3
    onsets = phrases & (rng.random((3, 64, 72, 6)) < 0.5)
    packed = pack(phrases, onsets)
    assert packed.shape == (3, 6912) and packed.dtype == np.uint8
    np.testing.assert_array_equal(unpack(packed), phrases)
    np.testing.assert_array_equal(unpack(packed[1]), phrases[1])
    np.testing.assert_array_equal(unpack_onsets(packed), onsets)
    np.testing.assert_array_equal(unpack_onsets(packed[2]), onsets[2])


def test_missing_split_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"train\.phrases\.npy"):
        read_phrases(tmp_path, "train")
    with pytest.raises(ValueError, match="split must be one of"):
        PhraseStore(tmp_path, "training")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "utils.preprocess", *args], cwd=ROOT,
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
            assert plan.song_folder(song) in by_folder[split]
        assert manifest["songs"][split] == len(songs)
        assert len(PhraseStore(out, split)) == manifest["phrases"][split]
    assert sum(manifest["songs"].values()) == 9
    # another seed moves whole folders, never single songs
    other = plan.split_folders(sum(manifest["split_songs"].values(), []), 5, (0.6, 0.2, 0.2))
    assert other[1] != by_folder
    for split, songs in other[0].items():
        assert {plan.song_folder(s) for s in songs} == set(other[1][split])


def test_split_by_guard_and_song_default(folders: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    pre.build(folders, out, workers=1, progress=False, split_by="folder")
    with pytest.raises(plan.BuildError, match="split_by"):
        pre.build(folders, out, workers=1, progress=False)  # default "song"
    with pytest.raises(plan.BuildError, match="split_by must be one of 'song', 'folder'"):
        pre.build(folders, tmp_path / "x", workers=1, progress=False, split_by="style")
    song = pre.build(folders, tmp_path / "song", workers=1, progress=False)
    assert "split_folders" not in song and song["settings"]["split_by"] == "song"
    assert song["split_songs"] == plan.shuffle_songs(sum(song["split_songs"].values(), []), 0,
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


def test_cli_refuses_bad_outputs_and_settings_before_any_work(
        corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("not a folder")
    cases = [(["--out-dir", str(tmp_path / "file")], "(it is a file)"),
             (["--out-dir", str(tmp_path / "file" / "out")], "file' is a file)"),
             (["--out-dir", str(tmp_path / "a"), "--max-song-bars", "2"], "max_song_bars"),
             (["--out-dir", str(tmp_path / "b"), "--seed", "-1"], "'seed' must be in [0"),
             (["--out-dir", str(tmp_path / "c"), "--workers", "0"],
              "'preprocess_workers' must be > 0")]
    for args, expected in cases:
        assert cli.main(["--midi-dir", str(corpus), "--no-progress", *args]) == 2, expected
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert not any((tmp_path / name).exists() for name in "abc")  # nothing written
    out = tmp_path / "limited"
    assert cli.main(["--midi-dir", str(corpus), "--out-dir", str(out), "--no-progress",
                     "--max-song-bars", "8"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    # songs of 9, 10 and 11 bars, and sparse.mid (15 bars) are over 8 bars
    assert manifest["settings"]["max_song_bars"] == 8 and manifest["skipped"]["too_long"] == 4


# ----------------------------------------------------------------------------------
# Hostile input and interrupted builds
# ----------------------------------------------------------------------------------
def _two_class_notes(steps: int, pitches: tuple[int, int]) -> list[tuple[int, int, int]]:
    """Two-note chords on every step: 2 * steps notes (more than 50 for 26+ steps)."""
    return [(k * 120, (k + 1) * 120, p) for k in range(steps) for p in pitches]


def _hostile_corpus(root: Path) -> Path:
    """Valid files that the first builds crashed on, or blew up with, beside good songs."""
    midi = root / "hostile"
    midi.mkdir()
    for i in range(2):
        write_midi(midi / f"good{i}.mid", dense_tracks(bars=6 + i))
    # 4/4, two instruments, 3 bars: shorter than one 4-bar window
    write_midi(midi / "short.mid", [Track("Keys", 0, _two_class_notes(48, (60, 64))),
                                    Track("Gtr", 25, _two_class_notes(48, (50, 55)))])
    # every note outside MIDI 24..95
    write_midi(midi / "outside.mid", [Track("Keys", 0, _two_class_notes(40, (100, 110))),
                                      Track("Bass", 33, _two_class_notes(40, (10, 15)))])
    far_note_file(midi / "far.mid", 2**28)  # 1 kB; one note 67 million bars in
    return midi


def test_valid_but_hostile_files_are_counted_never_fatal(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    midi = _hostile_corpus(tmp_path)
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        manifest = pre.build(midi, out, workers=workers, progress=False)
        assert manifest["files_kept"] == 2
        assert manifest["skipped"] == {"empty": 1, "too_long": 1, "too_short": 1}
        examples = manifest["skipped_examples"]
        assert "shorter than one 4-bar window" in examples["too_short"][0]
        assert "over the limit of 2,000 bars" in examples["too_long"][0]
        # re-running finds everything recorded: nothing crashes, nothing is redone
        assert pre.build(midi, out, workers=workers, progress=False)["files_this_run"] == 0

    # the song-length limit is a setting, recorded and guarded like the others
    out = tmp_path / "limit"
    manifest = pre.build(midi, out, workers=1, progress=False, max_song_bars=6)
    assert manifest["skipped"]["too_long"] == 2 and manifest["files_kept"] == 1
    assert manifest["settings"]["max_song_bars"] == 6
    with pytest.raises(plan.BuildError, match="max_song_bars"):
        pre.build(midi, out, workers=1, progress=False)

    # any step after reading (here the phrase filter) failing is the file's reason too
    def broken_filter(*args: object, **kwargs: object) -> np.ndarray:
        raise ValueError("cannot reshape array of size 0")

    monkeypatch.setattr(pre, "keep_phrases", broken_filter)
    manifest = pre.build(midi, tmp_path / "broken", workers=1, progress=False)
    assert manifest["skipped"]["error"] == 2 and manifest["files_kept"] == 0
    assert "ValueError: cannot reshape" in manifest["skipped_examples"]["error"][0]


def test_readers_refuse_a_folder_whose_files_disagree(corpus: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A build killed right after train.phrases.npy was replaced, and hand-made mix-ups."""
    out = tmp_path / "out"
    old = pre.build(corpus, out, workers=1, seed=0, fractions=(0.5, 0.25, 0.25), progress=False)
    clean = tmp_path / "clean"
    pre.build(corpus, clean, workers=1, seed=1, fractions=(0.5, 0.25, 0.25), progress=False)

    original = pre.write_split

    def killed_after_train(out_dir: Path, split: str, *args: object) -> None:
        original(out_dir, split, *args)
        if split == "train":
            raise KeyboardInterrupt  # stands for kill -9: nothing after this point runs

    monkeypatch.setattr(pre, "write_split", killed_after_train)
    with pytest.raises(KeyboardInterrupt):
        pre.build(corpus, out, workers=1, seed=1, fractions=(0.5, 0.25, 0.25), progress=False)
    monkeypatch.setattr(pre, "write_split", original)
    assert not (out / "manifest.json").exists()  # removed before the first split file
    readers = (lambda: PhraseStore(out, "train"), lambda: read_phrases(out, "val"),
               lambda: PhraseDataset(out, "test"))
    for read in readers:
        with pytest.raises(DatasetError, match=r"no manifest\.json.*re-run the build$"):
            read()
    cfg = load_config(ROOT / "configs" / "tiny.json", overrides={"data_dir": str(out)})
    with pytest.raises(ConfigError, match="'data_dir'.*re-run the build$"):
        check_data_dir(cfg)

    # what the same kill did before the manifest was the commit marker: a stale manifest
    (out / "manifest.json").write_text(json.dumps(old))
    with pytest.raises(DatasetError, match="phrases but manifest.json says .*re-run the build$"):
        PhraseStore(out, "train")

    # leftovers of killed writers, in the folder and its shards
    leftovers = [out / ".train.phrases.npy.k1ll3d.tmp.npy",
                 out / "shards" / ".part-000000.npy.k1ll3d.tmp.npy"]
    for path in leftovers:
        path.write_bytes(b"\x93NUMPY half-written")
    repaired = pre.build(corpus, out, workers=1, seed=1, fractions=(0.5, 0.25, 0.25),
                         progress=False)
    assert repaired["files_this_run"] == 0 and not any(p.exists() for p in leftovers)
    assert _files(out) == _files(clean)
    assert len(PhraseStore(out, "train")) == repaired["phrases"]["train"]

    # split files that disagree with each other or with the manifest
    ids_path = out / "train.song_ids.npy"
    good_ids = ids_path.read_bytes()
    np.save(ids_path, np.zeros(3, dtype=np.int32))
    with pytest.raises(DatasetError, match="song ids; re-run the build$"):
        PhraseStore(out, "train")
    np.save(ids_path, np.full(repaired["phrases"]["train"], 99, dtype=np.int32))
    with pytest.raises(DatasetError, match="outside the 2 train songs"):
        read_phrases(out, "train")
    ids_path.write_bytes(good_ids)
    phrases_path = out / "val.phrases.npy"
    phrases_path.write_bytes(phrases_path.read_bytes()[:200])  # truncated
    with pytest.raises(DatasetError, match="val.phrases.npy: unreadable"):
        PhraseStore(out, "val")


def test_a_worker_killed_by_the_system_is_named_and_counted(
        corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    midi = tmp_path / "midi"
    midi.mkdir()
    for path in corpus.rglob("*"):
        if path.is_file():
            (midi / path.relative_to(corpus)).parent.mkdir(parents=True, exist_ok=True)
            (midi / path.relative_to(corpus)).write_bytes(path.read_bytes())
    write_midi(midi / "bomb.mid", dense_tracks(bars=8))
    reference = pre.build(corpus, tmp_path / "reference", workers=1, progress=False)
    monkeypatch.setattr(pre, "_process_task", fixtures_workers.die_on_bomb)
    manifest = pre.build(midi, tmp_path / "out", workers=2, progress=False)
    assert manifest["skipped"]["crashed"] == 1
    assert manifest["files_kept"] == reference["files_kept"]  # every other file converted
    assert manifest["split_songs"] == reference["split_songs"]
    detail = manifest["skipped_examples"]["crashed"][0]
    assert str(midi / "bomb.mid") in detail and "worker process converting it died" in detail
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: ") and "bomb.mid" in warning[0]


INTERRUPTED_BUILD = """
import signal
import sys
import data.preprocess as pre
# Ctrl-C as in a terminal, however the tests were started (a shell's background job
# ignores SIGINT, and its children inherit that)
signal.signal(signal.SIGINT, signal.default_int_handler)
import utils.preprocess as cli
import tests.fixtures_workers as t
pre.FLUSH_FILES = 1  # one shard per file, reported on stderr as it is written
flush = pre.ShardWriter.flush
def reporting_flush(self):
    flush(self)
    print("flushed", file=sys.stderr, flush=True)
pre.ShardWriter.flush = reporting_flush
pre._process_task = t.stuck_on_fifo
sys.exit(cli.main(sys.argv[1:]))
"""


def test_ctrl_c_stops_at_once_keeps_finished_files_and_exits_130(tmp_path: Path) -> None:
    midi = tmp_path / "midi"
    midi.mkdir()
    for i in range(8):
        write_midi(midi / f"song{i}.mid", dense_tracks(bars=5 + i))
    write_midi(midi / "stuck.mid", dense_tracks(bars=8))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_BUILD, "--midi-dir", str(midi), "--out-dir", str(out),
         "--workers", "2", "--no-progress"],
        cwd=ROOT, env={**os.environ, "M2M_FIFO": str(fifo)}, stderr=subprocess.PIPE, text=True,
        stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        flushed = 0
        while flushed < 3:  # three files are done while one worker is stuck for ever
            line = proc.stderr.readline()
            assert line, "the build ended before it was interrupted"
            flushed += line.startswith("flushed")
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C goes to the whole process group
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err  # stderr says why when it is not
    assert "interrupted" in err and "Traceback" not in err
    with pytest.raises(OSError) as info:  # the stuck worker is gone too (no reader left)
        os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    assert info.value.errno == errno.ENXIO
    done = [r["path"] for meta in (out / "shards").glob("part-*.json")
            for r in json.loads(meta.read_text())["records"]]
    assert len(done) >= 3 and "stuck.mid" not in done
    resumed = pre.build(midi, out, workers=1, progress=False)  # no stuck worker this time
    assert resumed["files_this_run"] == 9 - len(done)
    pre.build(midi, tmp_path / "clean", workers=1, progress=False)
    assert _files(out) == _files(tmp_path / "clean")
