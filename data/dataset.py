"""PyTorch / Lightning access to built phrase datasets (see :mod:`data.store`).

Training may draw from several built datasets at once (config key ``train_mix``: each
dataset's share of every epoch's phrases, :class:`MixSampler`), with random transposition
of the pitched instruments (``transpose``); validation always reads one dataset's ``val``
split (``data_dir``), unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler

from data.contract import MELODY
from data.manifest import Manifest
from data.mix import mix_counts, mix_shares
from data.store import SPLITS, PhraseStore, unpack, unpack_onsets


def transpose_music(planes: np.ndarray, semitones: int) -> np.ndarray:
    """Move the pitched instruments by ``semitones`` rows; drums (the last channel) stay.

    Args:
        planes: bool ``[..., C, T, 72]`` music (or onsets) in model order, C = 5 for the
            paper's set (piano, guitar, bass, string move; drum stays).
        semitones: rows to move up (negative: down); notes moved past row 0 or 71 are
            dropped.

    Returns:
        A new bool array of the same shape.
    """
    if semitones == 0:
        return planes.copy()
    out = planes.copy()
    n_pitched = planes.shape[-3] - 1  # every class but the drum, the last one
    pitched = planes[..., :n_pitched, :, :]
    moved = np.zeros_like(pitched)
    if semitones > 0:
        moved[..., semitones:] = pitched[..., :-semitones]
    else:
        moved[..., :semitones] = pitched[..., -semitones:]
    out[..., :n_pitched, :, :] = moved
    return out


class PhraseDataset(Dataset):
    """One split of a built dataset as model tensors.

    Each item is a dict of float32 tensors (0/1 values):

    * ``music``: ``[C, 64, 72]`` -- the build's classes, C = 5 for the paper's set
      (piano, guitar, bass, string, drum);
    * ``mixture``: ``[1, 64, 72]`` -- OR of them;
    * ``onsets``: ``[1, 64, 72]`` -- the mixture's note starts (OR of the five
      instruments' onsets: the first cell of every note).

    The melody channel of the stored phrases is not loaded: it is part of the mixture
    only when the dataset was built with ``melody_in_mixture`` (then its notes are in
    their program's instrument already).

    Args:
        data_dir: dataset folder written by ``python -m utils.preprocess``.
        split: "train", "val" or "test".
        transpose: ``(lo, hi)`` semitones; each item moves its pitched instruments by a
            random whole number in ``lo..hi`` (drums stay). ``(0, 0)``: unchanged.

    Raises:
        FileNotFoundError: one line naming the missing split file.
        data.store.DatasetError: the folder's files disagree (an interrupted build, or a
            build made before onsets were stored); one line ending "re-run the build".
    """

    def __init__(self, data_dir: str | Path, split: str,
                 transpose: Sequence[int] = (0, 0)) -> None:
        self.store = PhraseStore(data_dir, split)
        lo, hi = (int(v) for v in transpose)
        if lo > hi:
            raise ValueError(f"transpose must be (lo, hi) with lo <= hi, got {tuple(transpose)}")
        self.transpose = (lo, hi)

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        packed = self.store.rows(index)
        cells = np.moveaxis(unpack(packed)[..., MELODY + 1:], -1, 0)  # (C, 64, 72)
        onsets = np.moveaxis(unpack_onsets(packed)[..., MELODY + 1:], -1, 0)
        lo, hi = self.transpose
        if (lo, hi) != (0, 0):
            shift = int(torch.randint(lo, hi + 1, ()).item())  # seeded per worker by torch
            cells, onsets = transpose_music(cells, shift), transpose_music(onsets, shift)
        music = torch.from_numpy(np.ascontiguousarray(cells, dtype=np.float32))
        return {"music": music,
                "mixture": music.amax(dim=0, keepdim=True),
                "onsets": torch.from_numpy(onsets.any(axis=0, keepdims=True)
                                           .astype(np.float32))}


def built_with_melody(data_dir: str | Path) -> bool | None:
    """Whether a built dataset's mixtures hold the melody (its manifest's
    ``melody_in_mixture``); None when its manifest does not say (written by hand)."""
    value = Manifest.read(data_dir).settings.get("melody_in_mixture")
    return value if isinstance(value, bool) else None


class MixSampler(Sampler[int]):
    """Indices into a :class:`~torch.utils.data.ConcatDataset` of several datasets, each
    giving a fixed share of every epoch.

    Epoch ``e`` draws ``round(share_k * epoch_size)`` phrases of dataset ``k`` (a seeded
    permutation, repeated when a dataset is smaller than its share), shuffles all of them
    together and yields them. The draw depends only on ``seed`` and the epoch
    (:meth:`set_epoch`, which Lightning calls, also through its distributed wrapper, so
    every DDP process sees the same order and takes its own shard of it; a resumed run
    continues with the draw of its epoch).

    Args:
        sizes: phrases in each dataset (ConcatDataset order).
        weights: each dataset's weight (> 0); shares are ``weights / sum(weights)``
            (:func:`data.mix.mix_shares`).
        epoch_size: phrases per epoch (default: the sum of ``sizes``).
        seed: seeds every epoch's draw.

    Raises:
        ValueError: a weight or size that is not > 0, or a share that rounds to 0 phrases
            of an epoch (:func:`utils.training.check_data_dir` refuses such a mix first).
    """

    def __init__(self, sizes: Sequence[int], weights: Sequence[float],
                 epoch_size: int | None = None, seed: int = 0) -> None:
        if len(sizes) != len(weights) or not sizes:
            raise ValueError(f"need one weight per dataset, got {len(sizes)} datasets and "
                             f"{len(weights)} weights")
        if any(not w > 0 for w in weights) or any(n <= 0 for n in sizes):
            raise ValueError(f"weights and dataset sizes must be > 0, got {list(weights)}, "
                             f"{list(sizes)}")
        self.sizes = [int(n) for n in sizes]
        self.shares = mix_shares(weights)
        self.epoch_size = int(epoch_size if epoch_size is not None else sum(self.sizes))
        self.counts = mix_counts(weights, self.epoch_size)
        for k, count in enumerate(self.counts):
            if count == 0:
                raise ValueError(f"dataset {k}'s share rounds to 0 of the {self.epoch_size} "
                                 f"phrases of an epoch (weight {weights[k]!r})")
        self.offsets = np.cumsum([0, *self.sizes[:-1]])
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose draw the next iteration yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return sum(self.counts)

    def draw(self, epoch: int) -> np.ndarray:
        """int64 ``[len(self)]``: the indices of epoch ``epoch``, shuffled."""
        rng = np.random.default_rng([self.seed, epoch])
        parts = []
        for size, count, offset in zip(self.sizes, self.counts, self.offsets):
            repeats = -(-count // size)
            pool = np.concatenate([rng.permutation(size) for _ in range(repeats)])
            parts.append(pool[:count] + offset)
        return rng.permutation(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.draw(self.epoch).tolist())


class PhraseDataModule(pl.LightningDataModule):
    """Train/val loaders over built datasets (the split is by song, made at build time).

    Args:
        data_dir: dataset folder; its ``val`` split validates (and picks checkpoints).
        batch_size: phrases per batch (per device).
        num_workers: DataLoader worker processes.
        pin_memory: pin host memory (for GPU training).
        train_mix: ``{dataset folder: weight}``: the train splits mixed for training,
            each giving ``weight / sum(weights)`` of every epoch's phrases
            (:class:`MixSampler`); None = the train split of ``data_dir``.
        transpose: ``(lo, hi)`` random transposition of training phrases, in semitones.
        seed: seeds the mix's draws.

    Under DDP, Lightning replaces the samplers with distributed ones (wrapping the mix
    sampler), so each process sees its own shard of every split.
    """

    def __init__(self, data_dir: str | Path, batch_size: int, num_workers: int = 0,
                 pin_memory: bool = False, train_mix: dict[str, float] | None = None,
                 transpose: Sequence[int] = (0, 0), seed: int = 0) -> None:
        super().__init__()
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.train_mix = dict(train_mix) if train_mix else None
        self.transpose = tuple(transpose)
        self.seed = seed
        self.datasets: dict[str, Dataset] = {}
        self.mix_sampler: MixSampler | None = None
        self.melody: bool | None = None  # whether the mixtures hold the melody (setup)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of the data (Lightning stores it under this class's
        name): whether its mixtures hold the melody, so that a resume onto a build of the
        other kind is refused (:func:`utils.core.checkpoints.check_resume_checkpoint`)."""
        return {} if self.melody is None else {"melody_in_mixture": self.melody}

    def setup(self, stage: str | None = None) -> None:
        """Open the split files needed for ``stage`` (all of them when None)."""
        needed = {"fit": ("train", "val"), "validate": ("val",)}.get(stage or "", SPLITS)
        for split in needed:
            if split in self.datasets:
                continue
            if split == "train" and self.train_mix:
                parts = [PhraseDataset(folder, "train", self.transpose)
                         for folder in self.train_mix]
                self.mix_sampler = MixSampler([len(p) for p in parts],
                                              list(self.train_mix.values()), seed=self.seed)
                self.datasets[split] = ConcatDataset(parts)
            else:
                self.datasets[split] = PhraseDataset(
                    self.data_dir, split, self.transpose if split == "train" else (0, 0))
        if "train" in needed and self.melody is None:  # the folders are checked by now
            kinds = {built_with_melody(f) for f in (*(self.train_mix or ()), self.data_dir)}
            self.melody = kinds.pop() if len(kinds) == 1 else None

    def _loader(self, split: str) -> DataLoader:
        self.setup({"train": "fit", "val": "validate"}[split])
        train = split == "train"
        sampler = self.mix_sampler if train else None
        return DataLoader(self.datasets[split], batch_size=self.batch_size,
                          shuffle=train and sampler is None, sampler=sampler,
                          num_workers=self.num_workers, pin_memory=self.pin_memory,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches (the mix's draw when ``train_mix`` is set)."""
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        """Validation batches in stored order."""
        return self._loader("val")
