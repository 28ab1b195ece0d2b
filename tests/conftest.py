"""Shared, session-scoped fixtures: a phrase set built from the demo corpus and a tiny
trained separator + decoder (and a song pass trained on it). Built once per test session
and reused by every test that needs real data or real checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from utils.core.config import Config, load_config

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = ROOT / "data" / "demo" / "openmsx"
TINY_CONFIG = ROOT / "configs" / "tiny.json"


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """configs/tiny.json with every output folder moved into a temporary directory."""
    base = tmp_path_factory.mktemp("tiny")
    return load_config(TINY_CONFIG, overrides={
        "midi_dir": str(DEMO_DIR),
        "data_dir": str(base / "dataset"),
        "model_dir": str(base / "checkpoints"),
        "output_dir": str(base / "separated"),
    })


@pytest.fixture(scope="session")
def tiny_dataset(tiny_config: Config) -> Path:
    """The demo corpus built into phrases (train/val/test) under tiny_config.data_dir."""
    from data.preprocess import build

    build(tiny_config.midi_dir, tiny_config.data_dir, workers=2, seed=tiny_config.seed,
          fractions=(tiny_config.train_split, tiny_config.val_split, tiny_config.test_split),
          progress=False, min_bar_density=tiny_config.min_bar_density)
    return Path(tiny_config.data_dir)


@pytest.fixture(scope="session")
def tiny_run(tiny_config: Config, tiny_dataset: Path) -> Config:
    """A tiny separator and decoder trained briefly on the demo phrases (CPU, seconds)."""
    from utils.training.runs import train_decoder, train_separator

    train_separator(tiny_config)
    train_decoder(tiny_config)
    return tiny_config


@pytest.fixture(scope="session")
def song_pass_run(tiny_run: Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny separator with a song pass trained for a few steps on two demo songs."""
    folder = tmp_path_factory.mktemp("song_pass")
    from utils import song_pass_training
    from utils.core.checkpoints import find_checkpoint

    separator = find_checkpoint(tiny_run, "separator")
    decoder = find_checkpoint(tiny_run, "decoder")
    config = folder / "cfg.json"
    config.write_text(json.dumps({**tiny_run.to_dict(), "model_dir": str(folder / "models"),
                                  "transunet_model_path": str(separator),
                                  "decoder_model_path": str(decoder),
                                  "song_pass_steps": 3}))
    assert song_pass_training.main(["--config", str(config), "--limit", "2", "--no-progress"]) == 0
    return config
