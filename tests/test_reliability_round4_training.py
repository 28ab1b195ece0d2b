"""Training data that cannot train (empty splits, shares of no phrase), and resumes and mixes
across builds made with and without the melody in the mixture: refused in one line before
any work."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from data.dataset import MixSampler
from data.preprocess import build
from tests.test_reliability_data import _song
from tests.test_train import QUIET, tiny_cfg
from utils.core.checkpoints import LAST_NAME, checkpoint_dir
from utils.core.config import Config
from utils.evaluation.phrases import fit_train_baselines
from utils.training import runs as training

NAMED = {"workers": 1, "progress": False, "split_by": "named", "min_bar_density": 0.0}


def _built(root: Path, name: str, splits: dict[str, tuple[int, ...]],
           melody_in_mixture: bool = False) -> Path:
    corpus = root / f"corpus_{name}"
    for folder, pitches in splits.items():
        (corpus / folder).mkdir(parents=True)
        for k, pitch in enumerate(pitches):
            _song(corpus / folder / f"s{k}.mid", pitch)
    build(corpus, root / name, melody_in_mixture=melody_in_mixture, **NAMED)
    return root / name


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small builds: whole, without val songs, without train songs, melody in the mixture."""
    root = tmp_path_factory.mktemp("builds")
    whole = {"train": (60, 62), "val": (65,), "test": (67,)}
    return {"whole": _built(root, "whole", whole),
            "no_val": _built(root, "no_val", {"train": (60, 62), "test": (67,)}),
            "no_train": _built(root, "no_train", {"val": (65,), "test": (67,)}),
            "melody_in": _built(root, "melody_in", whole, melody_in_mixture=True)}


def _run(cfg: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str],
         *flags: str) -> tuple[int, list[str]]:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg.to_dict()))
    capsys.readouterr()
    status = training.main_for("separator", ["--config", str(path), *flags])
    return status, capsys.readouterr().err.strip().splitlines()


def _direct(tmp_path: Path, data_dir: Path, **overrides: object) -> Config:
    return tiny_cfg(tmp_path, data_dir=str(data_dir), separator="direct",
                    limit_train_batches=1, limit_val_batches=1, **overrides)


@pytest.mark.parametrize("case, expected", [
    ("no_val", r"'data_dir' = .*no_val' has no val phrases"),
    ("no_train", r"'data_dir' = .*no_train' has no train phrases"),
    ("mix_no_train", r"'train_mix' names .*no_train', which has no train phrases"),
    ("tiny_weight", r"'train_mix' weight of .*no_val' \(1e-300\) gives it 0 of the \d+ phrases"),
])
def test_data_that_cannot_train_is_refused_before_any_work(
        builds: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        case: str, expected: str) -> None:
    whole = str(builds["whole"])
    cfg = {
        "no_val": lambda: _direct(tmp_path, builds["no_val"]),
        "no_train": lambda: _direct(tmp_path, builds["no_train"]),
        "mix_no_train": lambda: _direct(tmp_path, builds["whole"], train_mix={
            whole: 1.0, str(builds["no_train"]): 1.0}),
        "tiny_weight": lambda: _direct(tmp_path, builds["whole"], train_mix={
            whole: 1.0, str(builds["no_val"]): 1e-300}),
    }[case]()
    status, err = _run(cfg, tmp_path, capsys)
    assert status == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert re.search(expected, err[0]), err[0]
    model_dir = Path(cfg.model_dir)
    assert not list(model_dir.rglob("*.ckpt")) and not (model_dir / "baselines.json").exists()
    assert not (model_dir / "logs").exists()  # refused before any Trainer was made


def test_shares_of_huge_and_tiny_weights(builds: dict[str, Path]) -> None:
    # 1e308 + 1e308 overflows a plain sum: the shares are still a half each
    assert MixSampler([10, 30], [1e308, 1e308]).counts == [20, 20]
    assert MixSampler([10, 30], [5e-324, 5e-324]).counts == [20, 20]
    with pytest.raises(ValueError, match="dataset 1's share rounds to 0 of the 40 phrases"):
        MixSampler([10, 30], [1.0, 1e-300])
    whole = str(builds["whole"])
    mix = {whole: 1e308, whole + "/": 1e308}  # the same dataset under two spellings
    huge = {name: b.to_dict() for name, b in fit_train_baselines(mix).items()}
    plain = {name: b.to_dict() for name, b in fit_train_baselines(
        dict.fromkeys(mix, 1.0)).items()}
    assert huge == plain


def test_a_mix_of_builds_with_and_without_the_melody_is_refused(
        builds: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole, melody_in = str(builds["whole"]), str(builds["melody_in"])
    cfg = _direct(tmp_path, builds["whole"], train_mix={whole: 1.0, melody_in: 1.0})
    status, err = _run(cfg, tmp_path, capsys)
    assert status == 2 and len(err) == 1, err
    assert "melody" in err[0] and melody_in in err[0] and whole in err[0]
    # validation on a build of the other kind than the training mix: refused too
    cfg = _direct(tmp_path, builds["melody_in"], train_mix={whole: 1.0})
    status, err = _run(cfg, tmp_path, capsys)
    assert status == 2 and len(err) == 1 and "'data_dir'" in err[0], err
    assert not list(Path(cfg.model_dir).rglob("*.ckpt"))


def test_resume_onto_a_build_with_the_other_melody_setting_is_refused(
        builds: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _direct(tmp_path, builds["whole"])
    training.train_separator(cfg, **QUIET)
    last = checkpoint_dir(cfg, "separator") / LAST_NAME
    stamp = last.stat().st_mtime_ns
    other = _direct(tmp_path, builds["melody_in"], max_epochs=2)
    status, err = _run(other, tmp_path, capsys, "--resume")
    assert status == 2 and len(err) == 1, err
    assert str(last) in err[0] and "melody" in err[0]
    assert last.stat().st_mtime_ns == stamp  # nothing trained
