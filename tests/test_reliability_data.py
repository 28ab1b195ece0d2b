"""Datasets that notice changed files, another contract, and data vanishing mid-training."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from pytorch_lightning.callbacks import Callback

from data.preprocess import build
from data.store import DatasetError, PhraseStore
from tests.fixtures_midi import Track, write_midi
from tests.test_train import QUIET, tiny_cfg
from utils.evaluation.songs import evaluate_songs
from utils.training import runs as training

TPQ = 480


def _song(path: Path, pitch: int) -> Path:
    beats = [(b * TPQ, (b + 1) * TPQ, pitch) for b in range(64)]
    chords = beats + [(s, e, p + 4) for s, e, p in beats]
    return write_midi(path, [Track("piano", 0, chords), Track("bass", 33,
                                                              [(s, e, 40) for s, e, _ in beats])])


def _corpus(root: Path) -> Path:
    for folder, pitches in (("train", (60, 62, 64)), ("val", (65,)), ("test", (67,))):
        (root / folder).mkdir(parents=True)
        for k, pitch in enumerate(pitches):
            _song(root / folder / f"s{k}.mid", pitch)
    return root


def test_resume_reconverts_a_changed_file(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus")
    out = tmp_path / "data"
    kw = {"workers": 1, "progress": False, "split_by": "named", "min_bar_density": 0.0}
    first = build(corpus, out, **kw)
    before = PhraseStore(out, "val")[0]
    again = build(corpus, out, **kw)
    assert again["files_this_run"] == 0  # nothing changed: nothing converted
    _song(corpus / "val" / "s0.mid", 48)  # same path, other notes (and size or mtime)
    os.utime(corpus / "val" / "s0.mid", ns=(1, 1))  # a distinct mtime, whatever the clock
    changed = build(corpus, out, **kw)
    assert changed["files_this_run"] == 1
    after = PhraseStore(out, "val")[0]
    assert (after != before).any() and changed["phrases"] == first["phrases"]
    assert changed["song_sources"]["val/s0.mid"][1] == 1


def test_song_evaluation_refuses_a_song_changed_since_the_build(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus")
    out = tmp_path / "data"
    build(corpus, out, workers=1, progress=False, split_by="named", min_bar_density=0.0)
    _song(corpus / "test" / "s0.mid", 50)
    os.utime(corpus / "test" / "s0.mid", ns=(2, 2))
    cfg = tiny_cfg(tmp_path, data_dir=str(out), separator="direct")
    with pytest.raises(DatasetError, match=r"s0\.mid: changed since the build") as info:
        evaluate_songs(cfg, "test", progress=False)
    assert len(str(info.value).splitlines()) == 1


def test_a_build_with_another_contract_is_refused(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus")
    out = tmp_path / "data"
    build(corpus, out, workers=1, progress=False, split_by="named", min_bar_density=0.0)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["settings"]["steps_per_beat"] = 8  # a 32nd-note grid
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"another data contract \(steps_per_beat 8"):
        PhraseStore(out, "val")
    from evaluate import main as evaluate_main

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**tiny_cfg(tmp_path, data_dir=str(out)).to_dict()}))
    assert evaluate_main(["--config", str(cfg), "--split", "val"]) == 2


def test_a_phrase_file_truncated_in_use_is_an_error_not_a_crash(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus")
    out = tmp_path / "data"
    build(corpus, out, workers=1, progress=False, split_by="named", min_bar_density=0.0)
    store = PhraseStore(out, "train")
    n = len(store)
    assert store.rows(n - 1).shape == (6912,)
    with open(out / "train.phrases.npy", "r+b") as f:
        f.truncate(f.seek(0, 2) - 6912 * (n // 2))
    with pytest.raises(DatasetError, match="truncated while in use"):
        store.batch(slice(0, n))


def _two_epoch_run(tmp_path: Path):  # noqa: ANN202
    """A built corpus and the config of a tiny two-epoch direct run on it."""
    out = tmp_path / "data"
    build(_corpus(tmp_path / "corpus"), out, workers=1, progress=False, split_by="named",
          min_bar_density=0.0)
    return out, tiny_cfg(tmp_path, data_dir=str(out), separator="direct",
                         limit_train_batches=2, limit_val_batches=1, max_epochs=2)


def test_training_reports_vanished_data_in_one_line(tmp_path: Path, monkeypatch,
                                                    capsys) -> None:
    out, cfg = _two_epoch_run(tmp_path)

    class Truncate(Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
            if trainer.current_epoch == 1:
                with open(out / "train.phrases.npy", "r+b") as f:
                    f.truncate(200)

    with pytest.raises(DatasetError, match="re-run the build"):
        training.train_separator(cfg, callbacks=[Truncate()], **QUIET)
    # the command prints one error line and exits 2
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg.to_dict()))

    def failing(cfg, resume=False):  # noqa: ANN001, ANN202
        raise DatasetError(f"Caught DatasetError in DataLoader worker process 0.\nOriginal "
                           f"Traceback (most recent call last):\n  ...\ndata.store."
                           f"DatasetError: {out}/train.phrases.npy: phrase file shorter "
                           f"than its header says; re-run the build")

    monkeypatch.setattr(training, "train_separator", failing)
    assert training.main_for("separator", ["--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {out}/train.phrases.npy")


def test_data_deleted_mid_training_still_gives_the_model_and_its_baselines(
        tmp_path: Path) -> None:
    out, cfg = _two_epoch_run(tmp_path)

    class Delete(Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
            if trainer.current_epoch == 1:
                shutil.rmtree(out)

    best = training.train_separator(cfg, callbacks=[Delete()], **QUIET)
    assert not out.exists() and best.is_file()
    baselines = json.loads((Path(cfg.model_dir) / "baselines.json").read_text())
    assert set(baselines) == {"most_common", "zone", "pitch_row"}


def test_a_second_build_into_the_same_folder_is_refused_and_a_dead_one_does_not_block(
        tmp_path: Path) -> None:
    import fcntl
    import subprocess
    import sys

    from data.build_plan import BuildError
    from data.preprocess import LOCK_NAME

    corpus = _corpus(tmp_path / "corpus")
    out = tmp_path / "data"
    out.mkdir()
    kw = {"workers": 1, "progress": False, "split_by": "named", "min_bar_density": 0.0}
    with open(out / LOCK_NAME, "w") as held:  # a build still running holds the lock
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(BuildError, match="another build is writing this folder") as info:
            build(corpus, out, **kw)
        assert len(str(info.value).splitlines()) == 1
        assert not list((out / "shards").glob("part-*"))  # nothing written meanwhile
    # a build killed while holding the lock leaves the file, not the lock
    code = (f"import fcntl, os; f = open({str(out / LOCK_NAME)!r}, 'w'); "
            f"fcntl.flock(f, fcntl.LOCK_EX); os._exit(9)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert build(corpus, out, **kw)["files_kept"] == 5
