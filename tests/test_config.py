"""config.json -> Config: defaults, bad values named by key, checkpoint lookup rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch

import evaluate
import separate
from utils import preprocess, synthesize
from utils.core.checkpoints import find_checkpoint
from utils.core.config import EXIT_CONFIG, Config, ConfigError, config_from_flags, load_config
from utils.training.runs import main_for

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


def test_the_song_pass_config_is_the_shipped_recipe_but_its_folders() -> None:
    # make song-pass trains a song pass for pretrained/separator.ckpt with the settings of
    # make pretrained; only where it reads the separator and writes its runs may differ
    dense = json.loads((ROOT / "configs" / "real_dense.json").read_text())
    song_pass = json.loads((ROOT / "configs" / "real_song_pass.json").read_text())
    folders = {"model_dir", "transunet_model_path", "output_dir"}
    assert song_pass.keys() == dense.keys()
    assert {key for key in dense if dense[key] != song_pass[key]} <= folders
    assert song_pass["transunet_model_path"] == "pretrained/separator.ckpt"


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
    ("weight_decay", -0.01, "'weight_decay' must be >= 0"),
    ("limit_train_batches", 0, "'limit_train_batches' must be a count >= 1"),
    ("limit_train_batches", -3, "'limit_train_batches' must be a count >= 1"),
    ("limit_train_batches", 0.0, "'limit_train_batches' must be a fraction in"),
    ("limit_val_batches", 1.5, "'limit_val_batches' must be a fraction in"),
    ("seed", -1, r"'seed' must be in \[0, 2\*\*32 - 1\]"),
    ("devices", 0, "'devices' must be a count >= 1"),
    ("devices", [], "'devices' must be a non-empty list"),
    ("gpus", 0, "'gpus' must be a count >= 1"),
    ("time_steps", 10**9, "'time_steps' must be at most 100,000"),
    ("max_song_bars", 0, "'max_song_bars' must be >= 4"),
    ("gradient_clip_val", -1.0, "'gradient_clip_val' must be >= 0"),
    ("song_pass_network", {"widht": 64}, "'song_pass_network' knows 'width', 'levels', "
                                         "'stacks', 'recurrent', not 'widht'"),
    ("song_pass_network", {"recurrent": -1}, "'song_pass_network' 'recurrent' must be an "
                                             "integer in 0..512"),
    ("song_pass_network", {"width": 0}, "'song_pass_network' 'width' must be an integer in "
                                        "1..512"),
    ("song_pass_network", {"levels": 2.0}, "'song_pass_network' must be dict"),
])
def test_bad_values_name_the_key(tmp_path: Path, key: str, value: object, message: str) -> None:
    path = write(tmp_path, **{key: value})
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text,message", [
    ('{"lr": NaN}', "'lr' must be a finite number, got nan"),
    ('{"beta_end": Infinity}', "'beta_end' must be a finite number, got inf"),
    ('{"min_bar_density": -Infinity}', "'min_bar_density' must be a finite number"),
])
def test_nan_and_infinity_are_refused(tmp_path: Path, text: str, message: str) -> None:
    """Python's JSON reader accepts NaN and Infinity; a config must not."""
    path = tmp_path / "cfg.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_unreadable_config_files_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "cfg.json"
    path.write_bytes(b'{"midi_dir": "caf\xe9"}')  # Latin-1, not UTF-8
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xe9 at offset 17\)"):
        load_config(path)
    path.write_text("[" * 100_000)
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(path)


def test_release_gpus_key_means_gpu_accelerator(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, gpus=[0, 1], strategy="ddp"))
    hw = cfg.trainer_hardware()
    assert hw["accelerator"] == "gpu" and hw["devices"] == [0, 1] and hw["strategy"] == "ddp"


def test_find_checkpoint_rule(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, model_dir=str(tmp_path / "ckpt")))
    with pytest.raises(ConfigError, match="no separator checkpoint .* train first"):
        find_checkpoint(cfg, "separator")
    folder = tmp_path / "ckpt" / "separator"
    folder.mkdir(parents=True)
    old = folder / "best-epoch=000-val_loss=0.5.ckpt"
    new = folder / "best-epoch=003-val_loss=0.7.ckpt"
    for path in (old, new, folder / "last.ckpt"):
        torch.save({"state_dict": {}}, path)  # whole files (find_checkpoint skips broken ones)
    os.utime(old, (1, 1))
    assert find_checkpoint(cfg, "separator") == new  # newest best, never last
    named = load_config(write(tmp_path, transunet_model_path=str(old)))
    assert find_checkpoint(named, "separator") == old
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
    key = "'data_dir'" if script == "melody2music_train.py" else "no separator checkpoint"
    assert key in lines[0]


def test_require_writable_dir(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, model_dir=str(tmp_path / "new" / "ckpt")))
    assert cfg.require_writable_dir("model_dir") == tmp_path / "new" / "ckpt"
    assert not (tmp_path / "new").exists()  # checked, not created: a failure leaves nothing
    (tmp_path / "file").write_text("x")
    for where in ("file", "file/ckpt"):
        cfg = load_config(write(tmp_path, model_dir=str(tmp_path / where)))
        with pytest.raises(ConfigError, match="'model_dir' = .* is not a writable folder"):
            cfg.require_writable_dir("model_dir")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any permission")
def test_require_writable_dir_without_permission(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    cfg = load_config(write(tmp_path, model_dir=str(locked / "ckpt")))
    with pytest.raises(ConfigError, match=r"not a writable folder \(Permission denied\)"):
        cfg.require_writable_dir("model_dir")


COMMANDS = {  # every command's main(argv) -> exit status
    "melody2music_train.py": lambda argv: main_for("separator", argv),
    "melody2music_decoder.py": lambda argv: main_for("decoder", argv),
    "evaluate.py": evaluate.main,
    "separate.py": lambda argv: separate.main(["song.mid", *argv]),
    "python -m utils.preprocess": preprocess.main,
    "python -m utils.synthesize": lambda argv: synthesize.main(["--songs", "1", *argv]),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_exits_2_with_one_line_on_a_bad_config(
        tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """One exit status for a config or input problem, whichever command reads it."""
    path = tmp_path / "cfg.json"
    path.write_text('{"lr": NaN}')
    assert COMMANDS[command](["--config", str(path)]) == EXIT_CONFIG == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "'lr'" in lines[0]


def test_unwritable_model_dir_is_refused_before_any_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """model_dir a file: training and evaluation name it before looking at data or models."""
    (tmp_path / "file").write_text("x")
    path = write(tmp_path, model_dir=str(tmp_path / "file"), data_dir=str(tmp_path / "nowhere"))
    for command in ("melody2music_train.py", "evaluate.py"):
        assert COMMANDS[command](["--config", str(path)]) == EXIT_CONFIG == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        assert "'model_dir'" in lines[0] and "is not a writable folder (it is a file)" in lines[0]


def test_replace_gives_a_validated_copy(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, lr=0.01))
    changed = cfg.replace(num_samples=4)
    assert changed.num_samples == 4 and changed.lr == 0.01 and cfg.num_samples == 1
    assert changed._source == cfg._source
    with pytest.raises(ConfigError, match="'num_samples' must be > 0"):
        cfg.replace(num_samples=0)
    with pytest.raises(ConfigError, match="unknown key 'samples'"):
        cfg.replace(samples=2)


def test_config_from_flags(tmp_path: Path) -> None:
    """Flags replace config keys and are validated like them; without --config the
    required flags are named."""
    keys = {"out_dir": "data_dir", "seed": "seed"}
    cfg = config_from_flags(Namespace(config=str(write(tmp_path)), out_dir=None, seed=7),
                            keys, required=("out_dir",))
    assert cfg.seed == 7 and cfg.data_dir == load_config(write(tmp_path)).data_dir
    cfg = config_from_flags(Namespace(config=None, out_dir="out", seed=None), keys,
                            required=("out_dir",))
    assert cfg.data_dir == "out" and cfg.seed == Config().seed
    with pytest.raises(ConfigError, match="^--out-dir is required"):
        config_from_flags(Namespace(config=None, out_dir=None, seed=None), keys,
                          required=("out_dir",))
    with pytest.raises(ConfigError, match="'seed' must be in"):
        config_from_flags(Namespace(config=None, out_dir="out", seed=-1), keys,
                          required=("out_dir",))
