"""The typed manifest (data/manifest.py): one reading, one contract check, paths found from
any working folder; and the readers that use it refuse or find what the manifest says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import evaluate
from data.manifest import DatasetError, Manifest
from data.preprocess import build
from tests.test_reliability_data import _corpus
from utils import song_pass_training
from utils.evaluation.songs import SplitSongs


def _write(folder: Path, manifest: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_the_manifest_is_read_typed_and_its_contract_checked(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no manifest.json"):
        Manifest.read(tmp_path)
    folder = _write(tmp_path / "a", {"split_songs": {"test": ["a/b.mid"]},
                                     "songs": {"test": 1}, "phrases": {"test": 4},
                                     "settings": {"midi_dir": "/x", "melody_json": None}})
    manifest = Manifest.read(folder)
    assert manifest.songs_of("test") == ["a/b.mid"] and manifest.count("phrases", "test") == 4
    assert manifest.midi_dir == Path("/x") and manifest.melody_json is None
    assert not manifest.melody_in_mixture
    with pytest.raises(DatasetError, match="re-run the build"):
        manifest.songs_of("val")
    _write(folder, {})
    with pytest.raises(DatasetError, match="re-run the build"):
        Manifest.read(folder).songs_of("test")
    _write(folder, {"settings": {"steps_per_beat": 8}})
    with pytest.raises(DatasetError, match=r"another data contract \(steps_per_beat 8"):
        Manifest.read(folder)
    (folder / "manifest.json").write_text("[]")
    with pytest.raises(DatasetError, match="not a manifest"):
        Manifest.read(folder)


def test_relative_paths_are_relative_to_where_the_build_ran(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    folder = _write(work / "runs" / "data", {"settings": {
        "midi_dir": "corpus/songs", "out_dir": "./runs/data", "melody_json": "corpus/m.json"}})
    monkeypatch.chdir(tmp_path)  # anywhere else
    manifest = Manifest.read(folder)
    assert manifest.build_folder() == work.resolve()
    assert manifest.midi_dir == work.resolve() / "corpus" / "songs"
    assert manifest.melody_json == work.resolve() / "corpus" / "m.json"
    assert manifest.midi_dir_as_built == "corpus/songs"
    # an old manifest that cannot tell where its build ran: the current folder, as before
    old = _write(tmp_path / "old", {"settings": {"midi_dir": "songs"}})
    assert Manifest.read(old).midi_dir == Path("songs")
    moved = _write(tmp_path / "moved", {"settings": {"midi_dir": "songs", "out_dir": "data"}})
    assert Manifest.read(moved).build_folder() is None


def _eight_steps_per_beat(tmp_path: Path) -> Path:
    out = tmp_path / "data"
    build(_corpus(tmp_path / "corpus"), out, workers=1, progress=False, split_by="named",
          min_bar_density=0.0)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["settings"]["steps_per_beat"] = 8  # a 32nd-note grid
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_song_evaluation_and_song_pass_training_refuse_another_contract(
        song_pass_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _eight_steps_per_beat(tmp_path)
    code = evaluate.main(["--config", str(song_pass_run), "--songs", "--data-dir", str(out),
                          "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert "another data contract (steps_per_beat 8" in err[0]
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({**json.loads(song_pass_run.read_text()),
                                  "model_dir": str(tmp_path / "models"),
                                  "song_pass_data": [str(out)]}))
    code = song_pass_training.main(["--config", str(config), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and "steps_per_beat 8" in err[-1]
    assert not (tmp_path / "models" / "song_pass.ckpt").exists()


def test_a_build_from_a_relative_folder_is_read_from_anywhere(
        song_pass_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    _corpus(work / "corpus")
    monkeypatch.chdir(work)
    build("corpus", "runs/data", workers=1, progress=False, split_by="named",
          min_bar_density=0.0)
    data = (work / "runs" / "data").resolve()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    songs = SplitSongs.checked(data, "test")
    assert songs.midi_dir == work.resolve() / "corpus" and songs.names == ["test/s0.mid"]
    assert evaluate.main(["--config", str(song_pass_run), "--songs", "--data-dir", str(data),
                          "--no-progress"]) == 0
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({**json.loads(song_pass_run.read_text()),
                                  "model_dir": str(tmp_path / "models"),
                                  "song_pass_data": [str(data)]}))
    assert song_pass_training.main(["--config", str(config), "--limit", "1",
                                    "--no-progress"]) == 0
    assert (tmp_path / "models" / "song_pass.ckpt").is_file()
