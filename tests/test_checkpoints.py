"""utils/checkpoints.py: what a checkpoint must be before it is trusted."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.decoder import Decoder
from utils.checkpoints import (
    SeparatorSpec,
    build_separator,
    check_resume_checkpoint,
    load_decoder,
    load_separator,
)
from utils.config import Config, ConfigError, load_config

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
    _, diffusion, config = load_separator(path, cfg=_tiny())
    assert config.to_dict() == good and diffusion.num_timesteps == good["time_steps"]
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
        check_resume_checkpoint(path, _tiny(), "transunet")
    full = {**torch.load(path, weights_only=True), "optimizer_states": [],
            "lr_schedulers": [], "loops": {}, "epoch": 0, "global_step": 1}
    torch.save(full, path)
    check_resume_checkpoint(path, _tiny(), "transunet")
    with pytest.raises(ConfigError, match="not a decoder checkpoint"):
        check_resume_checkpoint(path, _tiny(), "decoder")
