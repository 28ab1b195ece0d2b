"""Tests of utils/evaluation/phrases.py and evaluate.py."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import evaluate
from bench.sample import benchmark_steps
from data.contract import N_MUSIC, N_PITCH, PHRASE_SHAPE, PHRASE_STEPS
from data.store import PhraseStore, pack, write_split
from models.decoder import Decoder
from models.diffusion import GuidedDiffusion
from models.transunet import TransUNet
from utils.core.config import Config
from utils.evaluation.baselines import fit_baselines
from utils.evaluation.metrics import METRIC_KEYS
from utils.evaluation.phrases import (
    ORACLE_NAME,
    Evaluation,
    model_row,
    phrase_batches,
    score_systems,
    subset_indices,
    write_evaluation,
)
from utils.separation.separator import Separator

ROOT = Path(__file__).resolve().parents[1]


def toy_phrases(n: int, seed: int = 0) -> np.ndarray:
    """Random phrases, bool [n, 64, 72, 6]: bass low, piano high, some drums."""
    rng = np.random.default_rng(seed)
    phrases = np.zeros((n, *PHRASE_SHAPE), dtype=bool)
    phrases[:, :, 5:20, 3] = rng.random((n, PHRASE_STEPS, 15)) < 0.1  # bass
    phrases[:, :, 30:60, 1] = rng.random((n, PHRASE_STEPS, 30)) < 0.1  # piano
    phrases[:, :, 40:50, 2] = rng.random((n, PHRASE_STEPS, 10)) < 0.05  # guitar
    phrases[:, :, 63:, 5] = rng.random((n, PHRASE_STEPS, 9)) < 0.1  # drum
    return phrases


def tiny_separator() -> Separator:
    """An untrained tiny separator (fast on the CPU)."""
    torch.manual_seed(0)
    model = TransUNet(in_ch=N_MUSIC, out_ch=N_MUSIC, latent_dim=32, d_model=64, num_layers=1,
                      time_emb_dim=16)
    return Separator(model=model, process=GuidedDiffusion(time_steps=10),
                     decoder=Decoder(N_MUSIC, 16), steps=2, batch_size=4, assign="partition")


def test_subset_indices() -> None:
    np.testing.assert_array_equal(subset_indices(5, None), np.arange(5))
    np.testing.assert_array_equal(subset_indices(5, 10), np.arange(5))
    np.testing.assert_array_equal(subset_indices(9, 3), [0, 4, 8])
    assert len(subset_indices(1000, 7)) == 7
    with pytest.raises(ValueError, match="'limit'"):
        subset_indices(5, 0)


def test_phrase_batches_read_a_store(tmp_path: Path) -> None:
    phrases = toy_phrases(5)
    write_split(tmp_path, "test", 5, [(pack(phrases), np.zeros(5, dtype=np.int32))])
    (tmp_path / "manifest.json").write_text(json.dumps(  # readers need the build's manifest
        {"phrases": {"test": 5}, "songs": {"test": 1}, "split_songs": {"test": ["toy.mid"]}}))
    store = PhraseStore(tmp_path, "test")
    batches = list(phrase_batches(store, 2, np.array([0, 2, 4])))
    assert [len(m) for m, _, _ in batches] == [2, 1]
    music, mixture, onsets = batches[0]
    assert onsets.shape == mixture.shape and not (onsets & ~mixture).any()
    assert music.shape == (2, N_MUSIC, PHRASE_STEPS, N_PITCH) and music.dtype == bool
    assert mixture.shape == (2, 1, PHRASE_STEPS, N_PITCH)
    np.testing.assert_array_equal(music[1], np.moveaxis(phrases[2, ..., 1:], -1, 0))
    np.testing.assert_array_equal(mixture, music.any(axis=1, keepdims=True))


def test_score_systems_rows_and_baselines() -> None:
    from data.roll import music_and_mixture

    train_music, _ = music_and_mixture(toy_phrases(8, seed=1))
    baselines = fit_baselines([train_music])
    music, mixture = music_and_mixture(toy_phrases(6, seed=2))
    batches = [(music[:4], mixture[:4], mixture[:4]), (music[4:], mixture[4:], mixture[4:])]
    rows, seconds = score_systems(tiny_separator(), baselines, batches, total=6,
                                  progress=False)
    models = [model_row("partition"), model_row("threshold")]  # configured mode first
    assert list(rows) == [*models, *baselines, ORACLE_NAME]
    assert seconds > 0
    for metrics in rows.values():
        assert list(metrics) == list(METRIC_KEYS)
        assert all(np.isfinite(v) for v in metrics.values())
    # partition answers: consistency exactly 0
    for name in (model_row("partition"), *baselines, ORACLE_NAME):
        assert rows[name]["consistency"] == 0.0
    # the oracle misses exactly the cells two instruments share (guitar inside piano)
    shared = np.count_nonzero(music.sum(axis=1) > 1) / np.count_nonzero(mixture)
    assert rows[ORACLE_NAME]["cell_accuracy"] == pytest.approx(1.0 - shared)
    # instruments live in pitch zones: the pitch-row rule beats "everything is piano"
    assert rows["pitch_row"]["cell_accuracy"] > rows["most_common"]["cell_accuracy"]


def test_score_systems_without_model() -> None:
    from data.roll import music_and_mixture

    music, mixture = music_and_mixture(toy_phrases(3))
    rows, seconds = score_systems(None, {}, [(music, mixture, mixture)], total=3, progress=False)
    assert list(rows) == [ORACLE_NAME] and seconds == 0.0


def test_write_evaluation(tmp_path: Path) -> None:
    rows = {model_row("threshold"): dict.fromkeys(METRIC_KEYS, 0.25),
            "zone": dict.fromkeys(METRIC_KEYS, 0.5)}
    ev = Evaluation(split="val", n_phrases=3, rows=rows, phrases_per_s=1.5, seconds=2.0,
                    settings={"sampler": "ddim", "steps": 5, "eta": 0.0, "assign": "threshold",
                              "device": "cpu"})
    json_path, md_path = write_evaluation(ev, tmp_path / "models")
    assert json_path.name == "evaluation_val.json" and md_path.name == "evaluation_val.md"
    data = json.loads(json_path.read_text())
    assert data["rows"]["zone"]["note_accuracy"] == 0.5 and data["n_phrases"] == 3
    md = md_path.read_text()
    assert "| diffusion (threshold) |" in md and "| zone |" in md and "1.50 phrases/s" in md
    assert "note_accuracy" in ev.table() and "piano_f1" in ev.table()


# ----------------------------------------------------------------------------------
# End to end on the tiny trained run
# ----------------------------------------------------------------------------------
def write_config(cfg: Config, path: Path, **overrides: object) -> Path:
    """Write a Config (plus overrides) as a JSON file for a script's --config."""
    path.write_text(json.dumps({**cfg.to_dict(), **overrides}))
    return path


def test_evaluate_script_writes_json_and_markdown(tiny_run: Config, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = write_config(tiny_run, tmp_path / "cfg.json")
    code = evaluate.main(["--config", str(cfg_path), "--split", "test", "--limit", "6",
                          "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "phrases/s" in out and model_row("threshold") in out and "oracle" in out
    json_path = Path(tiny_run.model_dir) / "evaluation_test.json"
    md_path = Path(tiny_run.model_dir) / "evaluation_test.md"
    assert str(json_path) in out
    data = json.loads(json_path.read_text())
    assert data["n_phrases"] <= 6 and data["settings"]["steps"] == tiny_run.sampling_steps
    assert set(data["rows"]) >= {model_row("threshold"), model_row("partition"), ORACLE_NAME}
    assert len(data["rows"]) == 6  # model (two assignments), three baselines, oracle
    assert "| diffusion (partition) |" in md_path.read_text()


def test_evaluate_script_without_checkpoint(tiny_dataset: Path, tiny_config: Config,
                                            monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import utils.core.checkpoints as checkpoints

    monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", tmp_path / "no_shipped_model")
    cfg_path = write_config(tiny_config, tmp_path / "cfg.json",
                            model_dir=str(tmp_path / "empty"))
    code = evaluate.main(["--config", str(cfg_path), "--limit", "2", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "checkpoint" in err and "\n" not in err
    assert not (tmp_path / "empty").exists() or not any((tmp_path / "empty").iterdir())


def test_evaluate_refuses_a_config_the_checkpoints_disagree_with(
        tiny_run: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = write_config(tiny_run, tmp_path / "cfg.json", beta_end=0.03)
    code = evaluate.main(["--config", str(cfg_path), "--limit", "2", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err.startswith("error: ") and "trained with 'beta_end' = 0.02 but" in err


def test_benchmark_steps_clamps_and_measures() -> None:
    from data.roll import music_and_mixture

    music, mixture = music_and_mixture(toy_phrases(3, seed=3))
    rows = benchmark_steps(tiny_separator(), [(music, mixture, mixture)], [1000, 9, 2])
    assert list(rows) == ["9 steps", "2 steps"]  # 1000 -> T - 1 = 9, run once
    for row in rows.values():
        assert row["phrases_per_s"] > 0 and row["ms_per_phrase"] > 0
        assert row["consistency"] == 0.0  # partition mode
    assert rows["2 steps"]["steps"] == 2.0
    with pytest.raises(ValueError, match="no phrases"):
        benchmark_steps(tiny_separator(), [], [2])


def test_bench_sample_script(tiny_run: Config, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_sample", ROOT / "bench" / "sample.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cfg_path = write_config(tiny_run, tmp_path / "cfg.json")
    code = bench.main(["--config", str(cfg_path), "--steps", "1000", "3", "--limit", "2",
                       "--markdown"])
    out = capsys.readouterr().out
    assert code == 0
    top = tiny_run.time_steps - 1
    assert f"| {top} steps |" in out and "| 3 steps |" in out and "phrases_per_s" in out


def test_cross_corpus_evaluation_uses_the_models_saved_baselines(
        tiny_run: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    saved = Path(tiny_run.model_dir) / "baselines.json"
    assert saved.is_file()  # written by the separator's training run
    other = tmp_path / "other_corpus"
    shutil.copytree(tiny_run.data_dir, other)
    # the config's own data_dir is gone: only the model folder and the scored data remain
    cfg_path = write_config(tiny_run, tmp_path / "cfg.json",
                            data_dir=str(tmp_path / "not_built"))
    code = evaluate.main(["--config", str(cfg_path), "--data-dir", str(other), "--limit", "4",
                          "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    tag = f"{tmp_path.name}_other_corpus"  # the folder and the one above it
    data = json.loads((Path(tiny_run.model_dir) / f"evaluation_{tag}_test.json").read_text())
    assert data["settings"]["baselines"] == str(saved)
    assert data["settings"]["data_dir"] == str(other)
    assert "zone" in data["rows"] and data["n_phrases"] <= 4


def test_shipped_model_is_used_when_none_is_trained(
        tiny_run: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import utils.core.checkpoints as checkpoints
    from utils.core.checkpoints import export_checkpoint, find_checkpoint

    shipped = tmp_path / "pretrained"
    export_checkpoint(find_checkpoint(tiny_run, "separator"), shipped / "separator.ckpt")
    export_checkpoint(find_checkpoint(tiny_run, "decoder"), shipped / "decoder.ckpt")
    (shipped / "baselines.json").write_text(
        (Path(tiny_run.model_dir) / "baselines.json").read_text())
    monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", shipped)
    # another network size in the config: the shipped model keeps its own
    cfg_path = write_config(tiny_run, tmp_path / "cfg.json", model_dir=str(tmp_path / "none"),
                            latent_dim=64)
    code = evaluate.main(["--config", str(cfg_path), "--limit", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"shipped model {shipped / 'separator.ckpt'}" in out
    data = json.loads((tmp_path / "none" / "evaluation_test.json").read_text())
    assert data["settings"]["baselines"] == str(shipped / "baselines.json")
    # a checkpoint the config names but that is missing is still an error, not a fallback
    cfg_path = write_config(tiny_run, tmp_path / "cfg2.json", model_dir=str(tmp_path / "none"),
                            transunet_model_path=str(tmp_path / "missing.ckpt"))
    assert evaluate.main(["--config", str(cfg_path), "--limit", "2", "--no-progress"]) != 0
    assert "missing.ckpt" in capsys.readouterr().err


def test_ablation_trains_each_variant_alike_and_scores_songs(
        tiny_dataset: Path, tiny_config: Config, tmp_path: Path) -> None:
    from bench.ablation import KEYS, VARIANTS, Budget, run_ablation

    cfg_path = write_config(tiny_config, tmp_path / "cfg.json")
    wanted = ("direct + pitch (no new input)", "+ onsets + beat + transposition",
              "diffusion (paper)")
    variants = [v for v in VARIANTS if v.name in wanted]
    lines: list[str] = []
    targets = [("demo", str(tiny_dataset), "test"), ("demo val", str(tiny_dataset), "val")]
    tables = run_ablation(cfg_path, None, tmp_path / "abl", Budget(2, 2, val_batches=1),
                          targets=targets, limit=1, variants=variants, log=lines.append)
    assert set(tables) == {"demo", "demo val"}
    for rows in tables.values():
        assert list(rows)[:3] == list(wanted)
        assert {"zone", "pitch_row"} <= set(rows)
        for name in wanted:
            assert set(KEYS) <= set(rows[name]) and rows[name]["notes"] > 0
    # each variant trained its own separator with its own inputs; one decoder (diffusion)
    assert sum("training '" in line for line in lines) == 3
    assert sum("its decoder" in line for line in lines) == 1
    from utils.core.checkpoints import find_checkpoint, load_separator

    cfg = tiny_config.replace(model_dir=str(tmp_path / "abl" / "onsets___beat___transposition"))
    net, _, stored = load_separator(find_checkpoint(cfg, "separator"))
    assert stored.onset_channel and stored.beat_channel and stored.transpose == [-5, 6]
    assert stored.separator == "direct" and net.stem.in_channels == 1 + 1 + 1 + 4
    with pytest.raises(ValueError, match="config-melody-out"):
        run_ablation(cfg_path, None, tmp_path / "x", Budget(1, 1), targets, 1,
                     [v for v in VARIANTS if v.melody_out], log=lines.append)


def test_the_shipped_model_loads_and_separates(tmp_path: Path) -> None:
    """pretrained/ holds a model a fresh clone can use without training anything."""
    from utils.core.checkpoints import PRETRAINED_DIR
    from utils.core.config import load_config

    cfg = load_config(ROOT / "config.json", overrides={"model_dir": str(tmp_path / "none"),
                                                        "accelerator": "cpu"})
    separator = Separator.from_config(cfg)
    assert separator.source == f"shipped model {PRETRAINED_DIR / 'separator.ckpt'}"
    assert separator.kind == "direct" and separator.baselines_path() is not None
    from data.roll import music_and_mixture

    _, mixture = music_and_mixture(toy_phrases(2, seed=5))
    pred = separator.with_settings(assign="partition").separate_phrases(mixture).numpy()
    assert pred.shape == (2, N_MUSIC, PHRASE_STEPS, N_PITCH)
    assert np.array_equal(pred.any(axis=1, keepdims=True), mixture)  # one per sounding cell
