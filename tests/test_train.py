"""Training runs on synthetic phrases: checkpoints, resume, logs, non-finite loss, overfit."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from data.contract import N_MUSIC, N_PITCH, PHRASE_STEPS
from models.diffusion import GuidedDiffusion
from models.transunet import TransUNet
from utils.core.checkpoints import LAST_NAME, checkpoint_dir, find_checkpoint, load_separator
from utils.core.config import Config, ConfigError, load_config
from utils.training.lightning import SeparatorModule
from utils.training.runs import NonFiniteLossError, main_for, train_decoder, train_separator

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.json"


def synthetic_phrases(n: int, seed: int = 0, steps: int = PHRASE_STEPS,
                      pitches: int = N_PITCH) -> dict[str, torch.Tensor]:
    """Learnable toy phrases: each instrument owns a pitch zone; notes are random.

    Returns:
        ``music`` float ``[n, 5, steps, pitches]``, ``mixture`` float ``[n, 1, steps, pitches]``.
    """
    gen = torch.Generator().manual_seed(seed)
    on = torch.rand(n, 1, steps, pitches, generator=gen) < 0.08
    zone = torch.arange(pitches) * N_MUSIC // pitches  # instrument of each pitch row
    owner = torch.nn.functional.one_hot(zone, N_MUSIC).T.reshape(1, N_MUSIC, 1, pitches).bool()
    music = (on & owner).float()
    return {"music": music, "mixture": on.float()}


class PhraseTensors(Dataset):
    """A dict of equally long tensors as a map-style dataset of dicts."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return next(iter(self.tensors.values())).shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}


class SyntheticPhrases(pl.LightningDataModule):
    """Train/val loaders over fixed tensors (no shuffling, so runs are reproducible)."""

    def __init__(self, train: dict[str, torch.Tensor], val: dict[str, torch.Tensor] | None = None,
                 batch_size: int = 4) -> None:
        super().__init__()
        self.train, self.val = train, val if val is not None else train
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(PhraseTensors(self.train), batch_size=self.batch_size, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(PhraseTensors(self.val), batch_size=self.batch_size, shuffle=False)


def tiny_cfg(tmp_path: Path, **overrides: object) -> Config:
    """configs/tiny.json with its outputs in ``tmp_path``."""
    return load_config(TINY, overrides={"model_dir": str(tmp_path / "ckpt"),
                                        "data_dir": str(tmp_path / "data"), **overrides})


QUIET = {"enable_progress_bar": False, "enable_model_summary": False}


def test_train_separator_and_decoder_write_checkpoints(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, limit_train_batches=2, limit_val_batches=1)
    data = SyntheticPhrases(synthetic_phrases(8), batch_size=4)
    best = train_separator(cfg, datamodule=data, **QUIET)
    assert best.parent == checkpoint_dir(cfg, "separator") and best.name.startswith("best-")
    assert (best.parent / LAST_NAME).is_file()
    assert find_checkpoint(cfg, "separator") == best
    ckpt = torch.load(best, weights_only=True)
    assert ckpt["hyper_parameters"]["config"] == cfg.to_dict()
    net, diffusion, config = load_separator(best, cfg=cfg)
    assert isinstance(net, TransUNet) and isinstance(diffusion, GuidedDiffusion)
    assert not net.training and config.latent_dim == cfg.latent_dim

    separator_bytes = best.read_bytes()
    dec_best = train_decoder(cfg, datamodule=data, **QUIET)
    assert dec_best.parent == checkpoint_dir(cfg, "decoder")
    assert find_checkpoint(cfg, "decoder") == dec_best
    dec_ckpt = torch.load(dec_best, weights_only=True)
    assert dec_ckpt["hyper_parameters"]["separator_path"] == str(best)
    # only the decoder is trained: its checkpoint holds decoder weights and the schedule
    # buffers, and the separator's checkpoint is untouched
    assert {k.split(".")[0] for k in dec_ckpt["state_dict"]} == {"decoder", "process"}
    assert best.read_bytes() == separator_bytes

    # CSV logs hold train/val loss and the learning rate
    metrics = next((Path(cfg.model_dir) / "logs" / "separator").glob("version_*/metrics.csv"))
    header = next(csv.reader(metrics.open()))
    assert {"train_loss", "val_loss"} <= set(header)
    assert any(h.startswith("lr-") for h in header)


def test_resume_continues_epoch_count(tmp_path: Path) -> None:
    data = SyntheticPhrases(synthetic_phrases(4), batch_size=4)
    cfg = tiny_cfg(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    train_separator(cfg, datamodule=data, **QUIET)
    last = checkpoint_dir(cfg, "separator") / LAST_NAME
    first = torch.load(last, weights_only=True)
    assert first["epoch"] == 0 and first["global_step"] == 1

    cfg2 = tiny_cfg(tmp_path, max_epochs=3, limit_train_batches=1, limit_val_batches=1)
    train_separator(cfg2, resume=True, datamodule=data, **QUIET)
    second = torch.load(last, weights_only=True)
    assert second["epoch"] == 2 and second["global_step"] == 3
    assert len(second["lr_schedulers"]) == 1 and len(second["optimizer_states"]) == 1


# the run below is moved into the former folder after it was written, so Lightning sees
# another folder than the one it saved in; a run trained there does not
@pytest.mark.filterwarnings("ignore:The dirpath has changed")
def test_a_run_in_the_former_folder_is_found_and_resumed_there(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A model_dir trained when the separator's folder was called ``transunet``: its
    checkpoints are found and resumed where they are, with one warning line, until
    ``model_dir/separator/`` holds a checkpoint."""
    data = SyntheticPhrases(synthetic_phrases(4), batch_size=4)
    cfg = tiny_cfg(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    best = train_separator(cfg, datamodule=data, **QUIET)
    folder = best.parent
    former = folder.rename(folder.with_name("transunet"))
    capsys.readouterr()
    assert find_checkpoint(cfg, "separator") == former / best.name
    cfg2 = tiny_cfg(tmp_path, max_epochs=2, limit_train_batches=1, limit_val_batches=1)
    train_separator(cfg2, resume=True, datamodule=data, **QUIET)
    assert torch.load(former / LAST_NAME, weights_only=True)["epoch"] == 1
    assert not folder.exists()  # the resumed run stayed in its folder
    warnings = [line for line in capsys.readouterr().err.splitlines()
                if line.startswith("warning:")]
    assert len(warnings) == 1 and str(former) in warnings[0]
    assert "now called 'separator'" in warnings[0]
    folder.mkdir()
    (folder / best.name).write_bytes((former / best.name).read_bytes())
    assert find_checkpoint(cfg, "separator") == folder / best.name


def test_resume_without_last_checkpoint_is_a_config_error(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path)
    data = SyntheticPhrases(synthetic_phrases(4))
    with pytest.raises(ConfigError, match="'resume'.*last.ckpt"):
        train_separator(cfg, resume=True, datamodule=data, **QUIET)


class _OpensAFile:
    """Pickles as a call to ``open(marker, "w")``: full unpickling creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def test_resume_reads_last_checkpoint_weights_only(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A crafted last.ckpt carrying code is refused, even where full unpickling is forced."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    data = SyntheticPhrases(synthetic_phrases(4), batch_size=4)
    cfg = tiny_cfg(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    train_separator(cfg, datamodule=data, **QUIET)
    last = checkpoint_dir(cfg, "separator") / LAST_NAME
    genuine = torch.load(last, weights_only=True)
    marker = tmp_path / "code-ran"
    torch.save({**genuine, "callbacks": _OpensAFile(marker)}, last)
    cfg2 = tiny_cfg(tmp_path, max_epochs=2, limit_train_batches=1, limit_val_batches=1)
    with pytest.raises(ConfigError, match=r"last\.ckpt: not a readable checkpoint"):
        train_separator(cfg2, resume=True, datamodule=data, **QUIET)
    assert not marker.exists()

    config = tmp_path / "cfg.json"
    config.write_text(json.dumps(cfg2.to_dict()))
    broken = {"truncated": last.read_bytes()[:1000],
              "weights only": None,  # a checkpoint without optimizer and loop states
              "other network": None}
    torch.save({k: v for k, v in genuine.items() if k != "optimizer_states"}, tmp_path / "w.ckpt")
    broken["weights only"] = (tmp_path / "w.ckpt").read_bytes()
    wider = {**genuine, "hyper_parameters": {"config": {**cfg.to_dict(), "latent_dim": 64}}}
    torch.save(wider, tmp_path / "o.ckpt")
    broken["other network"] = (tmp_path / "o.ckpt").read_bytes()
    expected = {"truncated": "not a readable checkpoint", "weights only": "cannot resume",
                "other network": "trained with 'latent_dim' = 64"}
    for label, content in broken.items():
        last.write_bytes(content)
        assert main_for("separator", ["--config", str(config), "--resume"]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and str(last) in lines[0], (label, lines)
        assert expected[label] in lines[0], (label, lines[0])

    torch.save(genuine, last)  # the genuine one resumes, with full unpickling forced on
    train_separator(cfg2, resume=True, datamodule=data, **QUIET)
    assert torch.load(last, weights_only=True)["epoch"] == 1


def test_non_finite_loss_stops_naming_the_step_and_keeps_best(tmp_path: Path) -> None:
    good = SyntheticPhrases(synthetic_phrases(4), batch_size=4)
    cfg = tiny_cfg(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    best = train_separator(cfg, datamodule=good, **QUIET)
    before = best.read_bytes()
    last_before = (best.parent / LAST_NAME).read_bytes()

    bad = synthetic_phrases(4)
    bad["music"][0, 0, 0, 0] = float("nan")
    bad["mixture"][0, 0, 0, 0] = 1.0
    cfg2 = tiny_cfg(tmp_path, max_epochs=2, limit_train_batches=1, limit_val_batches=1)
    with pytest.raises(NonFiniteLossError, match="global step 1"):
        train_separator(cfg2, resume=True, datamodule=SyntheticPhrases(bad, batch_size=4), **QUIET)
    assert best.read_bytes() == before
    assert (best.parent / LAST_NAME).read_bytes() == last_before
    assert sorted(p.name for p in best.parent.glob("*.ckpt")) == sorted([best.name, LAST_NAME])


def test_tiny_model_overfits_a_handful_of_phrases() -> None:
    torch.manual_seed(0)
    phrases = synthetic_phrases(4, steps=32, pitches=40)
    net = TransUNet(5, 5, latent_dim=32, d_model=64, num_layers=1, time_emb_dim=16)
    diffusion = GuidedDiffusion(100)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    # fixed draws: the loss on them must fall well below its start
    gen = torch.Generator().manual_seed(1)
    t = torch.randint(0, 100, (4,), generator=gen)
    noise = torch.randn(phrases["music"].shape, generator=gen)
    losses = []
    for _ in range(60):
        loss = diffusion.training_loss(net, phrases["music"], phrases["mixture"], t, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses[::10]


def test_separator_module_keeps_the_typed_config_and_stores_it_as_json(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path)
    module = SeparatorModule(cfg)
    assert module.config is cfg and module.hparams["config"] == cfg.to_dict()


def test_tiny_run_fixture_trains_both_models(tiny_run: Config) -> None:
    sep = find_checkpoint(tiny_run, "separator")
    dec = find_checkpoint(tiny_run, "decoder")
    net, diffusion, config = load_separator(sep, cfg=tiny_run)
    assert config.to_dict() == tiny_run.to_dict()
    stored = torch.load(sep, weights_only=True)["hyper_parameters"]["config"]
    assert json.loads(json.dumps(stored)) == stored  # plain JSON types
    assert dec.is_file()


def test_last_checkpoint_follows_every_epoch_when_the_best_stops_improving(
        tmp_path: Path) -> None:
    # a learning rate too small to change any prediction: the monitored accuracy never
    # improves after the first epoch, yet last.ckpt must hold the latest epoch (for --resume)
    cfg = tiny_cfg(tmp_path, separator="direct", limit_train_batches=1, limit_val_batches=1,
                   max_epochs=3, lr=1e-12, min_lr=1e-12)
    data = SyntheticPhrases(synthetic_phrases(4), batch_size=4)
    best = train_separator(cfg, datamodule=data, **QUIET)
    assert "epoch=000-val_accuracy" in best.name
    last = torch.load(checkpoint_dir(cfg, "separator") / LAST_NAME, weights_only=True)
    assert last["epoch"] == 2
