"""utils/core/checkpoints.py: what a checkpoint must be before it is trusted."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

from models.decoder import Decoder
from utils.core.checkpoints import (
    SeparatorSpec,
    build_separator,
    check_resume_checkpoint,
    checkpoint_problem,
    find_checkpoint,
    load_decoder,
    load_separator,
    model_paths,
)
from utils.core.config import Config, ConfigError, load_config
from utils.training.runs import build_trainer

ROOT = Path(__file__).resolve().parents[1]


def _tiny() -> Config:
    return load_config(ROOT / "configs" / "tiny.json")


def _save_separator(path: Path, config: dict) -> Path:
    """A separator checkpoint in Lightning's layout, with the given stored config."""
    net, _ = build_separator(SeparatorSpec.of(_tiny()))
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"config": config}}, path)
    return path


def test_stored_config_is_validated_like_a_config_file(tmp_path: Path) -> None:
    good = _tiny().to_dict()
    path = _save_separator(tmp_path / "sep.ckpt", good)
    _, process, config = load_separator(path, cfg=_tiny())
    assert config.to_dict() == good and process.max_steps() == good["time_steps"] - 1
    for key, value, message in (("time_steps", 10**9, "'time_steps' must be at most 100,000"),
                                ("beta_end", float("nan"), "'beta_end' must be a finite number"),
                                ("latent_dim", "32", "'latent_dim' must be int"),
                                ("surprise", 1, "unknown key 'surprise'")):
        path = _save_separator(tmp_path / f"{key}.ckpt", {**good, key: value})
        with pytest.raises(ConfigError, match=message) as info:
            load_separator(path)  # refused before anything is built from it
        assert f"{path} (stored config)" in str(info.value)


@pytest.mark.parametrize("key,value", [("latent_dim", 64), ("time_steps", 200),
                                       ("beta_end", 0.03)])
def test_config_and_checkpoint_disagreeing_is_refused_naming_the_key(
        tmp_path: Path, key: str, value: object) -> None:
    path = _save_separator(tmp_path / "sep.ckpt", _tiny().to_dict())
    cfg = load_config(ROOT / "configs" / "tiny.json", overrides={key: value})
    with pytest.raises(ConfigError, match=f"trained with '{key}' = .* but .* sets {value}"):
        load_separator(path, cfg=cfg)


def test_decoder_and_config_disagreeing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dec.ckpt"
    state = {f"decoder.{k}": v for k, v in Decoder(5, 16).state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"config": _tiny().to_dict()}}, path)
    assert isinstance(load_decoder(path, cfg=_tiny()), Decoder)
    other = load_config(ROOT / "configs" / "tiny.json", overrides={"decoder_dim": 32})
    with pytest.raises(ConfigError, match="trained with 'decoder_dim' = 16 but .* sets 32"):
        load_decoder(path, cfg=other)


def test_resume_checkpoint_must_be_a_full_one_of_its_kind(tmp_path: Path) -> None:
    path = _save_separator(tmp_path / "last.ckpt", _tiny().to_dict())
    with pytest.raises(ConfigError, match="cannot resume from it .*optimizer_states"):
        check_resume_checkpoint(path, _tiny(), "separator")
    full = {**torch.load(path, weights_only=True), "optimizer_states": [],
            "lr_schedulers": [], "loops": {}, "epoch": 0, "global_step": 1}
    torch.save(full, path)
    check_resume_checkpoint(path, _tiny(), "separator")
    with pytest.raises(ConfigError, match="not a decoder checkpoint"):
        check_resume_checkpoint(path, _tiny(), "decoder")


def _whole(path: Path, epoch: int) -> Path:
    torch.save({"state_dict": {}, "epoch": epoch}, path)
    return path


def test_a_truncated_newest_checkpoint_is_skipped_with_one_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A full disk while Lightning wrote left a truncated best-epoch=001 beside a whole
    best-epoch=000: every reader takes epoch 0, saying in one line what it skipped."""
    cfg = load_config(ROOT / "configs" / "tiny.json",
                      overrides={"model_dir": str(tmp_path / "ckpt")})
    folder = tmp_path / "ckpt" / "separator"
    folder.mkdir(parents=True)
    good = _whole(folder / "best-epoch=000-val_loss=0.5000.ckpt", 0)
    broken = _whole(folder / "best-epoch=001-val_loss=0.4000.ckpt", 1)
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])  # truncated
    os.utime(good, (1, 1))
    assert checkpoint_problem(good) is None and checkpoint_problem(broken) is not None
    assert find_checkpoint(cfg, "separator") == good
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: skipped 1 unreadable separator")
    assert broken.name in err[0] and str(good) in err[0]
    assert model_paths(cfg).separator == good  # what separate.py and evaluate.py use
    good.write_bytes(b"")  # nothing whole left: one error line, not a crash
    with pytest.raises(ConfigError, match="no readable separator checkpoint"):
        find_checkpoint(cfg, "separator")


def test_checkpoints_are_written_atomically(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The trainer writes through atomic_checkpoint_io: a disk that fills up mid-write
    leaves the previous file whole and no partial file under any checkpoint name."""
    cfg = load_config(ROOT / "configs" / "tiny.json",
                      overrides={"model_dir": str(tmp_path / "ckpt")})
    trainer = build_trainer(cfg, "separator", max_epochs=1)
    io = trainer.strategy.checkpoint_io
    assert type(io).__name__ == "AtomicCheckpointIO"
    target = tmp_path / "ckpt" / "separator" / "best-epoch=001-val_loss=0.4000.ckpt"
    io.save_checkpoint({"state_dict": {}, "epoch": 0}, target)
    assert torch.load(target, weights_only=True)["epoch"] == 0
    real_save = torch.save

    def disk_full(obj: object, f: object, *args: object, **kwargs: object) -> None:
        real_save(obj, f, *args, **kwargs)
        Path(f).write_bytes(Path(f).read_bytes()[:100])  # what a full disk leaves
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        io.save_checkpoint({"state_dict": {}, "epoch": 1}, target)
    assert torch.load(target, weights_only=True)["epoch"] == 0  # the old one, whole
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary left


def test_checkpoint_kinds_are_records() -> None:
    from utils.core.kinds import DECODER, KINDS, SEPARATOR, checkpoint_kind

    assert checkpoint_kind("separator") is SEPARATOR and checkpoint_kind(DECODER) is DECODER
    assert set(KINDS) == {"separator", "decoder"}
    assert SEPARATOR.config_key == "transunet_model_path" and SEPARATOR.former_dir
    assert DECODER.monitor(Config()) == ("val_loss", "min")
    assert SEPARATOR.monitor(Config(separator="direct"))[0] == "val_accuracy"
    with pytest.raises(ValueError, match="kind must be one of 'separator', 'decoder'"):
        checkpoint_kind("transunet")
