"""Thin LightningModules: the separator (guided DDPM loss, or direct) and the decoder (BCE).

The training runs of :mod:`utils.training.runs` fit these.

Batches are dicts ``{"music": float [B, 5, T, P], "mixture": float [B, 1, T, P],
"onsets": float [B, 1, T, P], ...}`` (``onsets``, the mixture's note starts, may be absent:
a process that uses them then reads them from the cells).
A batch may also carry ``"t"`` (long ``[B]``) and ``"noise"`` (float like ``music``) to fix
the diffusion draw; otherwise training draws them at random and validation/test draw
them from a generator seeded by ``seed`` and the batch index, so the validation loss of
different epochs is measured on the same noise.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from models.decoder import Decoder
from models.diffusion import draw_noise
from utils.core.checkpoints import SeparatorSpec, build_separator, holds_average, load_process
from utils.core.config import Config

Batch = dict[str, torch.Tensor]


def _plateau(cfg: Config, params: Any, factor: float, monitor: str = "val_loss"
             ) -> dict[str, Any]:
    """AdamW + ReduceLROnPlateau on ``monitor`` (docs/method.md section 3)."""
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=factor, patience=cfg.lr_patience, min_lr=cfg.min_lr)
    return {"optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": monitor, "interval": "epoch"}}


class _GuidedModule(pl.LightningModule):
    """Shared plumbing: one ``_step(batch, stage)`` serves train, validation and test.

    The module keeps the typed config (``self.config``); the checkpoint's hyper-parameters
    hold the same config as plain JSON types (``Config.to_dict()``), so that a checkpoint
    loads weights-only.
    """

    def __init__(self, cfg: Config, **extra: Any) -> None:
        super().__init__()
        self.config = cfg
        self.save_hyperparameters({"config": cfg.to_dict(), **extra})

    def _step(self, batch: Batch, stage: str, batch_idx: int = 0) -> torch.Tensor:
        raise NotImplementedError

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints written before the process attribute was named ``process`` (it was
        ``diffusion``) resume unchanged."""
        state = checkpoint.get("state_dict", {})
        for key in [k for k in state if k.startswith("diffusion.")]:
            state["process." + key[len("diffusion."):]] = state.pop(key)

    def _log_loss(self, stage: str, loss: torch.Tensor, batch_size: int) -> None:
        self.log(f"{stage}_loss", loss, prog_bar=True, sync_dist=True,
                 on_step=stage == "train", on_epoch=stage != "train", batch_size=batch_size)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train", batch_idx)

    def validation_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val", batch_idx)

    def test_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test", batch_idx)


class SeparatorModule(_GuidedModule):
    """The TransUNet and the process that trains it (:mod:`models.process`: the explicitly
    guided diffusion, or the direct separator), named by the config's ``separator``.

    With ``separator_ema`` > 0 the module also holds an exponential moving average of the
    network's weights (``ema``, updated after every training step). Validation and test
    then score the averaged weights under the usual names (``val_loss``, ``val_accuracy``:
    the best checkpoint is the best average) and the trained weights under ``val_raw_*``;
    the learning rate still follows the trained weights' ``val_raw_loss``, as it would
    without the average. Checkpoints hold both; :func:`utils.core.checkpoints.load_separator`
    gives the average.

    Args:
        cfg: the validated config; stored in checkpoints.
    """

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.net, self.process = build_separator(SeparatorSpec.of(cfg), cfg.rate)
        self.ema: AveragedModel | None = None
        if cfg.separator_ema:
            self.ema = AveragedModel(self.net, multi_avg_fn=get_ema_multi_avg_fn(
                cfg.separator_ema), use_buffers=True)
            self.ema.requires_grad_(False)  # not trained (and not a DDP gradient to wait for)

    def _step(self, batch: Batch, stage: str, batch_idx: int = 0) -> torch.Tensor:
        if stage != "train" and self.ema is not None:
            self._scored(self.net, batch, stage, batch_idx, tag="_raw")
            return self._scored(self.ema.module, batch, stage, batch_idx)
        return self._scored(self.net, batch, stage, batch_idx)

    def _scored(self, net: torch.nn.Module, batch: Batch, stage: str, batch_idx: int,
                tag: str = "") -> torch.Tensor:
        """The process's loss and metrics of ``net`` on a batch, logged as
        ``{stage}{tag}_*``."""
        loss, metrics = self.process.step(net, batch, stage, batch_idx, self.config.seed)
        for metric, value in metrics.items():  # e.g. the direct separator's val_accuracy
            self.log(f"{stage}{tag}_{metric}", value, prog_bar=True, sync_dist=True,
                     on_step=False, on_epoch=True, batch_size=batch["music"].shape[0])
        self._log_loss(stage + tag, loss, batch["music"].shape[0])
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.net)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """As the base class; a checkpoint trained without the average resumes with one
        that starts from its weights."""
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("state_dict", {})
        if self.ema is not None and not holds_average(state):
            # a fresh average has n_averaged 0: its first update copies the trained weights
            state.update({"ema." + k: v for k, v in self.ema.state_dict().items()})

    def configure_optimizers(self) -> dict[str, Any]:
        monitor = "val_raw_loss" if self.ema is not None else "val_loss"
        return _plateau(self.config, self.net.parameters(), self.config.lr_factor, monitor)


class DecoderModule(_GuidedModule):
    """Decoder trained with BCE from ``x1 = (sqrt(abar_0) x0 + sqrt(1-abar_0) eps) * m`` to x0.

    The decoder belongs to one separator checkpoint (``separator_path``, recorded in the
    hyper-parameters and checked against the config): its diffusion schedule defines x1,
    the sample the separator hands to the decoder at t = 0. x1 is made from the true music
    (docs/method.md section 4), so the separator's network takes no part in this training and is not
    held here -- the separator stays frozen by construction.

    Args:
        cfg: the validated config; stored in checkpoints.
        separator_path: the separator checkpoint this decoder belongs to.
    """

    def __init__(self, cfg: Config, separator_path: str) -> None:
        super().__init__(cfg, separator_path=separator_path)
        self.process = load_process(separator_path, cfg=cfg)  # its schedule, no network
        self.decoder = Decoder(cfg.in_ch, cfg.decoder_dim)

    def _step(self, batch: Batch, stage: str, batch_idx: int = 0) -> torch.Tensor:
        _, noise = draw_noise(batch, stage, self.process.time_steps, self.config.seed,
                              batch_idx)
        music = batch["music"]
        x1 = self.process.make_x1(music, batch["mixture"], noise)
        loss = F.binary_cross_entropy_with_logits(self.decoder(x1), music)
        self._log_loss(stage, loss, music.shape[0])
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        return _plateau(self.config, self.decoder.parameters(), self.config.decoder_lr_factor)
