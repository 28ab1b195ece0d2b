"""Training runs of the separator and the decoder: every Trainer is built here.

A run writes into ``model_dir`` (see :mod:`utils.core.checkpoints` for the layout): the best
checkpoint by ``val_loss`` (``<kind>/best-epoch=EEE-val_loss=L.LLLL.ckpt``), the last one
(``<kind>/last.ckpt``, used by ``resume``), TensorBoard and CSV logs under
``logs/<kind>/``. A non-finite training loss stops the run before its backward pass with
:class:`NonFiniteLossError` naming the step, so no checkpoint is written from it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from data.dataset import PhraseDataModule
from data.errors import WorkFailed
from data.store import DatasetError, check_split_files, split_paths
from utils.core.checkpoints import (
    BASELINES_FILE,
    BEST_PREFIX,
    LAST_NAME,
    atomic_checkpoint_io,
    check_resume_checkpoint,
    checkpoint_config,
    checkpoint_dir,
    find_checkpoint,
    process_class,
    read_checkpoint,
    warm_start,
)
from utils.core.cli import command
from utils.core.config import Config, ConfigError, load_config
from utils.core.kinds import DECODER, SEPARATOR, CheckpointKind, checkpoint_kind
from utils.evaluation.baselines import save_baselines
from utils.evaluation.phrases import fit_train_baselines
from utils.training.lightning import DecoderModule, SeparatorModule

LOG_EVERY_N_STEPS = 10


class NonFiniteLossError(WorkFailed, RuntimeError):
    """The training loss became NaN or infinite."""


class NonFiniteLossStop(Callback):
    """Stop before the backward pass of a non-finite loss (no step, no checkpoint)."""

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           loss: torch.Tensor) -> None:
        if not torch.isfinite(loss).all():
            raise NonFiniteLossError(
                f"non-finite training loss ({loss.item()}) at global step {trainer.global_step} "
                f"(epoch {trainer.current_epoch}, batch {trainer.fit_loop.batch_idx}); "
                f"stopped, best checkpoint kept")


def check_data_dir(cfg: Config, splits: Sequence[str] = ("train", "val")) -> None:
    """Raise ConfigError naming the key and the problem if a split is not usable.

    Checks ``data_dir``'s splits, and with ``train_mix`` the train split of every dataset
    it names (then ``data_dir`` needs only its ``val`` split). A missing split file asks
    for the build; a folder whose files disagree (an interrupted build, see
    :func:`data.store.check_split_files`) asks for a re-run.
    """
    data_dir = cfg.require_dir("data_dir")
    wanted = [("data_dir", data_dir, split) for split in splits
              if not (cfg.train_mix and split == "train")]
    if cfg.train_mix and "train" in splits:
        wanted += [("train_mix", Path(folder), "train") for folder in cfg.train_mix]
    for key, folder, split in wanted:
        if not folder.is_dir():
            raise ConfigError(f"{cfg._source}: '{key}' names {str(folder)!r}, not a folder")
        for path in split_paths(folder, split):
            if not path.is_file():
                raise ConfigError(f"{cfg._source}: '{key}' = {str(folder)!r} has no "
                                  f"{path.name}; build the phrases first (python -m "
                                  f"utils.preprocess)")
        try:
            check_split_files(folder, split)
        except DatasetError as exc:
            raise ConfigError(f"{cfg._source}: '{key}': {exc}") from None


def make_datamodule(cfg: Config) -> pl.LightningDataModule:
    """The phrase DataModule of the config (``data_dir``, ``train_mix``, ``transpose``;
    checked first)."""
    check_data_dir(cfg)
    return PhraseDataModule(cfg.data_dir, cfg.batch_size, num_workers=cfg.num_workers,
                            pin_memory=cfg.accelerator not in ("cpu",),
                            train_mix=cfg.train_mix, transpose=cfg.transpose, seed=cfg.seed)


def best_metric(cfg: Config, kind: str | CheckpointKind) -> tuple[str, str]:
    """``(metric, mode)`` that picks the best checkpoint of a run: for the separator, what
    its process names (:attr:`models.process.SeparationProcess.monitor`: ``val_loss`` as
    the paper, ``val_accuracy`` for the direct separator); ``val_loss`` for the decoder
    (:attr:`utils.core.kinds.CheckpointKind.monitor`)."""
    return checkpoint_kind(kind).monitor(cfg)


def build_trainer(cfg: Config, kind: str | CheckpointKind, max_epochs: int,
                  callbacks: Sequence[Callback] = (), **overrides: Any) -> pl.Trainer:
    """A Trainer writing ``kind``'s checkpoints and logs under ``cfg.model_dir``.

    Args:
        cfg: the typed configuration (hardware, limits, clipping).
        kind: the checkpoint kind (:mod:`utils.core.kinds`), or its name.
        max_epochs: epochs to train in total (a resumed run continues up to it).
        callbacks: extra callbacks.
        overrides: Trainer keyword arguments that replace the config's.
    """
    folder = checkpoint_dir(cfg, kind)
    logs = Path(cfg.model_dir) / "logs"
    monitor, mode = best_metric(cfg, kind)
    best = ModelCheckpoint(dirpath=folder,
                           filename=BEST_PREFIX + "-{epoch:03d}-{" + monitor + ":.4f}",
                           monitor=monitor, mode=mode, save_top_k=1,
                           enable_version_counter=False)
    # Its own callback writes last.ckpt after every epoch: ModelCheckpoint's save_last left
    # it at the best epoch once the monitored metric stopped improving, so --resume
    # restarted from there. A new run replaces last.ckpt.
    last = ModelCheckpoint(dirpath=folder, filename=Path(LAST_NAME).stem, monitor=None,
                           save_top_k=1, enable_version_counter=False)
    limit = cfg.limit_train_batches
    kwargs: dict[str, Any] = {
        **cfg.trainer_hardware(),
        "max_epochs": max_epochs,
        "limit_train_batches": limit,
        "limit_val_batches": cfg.limit_val_batches,
        "gradient_clip_val": cfg.gradient_clip_val,
        # logs beside the run's checkpoints: under their folder's name
        "logger": [TensorBoardLogger(logs, name=folder.name), CSVLogger(logs, name=folder.name)],
        "callbacks": [best, last, LearningRateMonitor(logging_interval="epoch"),
                      NonFiniteLossStop(), *callbacks],
        "plugins": [atomic_checkpoint_io()],  # a checkpoint is whole or absent
        "log_every_n_steps": min(LOG_EVERY_N_STEPS, limit) if isinstance(limit, int)
        else LOG_EVERY_N_STEPS,
        "default_root_dir": cfg.model_dir,
    }
    kwargs.update(overrides)
    return pl.Trainer(**kwargs)


def _resume_path(cfg: Config, kind: CheckpointKind, resume: bool) -> Path | None:
    """``last.ckpt`` to resume from, checked weights-only first (None: start afresh)."""
    if not (resume or cfg.resume):
        return None
    last = checkpoint_dir(cfg, kind) / LAST_NAME
    if not last.is_file():
        raise ConfigError(f"{cfg._source}: 'resume' is set but {str(last)!r} does not exist; "
                          f"train without resume first")
    check_resume_checkpoint(last, cfg, kind)
    return last


def _checked_start(cfg: Config, kind: CheckpointKind, resume: bool) -> Path | None:
    """Checks made before any work: ``model_dir`` can be written (checkpoints and logs go
    there) and the resume checkpoint, if any, fits. Returns that checkpoint."""
    cfg.require_writable_dir("model_dir")
    return _resume_path(cfg, kind, resume)


def _fit(cfg: Config, kind: CheckpointKind, module: pl.LightningModule, max_epochs: int,
         ckpt_path: Path | None, datamodule: pl.LightningDataModule | None,
         **overrides: Any) -> Path:
    if datamodule is None:
        datamodule = make_datamodule(cfg)
    trainer = build_trainer(cfg, kind, max_epochs, **overrides)
    # weights_only: Lightning unpickles nothing but tensors and plain containers, even if
    # the environment sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if not best:
        raise RuntimeError(f"{kind.name} training wrote no best checkpoint (no validation "
                           "ran?)")
    return Path(best)


def train_separator(cfg: Config, resume: bool = False,
                    datamodule: pl.LightningDataModule | None = None,
                    **overrides: Any) -> Path:
    """Train the TransUNet separator; return the best checkpoint's path.

    Args:
        cfg: the typed configuration.
        resume: continue from ``model_dir/separator/last.ckpt`` (also ``cfg.resume``).
            Otherwise a run with ``init_from`` starts from that checkpoint's weights.
        datamodule: batches to train on; default: the phrases of ``cfg.data_dir`` (its
            ``train_mix`` for training).
        overrides: Trainer keyword arguments that replace the config's.

    Raises:
        ConfigError: ``model_dir`` not writable, missing or inconsistent data, a resume
            checkpoint that is missing, unreadable, not weights-only or not matching.
        NonFiniteLossError: the loss became NaN/inf (the message names the step).
    """
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module = SeparatorModule(cfg)
    if cfg.init_from and not (resume or cfg.resume):
        warm_start(module.net, cfg)
    baselines = None
    ckpt_path = _checked_start(cfg, SEPARATOR, resume)
    if rank_zero_only.rank == 0 and datamodule is None:
        # the baselines of this training data travel with the model (evaluate.py reads
        # them); fitted before training, on the data the model trains on
        check_data_dir(cfg)
        baselines = fit_train_baselines(cfg.train_mix or {cfg.data_dir: 1.0})
    best = _fit(cfg, SEPARATOR, module, cfg.max_epochs, ckpt_path, datamodule, **overrides)
    if baselines is not None:
        save_baselines(Path(cfg.model_dir) / BASELINES_FILE, baselines)
    return best


def train_decoder(cfg: Config, resume: bool = False,
                  datamodule: pl.LightningDataModule | None = None,
                  **overrides: Any) -> Path | None:
    """Train the decoder on top of the separator :func:`find_checkpoint` picks.

    Args: as :func:`train_separator` (resume reads ``model_dir/decoder/last.ckpt``).

    Returns:
        The best decoder checkpoint, or None when the separator's process needs no
        decoder (the direct separator predicts instruments itself).

    Raises:
        ConfigError: no separator checkpoint, one that does not match the config,
            missing data or resume checkpoint.
    """
    separator = find_checkpoint(cfg, SEPARATOR)
    stored = checkpoint_config(read_checkpoint(separator), separator)
    if not process_class(stored.separator).needs_decoder:
        return None
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module = DecoderModule(cfg, str(separator))
    ckpt_path = _checked_start(cfg, DECODER, resume)
    return _fit(cfg, DECODER, module, cfg.decoder_max_epochs, ckpt_path, datamodule,
                **overrides)


def training_entry(kind: CheckpointKind) -> Callable[..., Path | None]:
    """The function that trains a checkpoint kind (:mod:`utils.core.kinds`)."""
    return {SEPARATOR.name: train_separator, DECODER.name: train_decoder}[kind.name]


def main_for(kind: str, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Command line of the training scripts: ``[--config PATH] [--resume]``.

    Returns the exit status (:mod:`utils.core.cli`): 0 on success, 2 for a configuration or data
    problem (one ``error: ...`` line on stderr; also when the data changes or vanishes
    mid-run), 1 for a non-finite loss (one line) or a bug (traceback).
    """
    return command(partial(_train, kind, prog=prog))(argv)


def _train(name: str, argv: Sequence[str] | None, prog: str | None = None) -> int:
    kind = checkpoint_kind(name)
    what = kind.described
    parser = argparse.ArgumentParser(prog=prog,
                                     description=f"Train {what} (docs/method.md sections 2-4).")
    parser.add_argument("--config", default="config.json",
                        help="config file (default: %(default)s)")
    parser.add_argument("--resume", action="store_true",
                        help=f"continue from model_dir/{kind.name}/{LAST_NAME}")
    args = parser.parse_args(argv)
    train = training_entry(kind)
    try:
        best = train(load_config(args.config), resume=args.resume)
    except (DatasetError, FileNotFoundError) as exc:  # the data changed or vanished mid-run
        # a DataLoader worker's error arrives with the worker's traceback in its message:
        # keep the last line, the error itself
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise DatasetError(lines[-1].split(": ", 1)[-1] if len(lines) > 1 else lines[0]) \
            from None
    if best is None:
        print("the separator is 'direct': it predicts the instruments itself, no decoder "
              "to train")
    else:
        print(f"best {kind.name} checkpoint: {best}")
    return 0
