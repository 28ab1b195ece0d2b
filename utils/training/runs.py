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

from data.dataset import PhraseDataModule, built_with_melody
from data.errors import WorkFailed
from data.instruments import set_mismatch
from data.manifest import DatasetError, Manifest
from data.mix import mix_counts, mix_shares
from data.store import check_split_files, split_paths
from utils.core.checkpoints import (
    BASELINES_FILE,
    BEST_PREFIX,
    LAST_NAME,
    atomic_checkpoint_io,
    check_resume_checkpoint,
    check_resume_data,
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


def check_data_dir(cfg: Config, splits: Sequence[str] = ("train", "val")) -> bool | None:
    """Raise ConfigError naming the key and the problem if a split is not usable.

    Checks ``data_dir``'s splits, and with ``train_mix`` the train split of every dataset
    it names (then ``data_dir`` needs only its ``val`` split). A missing split file asks
    for the build; a folder whose files disagree (an interrupted build, see
    :func:`data.store.check_split_files`) asks for a re-run. A split with no phrase, a
    ``train_mix`` weight whose share of an epoch rounds to no phrase, and datasets built
    with and without the melody in the mixture (:func:`data.dataset.built_with_melody`)
    are refused too: each would end the training in a traceback after the work.

    Returns:
        Whether the data's mixtures hold the melody (None: the manifests do not say).
    """
    data_dir = cfg.require_dir("data_dir")
    wanted = [("data_dir", data_dir, split) for split in splits
              if not (cfg.train_mix and split == "train")]
    if cfg.train_mix and "train" in splits:
        wanted += [("train_mix", Path(folder), "train") for folder in cfg.train_mix]
    sizes: dict[str, int] = {}
    for key, folder, split in wanted:
        phrases = _split_phrases(cfg, key, folder, split)
        if phrases == 0:
            which = f"'data_dir' = {str(folder)!r} has" if key == "data_dir" else \
                f"'train_mix' names {str(folder)!r}, which has"
            raise ConfigError(f"{cfg._source}: {which} no {split} phrases (its build put no "
                              f"song, or no phrase of one, in the {split} split); training "
                              f"needs some")
        if key == "train_mix":
            sizes[str(folder)] = phrases
    if sizes:
        _check_mix_counts(cfg, sizes)
    return _data_melody(cfg, [(key, folder) for key, folder, _ in wanted])


def _split_phrases(cfg: Config, key: str, folder: Path, split: str) -> int:
    """The phrases of one split named by config key ``key``, its files checked first."""
    if not folder.is_dir():
        raise ConfigError(f"{cfg._source}: '{key}' names {str(folder)!r}, not a folder")
    for path in split_paths(folder, split):
        if not path.is_file():
            raise ConfigError(f"{cfg._source}: '{key}' = {str(folder)!r} has no "
                              f"{path.name}; build the phrases first (python -m "
                              f"utils.preprocess)")
    try:
        check_split_files(folder, split)
        manifest = Manifest.read(folder)
        mismatch = set_mismatch(cfg.instruments, manifest.instruments, "the config",
                                repr(str(folder)))
        if mismatch:
            raise ConfigError(f"{cfg._source}: '{key}': {mismatch}")
        return manifest.count("phrases", split)
    except DatasetError as exc:
        raise ConfigError(f"{cfg._source}: '{key}': {exc}") from None


def _check_mix_counts(cfg: Config, sizes: dict[str, int]) -> None:
    """Refuse a ``train_mix`` weight whose share of an epoch is no phrase (as
    :class:`data.dataset.MixSampler` draws it)."""
    weights = [cfg.train_mix[folder] for folder in sizes]
    epoch = sum(sizes.values())
    for folder, weight, share, count in zip(sizes, weights, mix_shares(weights),
                                            mix_counts(weights, epoch)):
        if count == 0:
            raise ConfigError(f"{cfg._source}: 'train_mix' weight of {folder!r} ({weight!r}) "
                              f"gives it 0 of the {epoch} phrases of an epoch (a share of "
                              f"{share:.3g}); raise it or leave the dataset out")


def _data_melody(cfg: Config, used: list[tuple[str, Path]]) -> bool | None:
    """Whether the datasets a run trains and validates on hold the melody in their
    mixtures; ConfigError when some do and some do not."""
    kinds: dict[bool, tuple[str, Path]] = {}
    for key, folder in used:
        melody = built_with_melody(folder)
        if melody is not None:
            kinds.setdefault(melody, (key, folder))
    if len(kinds) > 1:
        (key_in, with_it), (key_out, without) = kinds[True], kinds[False]
        raise ConfigError(f"{cfg._source}: '{key_in}' {str(with_it)!r} was built with the "
                          f"melody in the mixture and '{key_out}' {str(without)!r} without it; "
                          f"a model learns one kind of mixture: train and validate on builds "
                          f"made alike")
    return next(iter(kinds), None)


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


def _resume_path(cfg: Config, kind: CheckpointKind, resume: bool
                 ) -> tuple[Path | None, bool | None]:
    """``last.ckpt`` to resume from (None: start afresh), checked weights-only first, and
    whether its data held the melody (None: not known)."""
    if not (resume or cfg.resume):
        return None, None
    last = checkpoint_dir(cfg, kind) / LAST_NAME
    if not last.is_file():
        raise ConfigError(f"{cfg._source}: 'resume' is set but {str(last)!r} does not exist; "
                          f"train without resume first")
    return last, check_resume_checkpoint(last, cfg, kind)


def _checked_start(cfg: Config, kind: CheckpointKind, resume: bool,
                   datamodule: pl.LightningDataModule | None) -> Path | None:
    """Checks made before any work: ``model_dir`` can be written (checkpoints and logs go
    there), the resume checkpoint, if any, fits, and the config's data can train
    (:func:`check_data_dir`, unless batches are given) and are of the kind the resumed
    run trained on. Returns that checkpoint."""
    cfg.require_writable_dir("model_dir")
    last, trained = _resume_path(cfg, kind, resume)
    if datamodule is None:
        check_resume_data(last, cfg, trained, check_data_dir(cfg))
    return last


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
    ckpt_path = _checked_start(cfg, SEPARATOR, resume, datamodule)
    if rank_zero_only.rank == 0 and datamodule is None:
        # the baselines of this training data travel with the model (evaluate.py reads
        # them); fitted before training, on the data the model trains on
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
    ckpt_path = _checked_start(cfg, DECODER, resume, datamodule)
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
