"""config.json -> Config: defaults, bad values named by key, checkpoint lookup rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.checkpoints import find_checkpoint
from utils.config import Config, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, **changes: object) -> Path:
    raw = json.loads((ROOT / "configs" / "tiny.json").read_text())
    raw.update(changes)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(raw))
    return path


def test_shipped_configs_load_and_paper_defaults() -> None:
    for name in ("config.json", "configs/demo.json", "configs/tiny.json"):
        assert isinstance(load_config(ROOT / name), Config)
    paper = load_config(ROOT / "config.json")
    assert (paper.latent_dim, paper.d_model, paper.num_layers, paper.time_emb_dim) == (
        256, 256, 2, 16)
    assert (paper.time_steps, paper.batch_size, paper.lr, paper.max_epochs) == (1000, 512, 1e-3, 50)
    assert paper.to_dict() == Config().to_dict()


@pytest.mark.parametrize("key,value,message", [
    ("latent_dim", 40, "'latent_dim' must be a multiple of 32"),
    ("d_model", 100, "'d_model' must be a multiple of 64"),
    ("batch_size", 0, "'batch_size' must be > 0"),
    ("batch_size", "8", "'batch_size' must be int"),
    ("strategy", "horovod", "'strategy' must be one of"),
    ("precision", "8-bit", "'precision' must be one of"),
    ("sampler", "euler", "'sampler' must be one of 'ddpm', 'ddim'"),
    ("assign", "vote", "'assign' must be one of 'threshold', 'partition'"),
    ("sampling_steps", 100, "'sampling_steps' must be at most time_steps - 1 = 99"),
    ("lr_factor", 1.5, "'lr_factor' must be in"),
    ("rate", 1.0, "'rate' must be in"),
    ("gpus_typo", 1, "unknown key 'gpus_typo'"),
])
def test_bad_values_name_the_key(tmp_path: Path, key: str, value: object, message: str) -> None:
    path = write(tmp_path, **{key: value})
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_release_gpus_key_means_gpu_accelerator(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, gpus=[0, 1], strategy="ddp"))
    hw = cfg.trainer_hardware()
    assert hw["accelerator"] == "gpu" and hw["devices"] == [0, 1] and hw["strategy"] == "ddp"


def test_find_checkpoint_rule(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, model_dir=str(tmp_path / "ckpt")))
    with pytest.raises(ConfigError, match="no transunet checkpoint .* train first"):
        find_checkpoint(cfg, "transunet")
    folder = tmp_path / "ckpt" / "transunet"
    folder.mkdir(parents=True)
    old = folder / "best-epoch=000-val_loss=0.5.ckpt"
    new = folder / "best-epoch=003-val_loss=0.7.ckpt"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    (folder / "last.ckpt").write_bytes(b"x")
    os.utime(old, (1, 1))
    assert find_checkpoint(cfg, "transunet") == new  # newest best, never last
    named = load_config(write(tmp_path, transunet_model_path=str(old)))
    assert find_checkpoint(named, "transunet") == old
    missing = load_config(write(tmp_path, decoder_model_path=str(tmp_path / "nope.ckpt")))
    with pytest.raises(ConfigError, match="'decoder_model_path' = .*nope.ckpt.* does not exist"):
        find_checkpoint(missing, "decoder")
    with pytest.raises(ValueError, match="kind must be one of"):
        find_checkpoint(cfg, "vae")


@pytest.mark.parametrize("script", ["melody2music_train.py", "melody2music_decoder.py"])
def test_scripts_report_config_errors_in_one_line(tmp_path: Path, script: str) -> None:
    path = write(tmp_path, data_dir=str(tmp_path / "nowhere"), model_dir=str(tmp_path / "ckpt"))
    proc = subprocess.run([sys.executable, script, "--config", str(path)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    key = "'data_dir'" if script == "melody2music_train.py" else "no transunet checkpoint"
    assert key in lines[0]
